namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Metrics of a per-pixel classification task (semantic segmentation, human parts), from the confusion matrix
/// accumulated over the whole evaluation set. Values are fractions in [0, 1].
/// </summary>
public sealed class SegmentationMetrics
{
    private readonly long[] _confusion;

    internal SegmentationMetrics(int numClasses, ReadOnlySpan<long> confusion)
    {
        NumClasses = numClasses;
        _confusion = confusion.ToArray();
        var iou = new double[numClasses];
        long correct = 0, total = 0;
        for (int c = 0; c < numClasses; c++)
        {
            long tp = Count(c, c), fn = 0, fp = 0;
            for (int k = 0; k < numClasses; k++)
            {
                if (k == c) continue;
                fn += Count(c, k);
                fp += Count(k, c);
            }
            // The reference divides by max(TP+FP+FN, 1e-8): a class absent from labels and predictions scores 0 and still counts in the mean.
            iou[c] = tp / Math.Max((double)(tp + fp + fn), 1e-8);
            correct += tp;
            total += tp + fn;
        }
        PerClassIoU = iou;
        MeanIoU = iou.Average();
        PixelCount = total;
        PixelAccuracy = total == 0 ? 0 : (double)correct / total;
    }

    /// <summary>The number of classes.</summary>
    public int NumClasses { get; }

    /// <summary>
    /// Mean intersection over union: the plain mean of <see cref="PerClassIoU"/> over all classes, background included
    /// (the paper's "mIoU", which it reports ×100).
    /// </summary>
    public double MeanIoU { get; }

    /// <summary>IoU of each class, TP / (TP + FP + FN) over the whole set; 0 for a class absent from both labels and predictions.</summary>
    public IReadOnlyList<double> PerClassIoU { get; }

    /// <summary>The fraction of labelled pixels whose class was predicted correctly (0 when no pixel is labelled).</summary>
    public double PixelAccuracy { get; }

    /// <summary>The number of labelled (non-ignored) pixels.</summary>
    public long PixelCount { get; }

    /// <summary>The number of pixels of true class <paramref name="label"/> predicted as <paramref name="predicted"/>.</summary>
    /// <param name="label">The true class, in [0, <see cref="NumClasses"/>).</param>
    /// <param name="predicted">The predicted class, in [0, <see cref="NumClasses"/>).</param>
    /// <returns>The count from the confusion matrix.</returns>
    public long Count(int label, int predicted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(label);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(label, NumClasses);
        ArgumentOutOfRangeException.ThrowIfNegative(predicted);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(predicted, NumClasses);
        return _confusion[label * NumClasses + predicted];
    }
}
