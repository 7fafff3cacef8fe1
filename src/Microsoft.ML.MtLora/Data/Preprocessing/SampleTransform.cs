using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// The reference's per-sample pre-processing (data/custom_transforms.py as used by data/mtl_ds.py::get_transformations;
/// docs/mtlora-reference.md §6.1) in managed code, from a <see cref="SourceSample"/> into a batch's buffers: for training
/// RandomHorizontalFlip and ScaleNRotate, then FixedResize to S×S; for evaluation FixedResize only; then AddIgnoreRegions,
/// the uint8 cast and Normalize for the image.
/// </summary>
/// <remarks>
/// <para>Two geometries for training (<see cref="AugmentationGeometry"/>):</para>
/// <list type="bullet">
/// <item><see cref="AugmentationGeometry.ReferenceTwoStep"/>: exactly the reference's steps: flip, warp at the original size
/// (OpenCV rules, <see cref="CvGeometry"/>), then resize to S×S; normals rotated in-plane before the warp.</item>
/// <item><see cref="AugmentationGeometry.SinglePass"/>: flip, rotation, scale and the final resize composed into one map per
/// sample, applied once at S×S. Class maps are still bit-identical to the two-step path: a nearest resize reads one warped
/// pixel, so reading the source at OpenCV's fixed-point position of that warped pixel gives the same value. The image and
/// the normals are interpolated once instead of twice (bicubic of a bicubic), which is a little sharper; the distance to
/// the two-step path is measured by DenseTransformsTests and written in the README. The in-plane rotation and the flip of
/// the normals are linear, so they are applied after the interpolation, at S×S instead of at W×H.</item>
/// </list>
/// <para>Thread safety: an instance holds no mutable state; each worker passes its own <see cref="TransformScratch"/>.</para>
/// </remarks>
internal sealed class SampleTransform
{
    private readonly int _size;
    private readonly AugmentationGeometry _geometry;
    private readonly float[] _lut;

    public SampleTransform(int size, AugmentationGeometry geometry, float[]? mean = null, float[]? std = null)
    {
        _size = size;
        _geometry = geometry;
        _lut = NormalizationTable(mean ?? DenseTransforms.Mean, std ?? DenseTransforms.Std);
    }

    /// <summary>The square output size S.</summary>
    public int Size => _size;

    /// <summary>
    /// Per channel and 8-bit value v: (v/255 − mean) / std, in float as the reference's ToTensor and Normalize compute it
    /// (uint8 cast, ÷255, −mean, ÷std).
    /// </summary>
    public static float[] NormalizationTable(float[] mean, float[] std)
    {
        var lut = new float[3 * 256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255f - mean[c]) / std[c];
        return lut;
    }

