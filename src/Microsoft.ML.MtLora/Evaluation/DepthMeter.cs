using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Depth RMSE and log-RMSE accumulated over a dataset exactly as the reference's online meter
/// (<c>evaluation/eval_depth.py::DepthMeter</c>): valid pixels are those whose label is not 255; the prediction is clamped
/// at 1e-9 (the label is not); Σ (gt − pred)² and Σ (log gt − log pred)² over the valid pixels of every image are summed, and
/// the results are √(Σ / n_valid) over the whole set (pixel-level, not per image).
/// </summary>
/// <remarks>As in the reference, a valid label of 0 gives log 0 = −∞ and so an infinite log-RMSE; NYUD_MT's depth maps are
/// filled, so this does not arise there.</remarks>
public sealed class DepthMeter
{
    /// <summary>The clamp applied to the predicted depth before the logarithm (reference value).</summary>
    public const double MinPrediction = 1e-9;

    private readonly double _ignoreValue;
    private double _squared;
    private double _logSquared;

    /// <summary>Creates a meter that skips the label value 255, as the reference's.</summary>
    public DepthMeter() : this(DenseTaskDescriptor.DefaultIgnoreLabel)
    {
    }

    /// <summary>Creates a meter that skips the pixels whose label is <paramref name="ignoreValue"/> (a task's
    /// <see cref="DenseTaskDescriptor.IgnoreValue"/>).</summary>
    /// <param name="ignoreValue">The label value of invalid pixels.</param>
    public DepthMeter(float ignoreValue) => _ignoreValue = ignoreValue;

    /// <summary>Valid pixels seen so far.</summary>
    public long PixelCount { get; private set; }

    /// <summary>Images (updates) seen so far.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image.</summary>
    /// <param name="predicted">The predicted depths, H·W.</param>
    /// <param name="label">The ground-truth depths, H·W, the ignore value (255 by default) = invalid.</param>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public void Update(ReadOnlySpan<float> predicted, ReadOnlySpan<float> label)
    {
        if (predicted.Length != label.Length)
            throw new ArgumentException($"The prediction has {predicted.Length} values but the depth label has {label.Length}.", nameof(predicted));
        double sq = 0, logSq = 0;
        long n = 0;
        for (int i = 0; i < label.Length; i++)
        {
            double gt = label[i];
            if (gt == _ignoreValue) continue;
            double p = Math.Max(predicted[i], MinPrediction);
            double d = gt - p, l = Math.Log(gt) - Math.Log(p);
            sq += d * d;
            logSq += l * l;
            n++;
        }
        _squared += sq;
        _logSquared += logSq;
        PixelCount += n;
        ImageCount++;
    }

    /// <summary>Adds a batch of raw outputs (the depth itself, no activation: the reference's depth head output is the prediction).</summary>
    /// <param name="output">Predicted depths, (B, 1, H, W).</param>
    /// <param name="target">Ground-truth depths, (B, 1, H, W) or (B, H, W), with the ignore value on invalid pixels.</param>
    /// <exception cref="ArgumentException">The shapes disagree.</exception>
    public void Update(Tensor output, Tensor target)
    {
        var (b, n) = SingleChannelBatch.Check(output, target, "depth outputs", nameof(output));
        using var scope = NewDisposeScope();
        var predicted = SingleChannelBatch.ToFloats(output); // (B·HW)
        var label = SingleChannelBatch.ToFloats(target);     // (B·HW)
        for (long i = 0; i < b; i++)
            Update(predicted.AsSpan((int)(i * n), (int)n), label.AsSpan((int)(i * n), (int)n));
    }

    /// <summary>Clears the sums.</summary>
    public void Reset()
    {
        _squared = 0;
        _logSquared = 0;
        PixelCount = 0;
        ImageCount = 0;
    }

    /// <summary>The metrics so far.</summary>
    /// <returns>RMSE and log-RMSE (NaN when no valid pixel was seen, as the reference's 0/0).</returns>
    public DepthMetrics GetMetrics() => new(
        Math.Sqrt(_squared / PixelCount), Math.Sqrt(_logSquared / PixelCount), PixelCount);
}

/// <summary>Depth metrics as the reference's <c>DepthMeter.get_score</c> reports them.</summary>
/// <param name="Rmse">√(Σ (gt − pred)² / n_valid), in the labels' unit (metres for NYUD). Lower is better.</param>
/// <param name="LogRmse">√(Σ (log gt − log pred)² / n_valid). Lower is better.</param>
/// <param name="PixelCount">The valid pixels the sums ran over.</param>
public sealed record DepthMetrics(double Rmse, double LogRmse, long PixelCount);
