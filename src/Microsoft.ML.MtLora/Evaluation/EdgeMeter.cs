using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// A pixel-wise F-measure of a binary map at the fixed threshold 0.5, summed over the whole set, reported under the name
/// <c>edge_f@0.5</c> (<see cref="DenseTaskDescriptor.MetricName"/>). It is <b>not</b> the ODS-F of the reference's edge
/// evaluation: the reference scores NYUD edges with an external MATLAB benchmark (seism / BSDS, not in its repository) that
/// matches predicted and true edge pixels within a distance tolerance after non-maximum suppression and sweeps the
/// threshold; this meter does neither, so its numbers are lower than ODS-F and must not be compared with published edge rows.
/// </summary>
/// <remarks>A pixel is predicted positive when its probability is ≥ 0.5 (its logit ≥ 0); labels are 0, 1 or 255 (ignored).
/// Precision TP / (TP + FP), recall TP / (TP + FN) and F = 2 TP / (2 TP + FP + FN) over all valid pixels of all images.</remarks>
public sealed class EdgeMeter
{
    /// <summary>The name the F-measure is reported under.</summary>
    public const string MetricName = "edge_f@0.5";

    /// <summary>The probability at or above which a pixel counts as an edge.</summary>
    public const double Threshold = 0.5;

    private long _truePositive, _falsePositive, _falseNegative;

    /// <summary>Valid pixels seen so far.</summary>
    public long PixelCount { get; private set; }

    /// <summary>Images (updates) seen so far.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image.</summary>
    /// <param name="probability">The predicted probabilities, H·W.</param>
    /// <param name="label">The labels, H·W: 0, 1 or 255 (ignore).</param>
    /// <exception cref="ArgumentException">The lengths differ, or a label is not 0, 1 or 255.</exception>
    public void Update(ReadOnlySpan<float> probability, ReadOnlySpan<byte> label)
    {
        if (probability.Length != label.Length)
            throw new ArgumentException($"The prediction has {probability.Length} values but the label has {label.Length}.", nameof(probability));
        long tp = 0, fp = 0, fn = 0, n = 0;
        for (int i = 0; i < label.Length; i++)
        {
            byte gt = label[i];
            if (gt == DenseTaskDescriptor.DefaultIgnoreLabel) continue;
            if (gt > 1) throw new ArgumentException($"The label holds {gt} at pixel {i}: expected 0, 1 or {DenseTaskDescriptor.DefaultIgnoreLabel} (ignore).", nameof(label));
            bool predicted = probability[i] >= Threshold;
            if (predicted && gt == 1) tp++;
            else if (predicted) fp++;
            else if (gt == 1) fn++;
            n++;
        }
        _truePositive += tp;
        _falsePositive += fp;
        _falseNegative += fn;
        PixelCount += n;
        ImageCount++;
    }

    /// <summary>Adds a batch of raw outputs: a pixel is an edge where its logit is ≥ 0 (sigmoid ≥ 0.5).</summary>
    /// <param name="logits">Raw outputs, (B, 1, H, W).</param>
    /// <param name="target">Labels as numbers (float or integer), (B, 1, H, W) or (B, H, W): 0, 1 or 255 (ignore).</param>
    /// <exception cref="ArgumentException">The shapes disagree, or a label is not 0, 1 or 255.</exception>
    public void Update(Tensor logits, Tensor target)
    {
        var (b, n) = SingleChannelBatch.Check(logits, target, "edge logits", nameof(logits));
        using var scope = NewDisposeScope();
        var probabilities = SingleChannelBatch.ToFloats(logits.to(ScalarType.Float32).sigmoid()); // (B·HW)
        var labels = SingleChannelBatch.ToFloats(target);                                          // (B·HW)
        var bytes = new byte[n];
        for (long i = 0; i < b; i++)
        {
            for (long j = 0; j < n; j++)
            {
                float v = labels[i * n + j];
                if (v is not (0f or 1f or DenseTaskDescriptor.DefaultIgnoreLabel))
                    throw new ArgumentException($"The edge target holds {v}: expected 0, 1 or {DenseTaskDescriptor.DefaultIgnoreLabel} (ignore).", nameof(target));
                bytes[j] = (byte)v;
            }
            Update(probabilities.AsSpan((int)(i * n), (int)n), bytes);
        }
    }

    /// <summary>Clears the counts.</summary>
    public void Reset()
    {
        _truePositive = _falsePositive = _falseNegative = 0;
        PixelCount = 0;
        ImageCount = 0;
    }

    /// <summary>The metrics so far.</summary>
    /// <returns>F, precision and recall at 0.5 and the counts.</returns>
    public EdgeMetrics GetMetrics() => new(_truePositive, _falsePositive, _falseNegative, PixelCount, ImageCount);
}

/// <summary>The pixel-wise F-measure of a binary map at threshold 0.5 (<see cref="EdgeMeter"/>; not ODS-F).</summary>
/// <param name="TruePositives">Valid pixels predicted and labelled 1.</param>
/// <param name="FalsePositives">Valid pixels predicted 1 and labelled 0.</param>
/// <param name="FalseNegatives">Valid pixels predicted 0 and labelled 1.</param>
/// <param name="PixelCount">The valid pixels.</param>
/// <param name="ImageCount">The images.</param>
public sealed record EdgeMetrics(long TruePositives, long FalsePositives, long FalseNegatives, long PixelCount, long ImageCount)
{
    /// <summary>F = 2 TP / (2 TP + FP + FN), a fraction in [0, 1]; 1 when no pixel is labelled or predicted positive
    /// (nothing to find and nothing found wrongly).</summary>
    public double FMeasure => TruePositives + FalsePositives + FalseNegatives == 0 ? 1.0
        : 2.0 * TruePositives / (2.0 * TruePositives + FalsePositives + FalseNegatives);

    /// <summary>TP / (TP + FP); NaN when nothing was predicted positive.</summary>
    public double Precision => (double)TruePositives / (TruePositives + FalsePositives);

    /// <summary>TP / (TP + FN); NaN when no pixel is labelled positive.</summary>
    public double Recall => (double)TruePositives / (TruePositives + FalseNegatives);
}