    /// <summary>Pre-processes one sample into <paramref name="targets"/> (the source's buffers may be modified).</summary>
    /// <param name="sample">The decoded sample.</param>
    /// <param name="augment">Apply <paramref name="draw"/> (training); otherwise only the fixed resize (evaluation).</param>
    /// <param name="draw">The sample's augmentation draws.</param>
    /// <param name="targets">The sample's slices of the batch buffers.</param>
    /// <param name="scratch">The worker's scratch buffers.</param>
    public void Apply(SourceSample sample, bool augment, AugmentationDraw draw, in SampleTargets targets, TransformScratch scratch)
    {
        int w = sample.Width, h = sample.Height, s = _size;
        bool flip = augment && draw.Flip;
        bool warp = augment && draw.Warps;
        double[] m = warp ? CvGeometry.RotationMatrix2D(w / 2.0, h / 2.0, draw.AngleDegrees, draw.Scale) : [];
        bool twoStep = !warp || _geometry == AugmentationGeometry.ReferenceTwoStep;

        // Image: RGB 0..255 as float (the reference's float array), interpolated, then the uint8 cast and Normalize.
        var rgb = scratch.A(4 * w * h);
        ToFloat4(sample.Pixels, sample.Bgra, rgb, w * h);
        bool withNormals = !targets.Normals.IsEmpty;
        if (withNormals && !sample.HasNormals) throw new InvalidOperationException($"Sample '{sample.Id}' has no normals.");
        if (twoStep)
        {
            var resized = scratch.C(4 * s * s);
            if (flip) Mirror(MemoryMarshal.Cast<float, Vector128<float>>(rgb), w, h);
            Span<float> source = rgb;
            if (warp)
            {
                var warped = scratch.B(4 * w * h);
                CvGeometry.WarpCubic(rgb, w, h, m, warped);
                source = warped;
            }
            CvGeometry.ResizeCubic(source, w, h, resized, s, s);
            Normalize(resized, targets.Image, _lut);
            if (withNormals)
            {
                var normals = scratch.A(4 * w * h);                                             // the image is done with A
                sample.Normals.AsSpan(0, 4 * w * h).CopyTo(normals);
                var n = MemoryMarshal.Cast<float, Vector128<float>>(normals);
                if (flip)
                {
                    Mirror(n, w, h);
                    NegateX(n);                                                                  // x points the other way
                }
                source = normals;
                if (warp)
                {
                    RotateInPlane(n, draw.AngleDegrees);
                    var warped = scratch.B(4 * w * h);
                    CvGeometry.WarpCubic(normals, w, h, m, warped);
                    source = warped;
                }
                CvGeometry.ResizeCubic(source, w, h, resized, s, s);
                RenormalizeToPlanar(resized, targets.Normals, s * s);
            }
        }
        else
        {
            WarpComposed(rgb, withNormals ? sample.Normals.AsSpan(0, 4 * w * h) : default, w, h, ComposedMap(w, h, s, draw), s,
                targets.Image, _lut, targets.Normals, flip, draw.AngleDegrees);
        }

        int[]? nearest = null;
        for (int slot = 0; slot < 3; slot++)
        {
            var output = targets.ClassMap(slot);
            if (output.IsEmpty) continue;
            var map = sample.ClassMaps[slot];
            if (slot == 1 && sample.NoHumanParts)
            {
                output.Fill(DenseTasks.IgnoreLabel);                                          // reference: all 0 → all ignore
                continue;
            }
            if (map is null) throw new InvalidOperationException($"Sample '{sample.Id}' has no class map in slot {slot}.");
            if (twoStep)
            {
                ReadOnlySpan<byte> source = map.AsSpan(0, w * h);
                if (flip)
                {
                    var mirrored = scratch.M(w * h);
                    source.CopyTo(mirrored);
                    Mirror(mirrored, w, h);
                    source = mirrored;
                }
                if (warp)
                {
                    var warped = scratch.N(w * h);
                    CvGeometry.WarpNearest(source, w, h, m, warped);
                    source = warped;
                }
                CvGeometry.ResizeNearest(source, w, h, output, s, s);
            }
            else
            {
                // One source index per output pixel, shared by the class maps (they all follow the same geometry).
                nearest ??= ComposedNearestIndices(w, h, flip, m, s, scratch);
                for (int i = 0; i < output.Length; i++) output[i] = nearest[i] < 0 ? (byte)0 : map[nearest[i]];
            }
            // AddIgnoreRegions: a human-parts map that is 0 everywhere (no person left) is ignored entirely.
            if (slot == 1 && !output.ContainsAnyExcept((byte)0)) output.Fill(DenseTasks.IgnoreLabel);
        }
    }

    /// <summary>
    /// For the labels outside the PASCAL layouts (other segmentation and binary maps, depth): per S×S output pixel, the index
    /// of the source pixel that flip, warp (<c>cv2.warpAffine(INTER_NEAREST)</c>) and the final <c>cv2.resize(INTER_NEAREST)</c>
    /// read, or −1 where the warp reads outside the image. The same geometry as the PASCAL class maps, for both
    /// <see cref="AugmentationGeometry"/> values (a nearest chain reads one source pixel either way).
    /// </summary>
    public ReadOnlySpan<int> NearestSourceIndices(SourceSample sample, bool augment, AugmentationDraw draw, TransformScratch scratch)
    {
        int w = sample.Width, h = sample.Height, s = _size;
        bool flip = augment && draw.Flip;
        if (augment && draw.Warps)
            return ComposedNearestIndices(w, h, flip, CvGeometry.RotationMatrix2D(w / 2.0, h / 2.0, draw.AngleDegrees, draw.Scale), s, scratch).AsSpan(0, s * s);
        var cols = CvGeometry.NearestIndices(w, s);
        var rows = CvGeometry.NearestIndices(h, s);
        var indices = scratch.Indices(s * s);
        for (int v = 0; v < s; v++)
            for (int u = 0; u < s; u++) indices[v * s + u] = rows[v] * w + (flip ? w - 1 - cols[u] : cols[u]);
        return indices.AsSpan(0, s * s);
    }

    /// <summary>A byte label map sampled at <paramref name="source"/> into float32, 0 outside the image (OpenCV's constant border, as for the PASCAL class maps).</summary>
    public static void GatherMap(byte[] map, ReadOnlySpan<int> source, Span<float> output)
    {
        for (int i = 0; i < output.Length; i++) output[i] = source[i] < 0 ? 0f : map[source[i]];
    }

