using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Accumulates the reference's saliency protocol image by image: at each of 15 thresholds
/// <c>linspace(0.2, 0.9, 15)</c> the probability map is binarised (<c>p &gt; t</c>) and the image's Jaccard index,
/// precision and recall are taken; the per-image values are averaged over the set per threshold.
/// </summary>
/// <remarks>
/// <para>Per image and threshold: Jaccard = |gt ∧ mask| / |gt ∨ mask|, equal to 1 when both are empty;
/// precision = TP / (TP + FP + 1e-12); recall = TP / (TP + FN + 1e-12).</para>
/// <para>Labels are 0 (background) or 1 (salient). Unlike the reference, whose saliency labels never hold it, the value
/// 255 marks a pixel to ignore, as in the other tasks.</para>
/// <para>Only 2 × 16 counts per image are kept (how many positive and negative pixels exceed how many thresholds),
/// so the memory does not grow with the image size.</para>
/// </remarks>
public sealed class SaliencyMeter
{
    /// <summary>The number of thresholds (15).</summary>
    public const int ThresholdCount = 15;

    private const int Bins = ThresholdCount + 1;

    // np.linspace(0.2, 0.9, 15); the probability maps are float32, and so is the comparison p > t (as in torch).
    private static readonly double[] s_nominal = Enumerable.Range(0, ThresholdCount)
        .Select(i => i == ThresholdCount - 1 ? 0.9 : 0.2 + i * (0.7 / (ThresholdCount - 1))).ToArray();
    private static readonly float[] s_thresholds = s_nominal.Select(t => (float)t).ToArray();

    private readonly double[] _jaccardSum = new double[ThresholdCount];
    private readonly double[] _precisionSum = new double[ThresholdCount];
    private readonly double[] _recallSum = new double[ThresholdCount];
    private readonly long[] _positive = new long[Bins];
    private readonly long[] _negative = new long[Bins];

    /// <summary>The thresholds 0.20, 0.25, …, 0.90 (compared with the float32 probabilities as float32).</summary>
    public static IReadOnlyList<double> Thresholds => s_nominal;

    /// <summary>The number of images seen so far.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image: its saliency probabilities and its binary label, row-major, one value per pixel.</summary>
    /// <param name="probability">The predicted probability of each pixel being salient, in [0, 1].</param>
    /// <param name="label">0 (background), 1 (salient) or 255 (ignore) per pixel.</param>
    /// <exception cref="ArgumentException">The spans differ in length, or a label is not 0, 1 or 255.</exception>
    public void Update(ReadOnlySpan<float> probability, ReadOnlySpan<byte> label)
    {
        if (probability.Length != label.Length)
            throw new ArgumentException($"The prediction has {probability.Length} pixels but the label has {label.Length}.", nameof(probability));
        Array.Clear(_positive);
        Array.Clear(_negative);
        var thresholds = s_thresholds;
        for (int i = 0; i < label.Length; i++)
        {
            byte g = label[i];
            if (g == DenseTasks.IgnoreLabel) continue;
            if (g > 1) throw new ArgumentException($"Saliency label {g} at pixel {i}: expected 0, 1 or {DenseTasks.IgnoreLabel} (ignore).", nameof(label));
            float p = probability[i];
            int k = 0; // how many thresholds p exceeds (the thresholds ascend)
            while (k < ThresholdCount && p > thresholds[k]) k++;
            if (g == 1) _positive[k]++; else _negative[k]++;
        }
        AddImage(_positive, _negative);
    }

