namespace Microsoft.ML.MtLora.Training;

/// <summary>A progress report of multi-task training, sent every few optimizer steps.</summary>
/// <param name="Epoch">The 0-based epoch of the last step.</param>
/// <param name="Step">Optimizer steps done so far (the global step count, across resumes).</param>
/// <param name="TotalSteps">Steps this run will do in all when it is not stopped early.</param>
/// <param name="TaskLosses">Mean loss of each task over the steps since the previous report (tasks with no valid label in a
/// batch are left out of that batch's mean).</param>
/// <param name="TotalLoss">Mean weighted total loss over the same steps.</param>
/// <param name="LearningRate">The learning rate of the last step.</param>
/// <param name="ImagesPerSecond">Throughput over the steps since the previous report.</param>
/// <param name="EstimatedTimeRemaining">Time to reach <paramref name="TotalSteps"/> at that throughput.</param>
/// <param name="Elapsed">Wall time of this run so far.</param>
public sealed record TrainingProgress(
    int Epoch,
    long Step,
    long TotalSteps,
    IReadOnlyDictionary<string, double> TaskLosses,
    double TotalLoss,
    double LearningRate,
    double ImagesPerSecond,
    TimeSpan EstimatedTimeRemaining,
    TimeSpan Elapsed)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"epoch {Epoch} step {Step}/{TotalSteps} loss {TotalLoss:G5} ({string.Join(", ", TaskLosses.Select(kv => $"{kv.Key} {kv.Value:G4}"))}) " +
        $"lr {LearningRate:G4} {ImagesPerSecond:F1} img/s eta {(int)EstimatedTimeRemaining.TotalHours}:{EstimatedTimeRemaining:mm\\:ss}";
}