    /// <summary>
    /// A depth map sampled at <paramref name="source"/> as the reference's NYUD pipeline does (data/mtl_ds.py sets depth's
    /// FLAGVALS to INTER_NEAREST for ScaleNRotate and FixedResize; data/custom_transforms.py ScaleNRotate divides depth by
    /// the scale, AddIgnoreRegions turns depth 0 into the ignore value): nearest, depth ÷ scale, and the ignore value for a
    /// hole (0 or the ignore value) and for pixels warped in from outside the image (the reference's border 0, then 255).
    /// Nearest matters here: a hole carries the ignore value, and an interpolating kernel would blend it into the valid
    /// depths around it, giving targets that are neither a depth nor the ignore value, which the masked L1 would train on.
    /// </summary>
    public static void GatherDepth(float[] depth, ReadOnlySpan<int> source, Span<float> output, float ignore, float scale)
    {
        for (int i = 0; i < output.Length; i++)
        {
            float v = source[i] < 0 ? 0f : depth[source[i]];
            output[i] = v == 0f || v == ignore ? ignore : v / scale;
        }
    }

    /// <summary>AddIgnoreRegions for depth at the original resolution: 0 → the ignore value.</summary>
    public static float[] DepthWithIgnore(ReadOnlySpan<float> depth, float ignore)
    {
        var result = depth.ToArray();
        for (int i = 0; i < result.Length; i++) if (result[i] == 0f) result[i] = ignore;
        return result;
    }

    /// <summary>
    /// Evaluation at the original resolution: the sample's labels with only the ignore rules applied, as per-task arrays
    /// (class maps W·H bytes, normals 3·W·H floats CHW with 255 = ignore).
    /// </summary>
    public static Dictionary<DenseTaskDescriptor, Array> OriginalLabels(SourceSample sample, IReadOnlyList<DenseTaskDescriptor> tasks)
    {
        int n = sample.Width * sample.Height;
        var result = new Dictionary<DenseTaskDescriptor, Array>();
        foreach (var task in tasks)
        {
            if (task.Kind == DenseTaskKind.SurfaceNormals)                  // the normals slot, whatever the task's name
            {
                result[task] = ToPlanarWithIgnore(sample.Normals.AsSpan(0, 4 * n));
                continue;
            }
            int slot = SourceSample.Slot(task.ToPascalTask());
            var map = new byte[n];
            if (slot == 1 && sample.NoHumanParts) Array.Fill(map, DenseTasks.IgnoreLabel);
            else sample.ClassMaps[slot].AsSpan(0, n).CopyTo(map);
            if (slot == 1 && !map.AsSpan().ContainsAnyExcept((byte)0)) Array.Fill(map, DenseTasks.IgnoreLabel);
            result[task] = map;
        }
        return result;
    }

    /// <summary>(x, y, z, 0) vectors → CHW planes with 255 in all three where the vector is zero (AddIgnoreRegions without a resize).</summary>
    internal static float[] ToPlanarWithIgnore(ReadOnlySpan<float> vectors)
    {
        var v = MemoryMarshal.Cast<float, Vector128<float>>(vectors);
        int n = v.Length;
        var planar = new float[3 * n];
        for (int i = 0; i < n; i++)
        {
            var p = v[i];
            bool zero = p.GetElement(0) * p.GetElement(0) + p.GetElement(1) * p.GetElement(1) + p.GetElement(2) * p.GetElement(2) == 0;
            planar[i] = zero ? DenseTasks.IgnoreLabel : p.GetElement(0);
            planar[n + i] = zero ? DenseTasks.IgnoreLabel : p.GetElement(1);
            planar[2 * n + i] = zero ? DenseTasks.IgnoreLabel : p.GetElement(2);
        }
        return planar;
    }

    /// <summary>
    /// The evaluation pre-processing of an image alone: bicubic resize to S×S (OpenCV rules), uint8 cast, Normalize, into a
    /// (3, S, S) planar buffer.
    /// </summary>
    public void ResizeAndNormalize(ReadOnlySpan<byte> pixels, bool bgra, int width, int height, Span<float> destination, TransformScratch scratch)
    {
        var rgb = scratch.A(4 * width * height);
        ToFloat4(pixels, bgra, rgb, width * height);
        var resized = scratch.C(4 * _size * _size);
        CvGeometry.ResizeCubic(rgb, width, height, resized, _size, _size);
        Normalize(resized, destination, _lut);
    }

