using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>The random draws of one training sample's augmentation (reference: RandomHorizontalFlip, then ScaleNRotate).</summary>
/// <param name="Flip">Mirror horizontally (probability 0.5).</param>
/// <param name="AngleDegrees">Rotation angle, uniform in [−20°, 20°]; positive is counter-clockwise.</param>
/// <param name="Scale">Scale, uniform in [0.75, 1.25].</param>
internal readonly record struct AugmentationDraw(bool Flip, double AngleDegrees, double Scale)
{
    /// <summary>No augmentation: no flip, angle 0, scale 1.</summary>
    public static AugmentationDraw Identity => new(false, 0, 1);

    /// <summary>
    /// The draws for one sample, a pure function of (seed, epoch, sample index) so that a resumed or skipped epoch
    /// augments every sample exactly as an uninterrupted one.
    /// </summary>
    public static AugmentationDraw For(int seed, int epoch, long sampleIndex)
    {
        var rng = new SplitMix64(SplitMix64.Combine(0x5EED_A06u, (ulong)(uint)seed, (ulong)(uint)epoch, (ulong)sampleIndex));
        bool flip = rng.NextDouble() < 0.5;
        // Reference: rot = 40·U − 20, sc = 0.5·U − 0.25 + 1.
        double angle = 40.0 * rng.NextDouble() - 20.0;
        double scale = 0.5 * rng.NextDouble() - 0.25 + 1.0;
        return new AugmentationDraw(flip, angle, scale);
    }
}

/// <summary>A small, well-mixed, platform-independent generator (SplitMix64), so orders and draws never depend on the runtime's <see cref="Random"/>.</summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Mixes several values into one seed.</summary>
    public static ulong Combine(params ReadOnlySpan<ulong> values)
    {
        ulong h = 0x243F6A8885A308D3UL;
        foreach (var v in values)
        {
            var m = new SplitMix64(h ^ v);
            h = m.NextUInt64();
        }
        return h;
    }

    /// <summary>A 31-bit seed for <see cref="Random"/> (e.g. the shuffle of an ML.NET cursor).</summary>
    public static int ToInt32Seed(ulong value) => (int)(value & 0x7FFF_FFFF);
}

/// <summary>
/// The reference's per-sample pre-processing (data/custom_transforms.py as used by data/mtl_ds.py::get_transformations),
/// on (C, H, W) float32 CPU tensors: the image holds RGB values 0..255; class maps (semseg, human parts, saliency) are
/// (1, H, W) with 255 = ignore; normals are (3, H, W) with invalid pixels as the zero vector (the reference's form before
/// <c>AddIgnoreRegions</c>).
/// </summary>
internal static class DenseTransforms
{
    /// <summary>ImageNet mean (RGB) used by the reference's Normalize.</summary>
    public static readonly float[] Mean = [0.485f, 0.456f, 0.406f];

    /// <summary>ImageNet standard deviation (RGB) used by the reference's Normalize.</summary>
    public static readonly float[] Std = [0.229f, 0.224f, 0.225f];

    /// <summary>Whether a task's label is warped and resized as a class map (nearest) rather than as normals (bicubic).</summary>
    private static bool IsNearest(DenseTask task) => task != DenseTask.SurfaceNormals;

