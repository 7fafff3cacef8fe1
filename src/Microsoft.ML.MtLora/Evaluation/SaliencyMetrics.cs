namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Saliency metrics by the reference protocol (per-image IoU, precision and recall at 15 thresholds 0.2 … 0.9,
/// averaged over images). Values are fractions in [0, 1].
/// </summary>
public sealed class SaliencyMetrics
{
    /// <summary>β² of <see cref="MaxFBeta"/>: 0.3, the usual weighting of precision in salient-object detection.</summary>
    public const double FBetaSquared = 0.3;

    internal SaliencyMetrics(IReadOnlyList<double> thresholds, double[] meanIoU, double[] precision, double[] recall, long imageCount)
    {
        Thresholds = thresholds.ToArray();
        MeanIoUPerThreshold = meanIoU;
        PrecisionPerThreshold = precision;
        RecallPerThreshold = recall;
        ImageCount = imageCount;
        var f = new double[thresholds.Count];
        var fBeta = new double[thresholds.Count];
        for (int j = 0; j < f.Length; j++)
        {
            f[j] = 2 * precision[j] * recall[j] / (precision[j] + recall[j] + 1e-12);
            fBeta[j] = (1 + FBetaSquared) * precision[j] * recall[j] / (FBetaSquared * precision[j] + recall[j] + 1e-12);
        }
        FPerThreshold = f;
        int best = ArgMax(meanIoU), bestF = ArgMax(f);
        MeanIoU = meanIoU[best];
        BestThreshold = Thresholds[best];
        MaxF = f[bestF];
        MaxFThreshold = Thresholds[bestF];
        MaxFBeta = fBeta.Max();
    }

    /// <summary>The paper's "Saliency mIoU": the best, over the thresholds, of the mean per-image IoU.</summary>
    public double MeanIoU { get; }

    /// <summary>The threshold at which <see cref="MeanIoU"/> is reached.</summary>
    public double BestThreshold { get; }

    /// <summary>maxF: the best, over the thresholds, of 2·P̄·R̄ / (P̄ + R̄), from the mean precision and mean recall at each threshold (β² = 1).</summary>
    public double MaxF { get; }

    /// <summary>The threshold at which <see cref="MaxF"/> is reached.</summary>
    public double MaxFThreshold { get; }

    /// <summary>
    /// The best F-β with β² = <see cref="FBetaSquared"/> over the same thresholds and mean precision/recall.
    /// Not the reference's "Beta maxF", which applies a sigmoid to probabilities a second time.
    /// </summary>
    public double MaxFBeta { get; }

    /// <summary>The thresholds, 0.20, 0.25, …, 0.90.</summary>
    public IReadOnlyList<double> Thresholds { get; }

    /// <summary>The mean per-image IoU at each threshold.</summary>
    public IReadOnlyList<double> MeanIoUPerThreshold { get; }

    /// <summary>The mean per-image precision at each threshold.</summary>
    public IReadOnlyList<double> PrecisionPerThreshold { get; }

    /// <summary>The mean per-image recall at each threshold.</summary>
    public IReadOnlyList<double> RecallPerThreshold { get; }

    /// <summary>F1 of the mean precision and recall at each threshold.</summary>
    public IReadOnlyList<double> FPerThreshold { get; }

    /// <summary>The number of images evaluated.</summary>
    public long ImageCount { get; }

    // First maximum, as numpy's max/argmax would report it.
    private static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