    /// <summary>RGBA or BGRA bytes → (R, G, B, 0) floats.</summary>
    internal static void ToFloat4(ReadOnlySpan<byte> pixels, bool bgra, Span<float> destination, int count)
    {
        var d = MemoryMarshal.Cast<float, Vector128<float>>(destination);
        int r = bgra ? 2 : 0, b = bgra ? 0 : 2;
        for (int i = 0; i < count; i++)
        {
            int o = 4 * i;
            d[i] = Vector128.Create((float)pixels[o + r], pixels[o + 1], pixels[o + b], 0f);
        }
    }

    /// <summary>Reverses every row (cv2.flip(x, 1)).</summary>
    private static void Mirror<T>(Span<T> image, int width, int height)
    {
        for (int y = 0; y < height; y++) image.Slice(y * width, width).Reverse();
    }

    private static void NegateX(Span<Vector128<float>> normals)
    {
        var sign = Vector128.Create(-1f, 1f, 1f, 1f);
        for (int i = 0; i < normals.Length; i++) normals[i] *= sign;
    }

    /// <summary>
    /// The reference's in-plane rotation of normals: φ = atan2(nx, ny), ρ = |(nx, ny)|, nx ← sin(φ+θ)ρ, ny ← cos(φ+θ)ρ,
    /// written in its closed form nx' = nx·cosθ + ny·sinθ, ny' = ny·cosθ − nx·sinθ (in float).
    /// </summary>
    internal static void RotateInPlane(Span<Vector128<float>> normals, double angleDegrees)
    {
        double theta = angleDegrees * Math.PI / 180.0;
        float cos = (float)Math.Cos(theta), sin = (float)Math.Sin(theta);
        for (int i = 0; i < normals.Length; i++)
        {
            var p = normals[i];
            float nx = p.GetElement(0), ny = p.GetElement(1);
            normals[i] = Vector128.Create(nx * cos + ny * sin, ny * cos - nx * sin, p.GetElement(2), 0f);
        }
    }

    /// <summary>
    /// FixedResize's renormalisation n / (|n| + eps) (eps = float64 machine epsilon, so zero vectors stay zero), then
    /// AddIgnoreRegions (|n| = 0 → 255 in all channels), into a (3, S, S) planar buffer.
    /// </summary>
    internal static void RenormalizeToPlanar(ReadOnlySpan<float> normals, Span<float> planar, int count)
    {
        var v = MemoryMarshal.Cast<float, Vector128<float>>(normals);
        for (int i = 0; i < count; i++)
        {
            var p = v[i];
            WriteNormal(p.GetElement(0), p.GetElement(1), p.GetElement(2), planar, i, count);
        }
    }

    /// <summary>One pixel of <see cref="RenormalizeToPlanar"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WriteNormal(float x, float y, float z, Span<float> planar, int i, int count)
    {
        const float eps = 2.220446049250313e-16f;
        float norm = MathF.Sqrt(x * x + y * y + z * z) + eps;
        x /= norm;
        y /= norm;
        z /= norm;
        bool zero = x * x + y * y + z * z == 0;
        planar[i] = zero ? DenseTasks.IgnoreLabel : x;
        planar[count + i] = zero ? DenseTasks.IgnoreLabel : y;
        planar[2 * count + i] = zero ? DenseTasks.IgnoreLabel : z;
    }

    /// <summary>The uint8 cast (clamped; the reference's cast wraps, a negligible difference, §6.1) and Normalize, into planar (3, S, S).</summary>
    private static void Normalize(ReadOnlySpan<float> rgb, Span<float> planar, float[] lut)
    {
        int count = planar.Length / 3;
        var v = MemoryMarshal.Cast<float, Vector128<float>>(rgb);
        for (int i = 0; i < count; i++) WriteImage(v[i], lut, planar, i, count);
    }

    /// <summary>One pixel of <see cref="Normalize"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteImage(Vector128<float> rgb, float[] lut, Span<float> planar, int i, int count)
    {
        var q = Vector128.ConvertToInt32(Vector128.Floor(Vector128.Min(Vector128.Max(rgb, Vector128<float>.Zero), Vector128.Create(255f))));
        planar[i] = lut[q.GetElement(0)];
        planar[count + i] = lut[256 + q.GetElement(1)];
        planar[2 * count + i] = lut[512 + q.GetElement(2)];
    }