    /// <summary>
    /// RandomHorizontalFlip then ScaleNRotate with the given draws, in place of the sample's tensors (the old ones are disposed).
    /// </summary>
    public static void Augment(ref Tensor image, Dictionary<DenseTask, Tensor> labels, AugmentationDraw draw)
    {
        if (draw.Flip)
        {
            Replace(ref image, CvGeometry.FlipHorizontal(image));
            foreach (var task in labels.Keys.ToArray())
            {
                var flipped = CvGeometry.FlipHorizontal(labels[task]);
                if (task == DenseTask.SurfaceNormals) flipped[0].neg_();                 // x points the other way
                labels[task].Dispose();
                labels[task] = flipped;
            }
        }

        if (draw.AngleDegrees == 0 && draw.Scale == 1) return;
        // Every element is the image's size here, so one matrix serves all (reference: centre (w/2, h/2) per element).
        // Elements with the same interpolation are warped together: one sampling grid, one gather.
        double[] m = CvGeometry.RotationMatrix2D(image.shape[2] / 2.0, image.shape[1] / 2.0, draw.AngleDegrees, draw.Scale);
        var cubic = new List<(DenseTask? Task, Tensor Value)> { (null, image) };
        var nearest = new List<(DenseTask? Task, Tensor Value)>();
        Tensor? rotatedNormals = null;
        foreach (var (task, label) in labels)
        {
            if (task == DenseTask.SurfaceNormals)
            {
                rotatedNormals = RotateInPlane(label, draw.AngleDegrees);
                cubic.Add((task, rotatedNormals));
            }
            else
            {
                nearest.Add((task, label));
            }
        }
        var results = new List<(DenseTask? Task, Tensor Value)>();
        WarpGroup(cubic, m, bicubic: true, results);
        WarpGroup(nearest, m, bicubic: false, results);
        rotatedNormals?.Dispose();
        foreach (var (task, value) in results)
        {
            if (task is null)
            {
                Replace(ref image, value);
            }
            else
            {
                labels[task.Value].Dispose();
                labels[task.Value] = value;
            }
        }
    }

    private static void WarpGroup(List<(DenseTask? Task, Tensor Value)> group, double[] m, bool bicubic, List<(DenseTask? Task, Tensor Value)> results)
    {
        if (group.Count == 0) return;
        using var scope = NewDisposeScope();
        var stacked = group.Count == 1 ? group[0].Value : torch.cat(group.Select(g => g.Value).ToArray(), 0); // (ΣC, H, W)
        var warped = CvGeometry.WarpAffine(stacked, m, bicubic);
        long offset = 0;
        foreach (var (task, value) in group)
        {
            long channels = value.shape[0];
            results.Add((task, warped.narrow(0, offset, channels).contiguous().MoveToOuterDisposeScope()));
            offset += channels;
        }
    }

    /// <summary>
    /// The reference's in-plane rotation of normals: φ = atan2(nx, ny), ρ = |(nx, ny)|, nx ← sin(φ+θ)ρ, ny ← cos(φ+θ)ρ,
    /// written in its closed form nx' = nx·cosθ + ny·sinθ, ny' = ny·cosθ − nx·sinθ.
    /// </summary>
    public static Tensor RotateInPlane(Tensor normals, double angleDegrees)
    {
        double theta = angleDegrees * Math.PI / 180.0;
        double cos = Math.Cos(theta), sin = Math.Sin(theta);
        using var scope = NewDisposeScope();
        var nx = normals[0];
        var ny = normals[1];
        using var cosScalar = cos.ToScalar();
        using var sinScalar = sin.ToScalar();
        var rx = nx.mul(cosScalar).add(ny.mul(sinScalar));                                // (H, W)
        var ry = ny.mul(cosScalar).sub(nx.mul(sinScalar));                                // (H, W)
        return torch.stack([rx, ry, normals[2]], 0).MoveToOuterDisposeScope();           // (3, H, W)
    }

    /// <summary>FixedResize (aspect ratio ignored): image bicubic, class maps nearest, normals bicubic then renormalised.</summary>
    public static void FixedResize(ref Tensor image, Dictionary<DenseTask, Tensor> labels, int size)
    {
        Replace(ref image, CvGeometry.ResizeBicubic(image, size, size));
        foreach (var task in labels.Keys.ToArray()) labels[task] = ResizeLabel(labels[task], task, size, size, dispose: true);
    }

