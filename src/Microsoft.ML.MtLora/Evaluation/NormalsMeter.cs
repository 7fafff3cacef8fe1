using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Accumulates the angular error of predicted surface normals over the valid pixels of a whole evaluation set
/// (pixel-level, as the reference: every valid pixel of every image weighs the same).
/// </summary>
/// <remarks>
/// <para>Per pixel: the prediction is normalised (<c>v / max(‖v‖, 1e-12)</c>, as <c>F.normalize</c>) and the error is
/// <c>degrees(acos(clamp(pred · gt, −1, 1)))</c>, in float32 as the reference computes it. A pixel is valid when the
/// first channel of its label is not 255. The reference also takes the unit prediction through its image encoding
/// <c>255·(n + 1)/2</c> and back; that only adds float rounding (under 1e-6° on the mean of the reference fixtures),
/// so it is left out.</para>
/// <para>Mean, RMSE and the fractions under 11.25°, 22.5° and 30° are exact. The median comes from a histogram of
/// 180,000 bins of 0.001° (1.4 MB); it is reported at the bin centre, so it is within 0.0005° of the exact median
/// (for an even count, the mean of the two middle angles, each within 0.0005°).</para>
/// </remarks>
public sealed class NormalsMeter
{
    /// <summary>The width of a bin of the median histogram, in degrees.</summary>
    public const double MedianBinWidth = 0.001;

    private const int BinCount = 180_000;
    private const float RadiansToDegrees = (float)(180.0 / Math.PI);

    private readonly long[] _histogram = new long[BinCount];
    private double _sum;
    private double _sumSquares;
    private long _under11;
    private long _under22;
    private long _under30;

    /// <summary>The number of valid pixels seen so far.</summary>
    public long PixelCount { get; private set; }

    /// <summary>The number of images (or batch items) passed to an <c>Update</c> so far.</summary>
    public long ImageCount { get; private set; }

    /// <summary>Adds one image: predicted and true normals in CHW layout (x plane, y plane, z plane).</summary>
    /// <param name="predicted">The predicted normals, 3·H·W values; they need not be unit length.</param>
    /// <param name="label">The true unit normals, 3·H·W values; 255 in the first channel marks an invalid pixel.</param>
    /// <exception cref="ArgumentException">The spans differ in length or are not a multiple of 3.</exception>
    public void Update(ReadOnlySpan<float> predicted, ReadOnlySpan<float> label)
    {
        if (predicted.Length != label.Length)
            throw new ArgumentException($"The prediction has {predicted.Length} values but the label has {label.Length}.", nameof(predicted));
        if (label.Length % 3 != 0)
            throw new ArgumentException($"Normals hold 3 values per pixel (CHW), but the label has {label.Length} values.", nameof(label));
        int n = label.Length / 3;
        for (int i = 0; i < n; i++)
        {
            float gx = label[i];
            if (gx == DenseTasks.IgnoreLabel) continue;
            float px = predicted[i], py = predicted[n + i], pz = predicted[2 * n + i];
            float norm = Math.Max(MathF.Sqrt(px * px + py * py + pz * pz), 1e-12f);
            float dot = (px / norm) * gx + (py / norm) * label[n + i] + (pz / norm) * label[2 * n + i];
            Add(MathF.Acos(Math.Clamp(dot, -1f, 1f)) * RadiansToDegrees);
        }
        ImageCount++;
    }