    /// <summary>
    /// The single-pass map of a training draw: from output pixel (u, v) of the S×S result to the source position, as an
    /// affine matrix [a, b, c; d, e, f] (x = a·u + b·v + c, y = d·u + e·v + f). It composes, from the output backwards, the
    /// final resize's half-pixel rule (x' = (u + ½)·W/S − ½), the inverse of the rotation/scale about (W/2, H/2) and the flip
    /// (x = W − 1 − x_flipped).
    /// </summary>
    internal static double[] ComposedMap(int width, int height, int size, AugmentationDraw draw)
    {
        var inv = CvGeometry.InvertAffine(CvGeometry.RotationMatrix2D(width / 2.0, height / 2.0, draw.AngleDegrees, draw.Scale));
        double sx = 1.0 / ((double)size / width), sy = 1.0 / ((double)size / height);
        (double X, double Y) At(double u, double v)
        {
            double xw = (u + 0.5) * sx - 0.5, yw = (v + 0.5) * sy - 0.5;                    // in the warped image
            double xf = inv[0] * xw + inv[1] * yw + inv[2], yf = inv[3] * xw + inv[4] * yw + inv[5]; // in the flipped image
            return (draw.Flip ? width - 1 - xf : xf, yf);
        }
        var o = At(0, 0);
        var du = At(1, 0);
        var dv = At(0, 1);
        return [du.X - o.X, dv.X - o.X, o.X, du.Y - o.Y, dv.Y - o.Y, o.Y];
    }

    /// <summary>
    /// The single-pass image and normals: each output pixel's source position is computed once, the image and the normals
    /// are sampled there (OpenCV's bicubic kernel and 1/32-pixel table, constant-0 border), and the results go straight to
    /// the batch: the image through the uint8 cast and Normalize, the normals through the flip and in-plane rotation, the
    /// renormalisation and the ignore rule.
    /// </summary>
    private static void WarpComposed(ReadOnlySpan<float> image, ReadOnlySpan<float> normals, int width, int height, double[] map, int size,
        Span<float> imageOut, float[] lut, Span<float> normalsOut, bool flip, double angleDegrees)
    {
        var src = MemoryMarshal.Cast<float, Vector128<float>>(image[..(4 * width * height)]);
        var nsrc = MemoryMarshal.Cast<float, Vector128<float>>(normals);
        bool withNormals = !normalsOut.IsEmpty;
        double theta = angleDegrees * Math.PI / 180.0;
        float cos = (float)Math.Cos(theta), sin = (float)Math.Sin(theta), sign = flip ? -1f : 1f;
        int count = size * size;
        const double q = CvGeometry.InterTabSize;
        for (int v = 0; v < size; v++)
        {
            double x = map[1] * v + map[2], y = map[4] * v + map[5];
            for (int u = 0; u < size; u++)
            {
                int qx = (int)Math.Floor((map[0] * u + x) * q + 0.5), qy = (int)Math.Floor((map[3] * u + y) * q + 0.5);
                int i = v * size + u;
                WriteImage(CvGeometry.SampleCubic(src, width, height, qx, qy), lut, imageOut, i, count);
                if (!withNormals) continue;
                // Flip (x ← −x) and the in-plane rotation are linear, so applied to the interpolated vector they give what
                // interpolating the flipped and rotated vectors gives (RotateInPlane's formula).
                var n = CvGeometry.SampleCubic(nsrc, width, height, qx, qy);
                float nx = sign * n.GetElement(0), ny = n.GetElement(1);
                WriteNormal(nx * cos + ny * sin, ny * cos - nx * sin, n.GetElement(2), normalsOut, i, count);
            }
        }
    }

    /// <summary>
    /// The class-map path of the single-pass geometry, equal to flip + <c>cv2.warpAffine(INTER_NEAREST)</c> + <c>cv2.resize(INTER_NEAREST)</c>:
    /// output pixel (u, v) reads the warped pixel (nx[u], ny[v]) of the nearest resize, and that pixel is the flipped source at
    /// OpenCV's fixed-point position. Returns the source index of every output pixel, −1 where the source is outside (0).
    /// </summary>
    private static int[] ComposedNearestIndices(int width, int height, bool flip, double[] m, int size, TransformScratch scratch)
    {
        var cols = CvGeometry.NearestIndices(width, size);
        var rows = CvGeometry.NearestIndices(height, size);
        var map = new CvGeometry.FixedPointMap(CvGeometry.InvertAffine(m), width, nearest: true);
        var indices = scratch.Indices(size * size);
        Span<int> warped = width <= 2048 ? stackalloc int[width] : new int[width];
        int lastRow = -1;
        for (int v = 0; v < size; v++)
        {
            if (rows[v] != lastRow)
            {
                lastRow = rows[v];
                CvGeometry.WarpNearestRowIndices(width, height, map, lastRow, flip, warped);
            }
            var row = indices.AsSpan(v * size, size);
            for (int u = 0; u < size; u++) row[u] = warped[cols[u]];
        }
        return indices;
    }
}