    /// <summary>
    /// Adds a batch of raw saliency logits: the probability is <c>sigmoid(x)</c> in float32 (the reference's detour
    /// through <c>255·sigmoid(x)</c> and back changes no metric of the reference fixtures); the per-image counts are
    /// taken with tensor operations on the tensors' device.
    /// </summary>
    /// <param name="logits">Raw outputs, (B, 1, H, W).</param>
    /// <param name="target">Labels as numbers (float or integer), (B, 1, H, W) or (B, H, W): 0, 1 or 255 (ignore).</param>
    /// <exception cref="ArgumentException">The shapes disagree, or a label is not 0, 1 or 255.</exception>
    public void Update(Tensor logits, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        if (logits.dim() != 4 || logits.size(1) != 1)
            throw new ArgumentException($"Expected saliency logits of shape (B, 1, H, W) but got ({string.Join(", ", logits.shape)}).", nameof(logits));
        long b = logits.size(0), n = logits.size(2) * logits.size(3);
        if (target.numel() != b * n || target.size(0) != b)
            throw new ArgumentException($"The target of shape ({string.Join(", ", target.shape)}) does not match the outputs ({string.Join(", ", logits.shape)}).", nameof(target));

        using var scope = NewDisposeScope();
        var p = logits.to(ScalarType.Float32).reshape(b, n).sigmoid();                        // (B, HW)
        var gt = target.to(p.device).reshape(b, n).to(ScalarType.Float32);                    // (B, HW)
        var bad = gt.ne(TorchScalars.ZeroF).logical_and(gt.ne(TorchScalars.OneF)).logical_and(gt.ne(TorchScalars.Ignore));
        if (bad.any().item<bool>())
        {
            float value = gt.masked_select(bad)[0].item<float>();
            throw new ArgumentException($"The saliency target holds {value}: expected 0, 1 or {DenseTasks.IgnoreLabel} (ignore).", nameof(target));
        }
        var k = torch.zeros(b, n, ScalarType.Int64, device: p.device);                       // (B, HW) thresholds exceeded
        foreach (float t in s_thresholds)
        {
            using var threshold = t.ToScalar();
            k.add_(p.gt(threshold).to(ScalarType.Int64), TorchScalars.One);
        }
        var valid = gt.ne(TorchScalars.Ignore);
        using var batch = b.ToScalar();
        using var imageStride = (2 * Bins).ToScalar();
        using var bins = Bins.ToScalar();
        var image = torch.arange(TorchScalars.Zero, batch, TorchScalars.One, ScalarType.Int64, device: p.device).unsqueeze(1).expand(b, n);
        var index = image.mul(imageStride).add(gt.eq(TorchScalars.OneF).to(ScalarType.Int64).mul(bins), TorchScalars.One).add(k, TorchScalars.One); // (B, HW)
        var counts = index.masked_select(valid).bincount(null, b * 2 * Bins).cpu();          // (B*2*16)
        var all = counts.data<long>().ToArray();
        for (int i = 0; i < b; i++)
        {
            var span = all.AsSpan(i * 2 * Bins, 2 * Bins);
            span[..Bins].CopyTo(_negative);
            span[Bins..].CopyTo(_positive);
            AddImage(_positive, _negative);
        }
    }

    /// <summary>Adds one image from its threshold histograms: <c>positive[k]</c> salient pixels exceed exactly k thresholds.</summary>
    private void AddImage(ReadOnlySpan<long> positive, ReadOnlySpan<long> negative)
    {
        long tp = 0, fp = 0, allPositive = 0;
        for (int k = 0; k < Bins; k++) allPositive += positive[k];
        // Walk the thresholds from the highest down: at threshold j the pixels exceeding it are those in bins > j.
        for (int j = ThresholdCount - 1; j >= 0; j--)
        {
            tp += positive[j + 1];
            fp += negative[j + 1];
            long fn = allPositive - tp;
            long union = tp + fp + fn;
            _jaccardSum[j] += union == 0 ? 1.0 : (double)tp / union;
            _precisionSum[j] += tp / (tp + fp + 1e-12);
            _recallSum[j] += tp / (tp + fn + 1e-12);
        }
        ImageCount++;
    }

    /// <summary>Clears everything seen so far.</summary>
    public void Reset()
    {
        Array.Clear(_jaccardSum);
        Array.Clear(_precisionSum);
        Array.Clear(_recallSum);
        ImageCount = 0;
    }

    /// <summary>The metrics of the images seen so far.</summary>
    /// <returns>mIoU (best threshold of the mean per-image IoU), maxF and the per-threshold curves.</returns>
    /// <exception cref="InvalidOperationException">No image was added.</exception>
    public SaliencyMetrics GetMetrics()
    {
        if (ImageCount == 0) throw new InvalidOperationException("The saliency meter has seen no image.");
        var iou = new double[ThresholdCount];
        var precision = new double[ThresholdCount];
        var recall = new double[ThresholdCount];
        for (int j = 0; j < ThresholdCount; j++)
        {
            iou[j] = _jaccardSum[j] / ImageCount;
            precision[j] = _precisionSum[j] / ImageCount;
            recall[j] = _recallSum[j] / ImageCount;
        }
        return new SaliencyMetrics(s_nominal, iou, precision, recall, ImageCount);
    }
}
