namespace Microsoft.ML.MtLora.Training;

/// <summary>Training stopped because a loss became NaN or infinite.</summary>
public sealed class NonFiniteLossException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="task">The task whose loss is not finite (or <c>total</c>).</param>
    /// <param name="value">The loss value.</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="step">The 0-based global step.</param>
    /// <param name="learningRate">The learning rate of the step.</param>
    public NonFiniteLossException(string task, double value, int epoch, long step, double learningRate)
        : base($"Loss of task '{task}' is {(double.IsNaN(value) ? "NaN" : value.ToString(System.Globalization.CultureInfo.InvariantCulture))} " +
               $"at epoch {epoch} step {step} (learning rate {learningRate.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)}). " +
               "Training stopped; the weights were not updated by this step. Lower the learning rate or check that task's labels.")
    {
        Task = task;
        Value = value;
        Epoch = epoch;
        Step = step;
        LearningRate = learningRate;
    }

    /// <summary>The task whose loss is not finite (<c>total</c> when only the weighted sum overflowed).</summary>
    public string Task { get; }

    /// <summary>The loss value.</summary>
    public double Value { get; }

    /// <summary>The 0-based epoch.</summary>
    public int Epoch { get; }

    /// <summary>The 0-based global step.</summary>
    public long Step { get; }

    /// <summary>The learning rate of the step.</summary>
    public double LearningRate { get; }
}