    /// <summary>Resizes one label as the reference does for its task; normals are renormalised after a bicubic resize.</summary>
    /// <param name="label">The label, (1, H, W) or (3, H, W).</param>
    /// <param name="task">Its task.</param>
    /// <param name="height">Target height.</param>
    /// <param name="width">Target width.</param>
    /// <param name="dispose">Dispose <paramref name="label"/>.</param>
    /// <param name="renormalize">Renormalise normals after the resize (FixedResize does; the load-time resize to the image size does not).</param>
    public static Tensor ResizeLabel(Tensor label, DenseTask task, int height, int width, bool dispose, bool renormalize = true)
    {
        Tensor resized;
        if (IsNearest(task))
        {
            resized = CvGeometry.ResizeNearest(label, height, width);
        }
        else
        {
            using var scope = NewDisposeScope();
            var cubic = CvGeometry.ResizeBicubic(label, height, width);                  // (3, H, W)
            if (!renormalize) return FinishResize(cubic.MoveToOuterDisposeScope(), label, dispose);
            // Reference: n / (|n| + eps) with eps = float64 machine epsilon; zero vectors stay zero.
            using var eps = 2.220446049250313e-16.ToScalar();
            var norm = cubic.mul(cubic).sum(0, keepdim: true).sqrt().add(eps);
            resized = cubic.div(norm).MoveToOuterDisposeScope();
        }
        return FinishResize(resized, label, dispose);
    }

    private static Tensor FinishResize(Tensor resized, Tensor label, bool dispose)
    {
        if (dispose) label.Dispose();
        return resized;
    }

    /// <summary>
    /// AddIgnoreRegions: normals with |n| == 0 become 255 in all channels; a human-parts map that is 0 everywhere becomes 255
    /// everywhere (an image without annotated persons).
    /// </summary>
    public static void AddIgnoreRegions(Dictionary<DenseTask, Tensor> labels)
    {
        if (labels.TryGetValue(DenseTask.SurfaceNormals, out var normals))
        {
            using var scope = NewDisposeScope();
            var invalid = normals.mul(normals).sum(0, keepdim: true).eq(TorchScalars.Zero);  // (1, H, W)
            normals.masked_fill_(invalid, TorchScalars.Ignore);
        }
        if (labels.TryGetValue(DenseTask.HumanParts, out var parts))
        {
            using var scope = NewDisposeScope();
            if (!parts.ne(TorchScalars.Zero).any().item<bool>()) parts.fill_(TorchScalars.Ignore);
        }
    }

    /// <summary>
    /// ToTensor + Normalize for the image: clamp to 0..255 and truncate as the reference's uint8 cast does (the reference
    /// wraps out-of-range values instead of clamping), scale to [0, 1], subtract the ImageNet mean and divide by the std.
    /// </summary>
    /// <param name="image">(3, H, W) RGB 0..255.</param>
    /// <returns>(3, H, W) normalised float32.</returns>
    public static Tensor NormalizeImage(Tensor image)
    {
        using var scope = NewDisposeScope();
        var mean = torch.tensor(Mean, [3, 1, 1], ScalarType.Float32);
        var std = torch.tensor(Std, [3, 1, 1], ScalarType.Float32);
        var unit = image.clamp(TorchScalars.Zero, TorchScalars.Ignore).floor_().div_(TorchScalars.IgnoreF);
        return unit.sub_(mean).div_(std).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Maps the loader's encoding of a label back to the reference's pre-AddIgnoreRegions form: normals with 255 in a
    /// channel become the zero vector, and a human-parts map that is 255 everywhere (no annotated person) becomes all 0.
    /// </summary>
    public static void ToReferenceLabelForm(Dictionary<DenseTask, Tensor> labels)
    {
        if (labels.TryGetValue(DenseTask.SurfaceNormals, out var normals))
        {
            using var scope = NewDisposeScope();
            var invalid = normals.eq(TorchScalars.Ignore).any(0, keepdim: true);         // (1, H, W)
            normals.masked_fill_(invalid, TorchScalars.Zero);
        }
        if (labels.TryGetValue(DenseTask.HumanParts, out var parts))
        {
            using var scope = NewDisposeScope();
            if (parts.eq(TorchScalars.Ignore).all().item<bool>()) parts.zero_();
        }
    }

    private static void Replace(ref Tensor slot, Tensor value)
    {
        slot.Dispose();
        slot = value;
    }
}
