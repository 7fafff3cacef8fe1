using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Accumulates the confusion matrix of a per-pixel classification task (semantic segmentation, human parts) over
/// a whole evaluation set, image by image or batch by batch, and turns it into <see cref="SegmentationMetrics"/>.
/// </summary>
/// <remarks>
/// Pixels whose label is <see cref="DenseTasks.IgnoreLabel"/> (255) are skipped, so an image whose labels are all
/// ignored (human parts on an image without people) contributes nothing. The counts are summed over the whole set
/// before any IoU is taken, as the reference does (dataset-level IoU, not a mean of per-image IoUs).
/// </remarks>
public sealed class SegmentationMeter
{
    private readonly long[] _counts; // row-major (label, prediction), NumClasses²

    /// <summary>Creates an empty meter.</summary>
    /// <param name="numClasses">The number of classes (21 for semantic segmentation, 7 for human parts); 1 to 255.</param>
    public SegmentationMeter(int numClasses)
    {
        if (numClasses < 1 || numClasses > DenseTasks.IgnoreLabel)
            throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"The number of classes must be between 1 and {DenseTasks.IgnoreLabel - 1} (255 is the ignore label).");
        NumClasses = numClasses;
        _counts = new long[numClasses * numClasses];
    }

    /// <summary>Creates an empty meter for a classification task, with its number of classes (21 or 7).</summary>
    /// <param name="task"><see cref="DenseTask.SemanticSegmentation"/> or <see cref="DenseTask.HumanParts"/>.</param>
    /// <returns>The meter.</returns>
    public static SegmentationMeter For(DenseTaskDescriptor task)
    {
        if (!task.IsClassification)
            throw new ArgumentException($"Task {task.Name} is not a per-pixel classification task.", nameof(task));
        return new SegmentationMeter(task.OutputChannels);
    }

    /// <summary>The number of classes.</summary>
    public int NumClasses { get; }

    /// <summary>The number of labelled (non-ignored) pixels seen so far.</summary>
    public long PixelCount { get; private set; }

    /// <summary>The number of images (or batch items) passed to an <c>Update</c> so far, including fully ignored ones.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image: a predicted class map and its label map, both row-major with one byte per pixel.</summary>
    /// <param name="predicted">The predicted class of each pixel, in [0, <see cref="NumClasses"/>).</param>
    /// <param name="label">The true class of each pixel, or 255 to ignore it.</param>
    /// <exception cref="ArgumentException">The spans differ in length, or a class is out of range.</exception>
    public void Update(ReadOnlySpan<byte> predicted, ReadOnlySpan<byte> label)
    {
        if (predicted.Length != label.Length)
            throw new ArgumentException($"The prediction has {predicted.Length} pixels but the label has {label.Length}.", nameof(predicted));
        int c = NumClasses;
        long valid = 0;
        for (int i = 0; i < label.Length; i++)
        {
            int g = label[i];
            if (g == DenseTasks.IgnoreLabel) continue;
            int p = predicted[i];
            if (g >= c) throw new ArgumentException($"Label {g} at pixel {i} is out of range: expected a class in [0, {c}) or {DenseTasks.IgnoreLabel} (ignore).", nameof(label));
            if (p >= c) throw new ArgumentException($"Predicted class {p} at pixel {i} is out of range [0, {c}).", nameof(predicted));
            _counts[g * c + p]++;
            valid++;
        }
        PixelCount += valid;
        ImageCount++;
    }

    /// <summary>
    /// Adds a batch of raw network outputs: the class of each pixel is the argmax over channels, as in the reference.
    /// The confusion matrix is computed with tensor operations (a bincount), on the tensors' device.
    /// </summary>
    /// <param name="logits">Raw outputs, (B, C, H, W), C = <see cref="NumClasses"/>.</param>
    /// <param name="target">Class ids as numbers (float or integer), (B, 1, H, W) or (B, H, W); 255 = ignore.</param>
    /// <exception cref="ArgumentException">The shapes disagree, or a label is not a class id in range.</exception>
    public void Update(Tensor logits, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        if (logits.dim() != 4 || logits.size(1) != NumClasses)
            throw new ArgumentException($"Expected raw outputs of shape (B, {NumClasses}, H, W) but got ({string.Join(", ", logits.shape)}).", nameof(logits));
        long b = logits.size(0), h = logits.size(2), w = logits.size(3);
        if (target.numel() != b * h * w || target.size(0) != b)
            throw new ArgumentException($"The target of shape ({string.Join(", ", target.shape)}) does not match the outputs ({string.Join(", ", logits.shape)}): expected (B, 1, H, W) = ({b}, 1, {h}, {w}).", nameof(target));

        using var scope = NewDisposeScope();
        var pred = logits.argmax(1).reshape(-1);                       // (B*H*W) int64
        var gtF = target.to(logits.device).reshape(-1);                // (B*H*W)
        var gt = gtF.to(ScalarType.Int64);
        if (gtF.is_floating_point() && !gt.to(gtF.dtype).eq(gtF).all().item<bool>())
            throw new ArgumentException("The target holds non-integer class ids.", nameof(target));
        var valid = gt.ne(TorchScalars.Ignore);
        var g = gt.masked_select(valid);                               // (V)
        var p = pred.masked_select(valid);                             // (V)
        long v = g.numel();
        if (v > 0)
        {
            long lo = g.min().item<long>(), hi = g.max().item<long>();
            if (lo < 0 || hi >= NumClasses)
                throw new ArgumentException($"The target holds class id {(lo < 0 ? lo : hi)}: expected a class in [0, {NumClasses}) or {DenseTasks.IgnoreLabel} (ignore).", nameof(target));
            using var classes = NumClasses.ToScalar();
            var counts = g.mul(classes).add(p, TorchScalars.One).bincount(null, NumClasses * NumClasses).cpu(); // (C*C) int64
            var span = counts.data<long>();
            for (int i = 0; i < _counts.Length; i++) _counts[i] += span[i];
        }
        PixelCount += v;
        ImageCount += b;
    }

    /// <summary>The count of pixels with true class <paramref name="label"/> predicted as <paramref name="predicted"/>.</summary>
    /// <param name="label">The true class.</param>
    /// <param name="predicted">The predicted class.</param>
    /// <returns>The number of pixels.</returns>
    public long Count(int label, int predicted) => _counts[label * NumClasses + predicted];

    /// <summary>Clears every count.</summary>
    public void Reset()
    {
        Array.Clear(_counts);
        PixelCount = 0;
        ImageCount = 0;
    }

    /// <summary>The metrics of everything seen so far.</summary>
    /// <returns>Mean IoU, per-class IoU, pixel accuracy and the confusion matrix.</returns>
    public SegmentationMetrics GetMetrics() => new(NumClasses, _counts);
}