    /// <summary>
    /// Adds a batch of raw normals outputs (unnormalised vectors); the angles are computed with tensor operations on
    /// the tensors' device.
    /// </summary>
    /// <param name="output">Raw outputs, (B, 3, H, W).</param>
    /// <param name="target">True unit normals, (B, 3, H, W); 255 in the first channel marks an invalid pixel.</param>
    /// <exception cref="ArgumentException">The shapes disagree.</exception>
    public void Update(Tensor output, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(target);
        if (output.dim() != 4 || output.size(1) != 3)
            throw new ArgumentException($"Expected normals outputs of shape (B, 3, H, W) but got ({string.Join(", ", output.shape)}).", nameof(output));
        if (!output.shape.SequenceEqual(target.shape))
            throw new ArgumentException($"The target of shape ({string.Join(", ", target.shape)}) does not match the outputs ({string.Join(", ", output.shape)}).", nameof(target));

        using var scope = NewDisposeScope();
        var gt = target.to(output.device).to(ScalarType.Float32);                             // (B, 3, H, W)
        var pred = nn.functional.normalize(output.to(ScalarType.Float32), p: 2, dim: 1, eps: 1e-12); // (B, 3, H, W)
        var valid = gt.select(1, 0).ne(TorchScalars.Ignore);                                  // (B, H, W)
        var cos = pred.mul(gt).sum(1).clamp(TorchScalars.MinusOneF, TorchScalars.OneF);      // (B, H, W)
        using var toDegrees = RadiansToDegrees.ToScalar();
        var deg = cos.acos().mul(toDegrees).masked_select(valid);                             // (V)
        AddAll(deg);
        ImageCount += output.size(0);
    }

    private void Add(float degrees)
    {
        _sum += degrees;
        _sumSquares += (double)degrees * degrees;
        if (degrees < 11.25f) _under11++;
        if (degrees < 22.5f) _under22++;
        if (degrees < 30f) _under30++;
        _histogram[Bin(degrees)]++;
        PixelCount++;
    }

    private void AddAll(Tensor degrees)
    {
        long v = degrees.numel();
        if (v == 0) return;
        var d = degrees.to(ScalarType.Float64);
        _sum += d.sum().item<double>();
        _sumSquares += d.mul(d).sum().item<double>();
        using var t11 = 11.25f.ToScalar();
        using var t22 = 22.5f.ToScalar();
        using var t30 = 30f.ToScalar();
        using var binWidth = MedianBinWidth.ToScalar();
        using var lastBin = (BinCount - 1).ToScalar();
        _under11 += degrees.lt(t11).sum().item<long>();
        _under22 += degrees.lt(t22).sum().item<long>();
        _under30 += degrees.lt(t30).sum().item<long>();
        var bins = d.div(binWidth).floor().to(ScalarType.Int64).clamp(TorchScalars.Zero, lastBin);
        var counts = bins.bincount(null, BinCount).cpu();                                     // (BinCount)
        var span = counts.data<long>();
        for (int i = 0; i < BinCount; i++) _histogram[i] += span[i];
        PixelCount += v;
    }

    private static int Bin(float degrees) => Math.Clamp((int)Math.Floor(degrees / MedianBinWidth), 0, BinCount - 1);

    /// <summary>Clears everything seen so far.</summary>
    public void Reset()
    {
        Array.Clear(_histogram);
        _sum = _sumSquares = 0;
        _under11 = _under22 = _under30 = 0;
        PixelCount = 0;
        ImageCount = 0;
    }

    /// <summary>The metrics of the valid pixels seen so far.</summary>
    /// <returns>Mean, median, RMSE and the fractions of pixels within 11.25°, 22.5° and 30°.</returns>
    /// <exception cref="InvalidOperationException">No valid pixel was seen.</exception>
    public NormalsMetrics GetMetrics()
    {
        if (PixelCount == 0) throw new InvalidOperationException("The normals meter has seen no valid pixel (every label pixel was 255).");
        double median = (PixelCount % 2 == 1)
            ? BinCentre(PixelCount / 2)
            : (BinCentre(PixelCount / 2 - 1) + BinCentre(PixelCount / 2)) / 2;
        return new NormalsMetrics(
            mean: _sum / PixelCount,
            median: median,
            rmse: Math.Sqrt(_sumSquares / PixelCount),
            within11_25: (double)_under11 / PixelCount,
            within22_5: (double)_under22 / PixelCount,
            within30: (double)_under30 / PixelCount,
            pixelCount: PixelCount);
    }

    // The centre of the bin holding the angle of the given rank (0-based) in ascending order.
    private double BinCentre(long rank)
    {
        long seen = 0;
        for (int i = 0; i < BinCount; i++)
        {
            seen += _histogram[i];
            if (seen > rank) return (i + 0.5) * MedianBinWidth;
        }
        return (BinCount - 0.5) * MedianBinWidth;
    }
}
