using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// The labels an <see cref="EvaluationProtocol"/> scores, from labels at the image's own size as the loader gives them
/// (class maps H·W with 255 = ignore; normals 3·H·W CHW with 255 in every plane where invalid; depth H·W with 0 or the
/// task's ignore value where invalid).
/// </summary>
/// <remarks>
/// <see cref="EvaluationProtocol.Reference"/> is the reference's test transform of the labels (data/mtl_ds.py::get_transformations:
/// FixedResize, then AddIgnoreRegions; data/custom_transforms.py, data/helpers.py::fixed_resize; docs/mtlora-reference.md §6.1),
/// with the same OpenCV rules (<see cref="CvGeometry"/>) and renormalisation (<see cref="SampleTransform.RenormalizeToPlanar"/>)
/// as the training pipeline, so the labels equal those of <see cref="DenseBatchReader"/> without augmentation.
/// <see cref="EvaluationProtocol.Native"/> keeps the labels at the image's size and applies AddIgnoreRegions alone
/// (<see cref="OriginalClassMap"/>, <see cref="OriginalDepth"/>, <see cref="RenormalizeNormals"/>), as
/// <see cref="DenseBatchReader"/> does with <see cref="DenseBatchReaderOptions.KeepOriginalLabelResolution"/>.
/// </remarks>
internal static class ProtocolLabels
{
    /// <summary>
    /// FixedResize of a class map (semseg, human parts, saliency: cv2 INTER_NEAREST) to S×S, then AddIgnoreRegions: a
    /// human-parts map that is 0 everywhere becomes 255 everywhere.
    /// </summary>
    public static byte[] ResizeClassMap(ReadOnlySpan<byte> map, int width, int height, int size, bool humanParts)
    {
        var resized = new byte[size * size];
        CvGeometry.ResizeNearest(map, width, height, resized, size, size);
        if (humanParts && !resized.AsSpan().ContainsAnyExcept((byte)0)) Array.Fill(resized, DenseTasks.IgnoreLabel);
        return resized;
    }

    /// <summary>
    /// The <see cref="EvaluationProtocol.Native"/> class-map label: AddIgnoreRegions at the original resolution, a human-parts
    /// map that is 0 everywhere (no annotated person) becomes 255 everywhere, as <c>Evaluate(model, data)</c> does
    /// (<see cref="SampleTransform.OriginalLabels"/>); any other map is returned as it is.
    /// </summary>
    public static ReadOnlySpan<byte> OriginalClassMap(ReadOnlySpan<byte> map, bool humanParts)
    {
        if (!humanParts || map.ContainsAnyExcept((byte)0)) return map;
        var ignored = new byte[map.Length];
        Array.Fill(ignored, DenseTasks.IgnoreLabel);
        return ignored;
    }

    /// <summary>
    /// Whether pixel <paramref name="i"/> of CHW normals is marked invalid: 255 in any of the three planes, the rule of the
    /// batch pipeline that <c>Evaluate(model, data)</c> reads labels with (the loader writes 255 in all three).
    /// </summary>
    private static bool IsIgnored(ReadOnlySpan<float> planar, int i, int n) =>
        planar[i] == DenseTasks.IgnoreLabel || planar[n + i] == DenseTasks.IgnoreLabel || planar[2 * n + i] == DenseTasks.IgnoreLabel;

    /// <summary>
    /// FixedResize of normals (cv2 INTER_CUBIC) to S×S, renormalised as n/(‖n‖ + eps), then AddIgnoreRegions (‖n‖ = 0 → 255).
    /// The loader's invalid pixels (255) are the zero vectors the reference's label holds there, so they blend into their
    /// neighbours exactly as in the reference.
    /// </summary>
    public static float[] ResizeNormals(ReadOnlySpan<float> planar, int width, int height, int size)
    {
        int n = width * height;
        if (planar.Length != 3 * n) throw new ArgumentException($"expected {3 * n} normals values (3·{height}·{width}) but got {planar.Length}.", nameof(planar));
        var vectors = new float[4 * n];                                                   // (H, W, 4): x, y, z, 0
        for (int i = 0; i < n; i++)
        {
            if (IsIgnored(planar, i, n)) continue;                                         // invalid: the reference's zero vector
            vectors[4 * i] = planar[i];
            vectors[4 * i + 1] = planar[n + i];
            vectors[4 * i + 2] = planar[2 * n + i];
        }
        var resized = new float[4 * size * size];
        CvGeometry.ResizeCubic(vectors, width, height, resized, size, size);
        var result = new float[3 * size * size];
        SampleTransform.RenormalizeToPlanar(resized, result, size * size);
        return result;
    }

    /// <summary>
    /// FixedResize of a depth map (cv2 INTER_NEAREST, data/mtl_ds.py FLAGVALS) to S×S, then AddIgnoreRegions: a hole (0) and
    /// the ignore value stay the ignore value. The same sampling as the batch pipeline's depth targets without augmentation
    /// (<see cref="SampleTransform.GatherDepth"/>).
    /// </summary>
    public static float[] ResizeDepth(ReadOnlySpan<float> depth, int width, int height, int size, float ignore)
    {
        var resized = new float[size * size];
        CvGeometry.ResizeNearest(depth, width, height, resized, size, size);
        for (int i = 0; i < resized.Length; i++) if (resized[i] == 0f) resized[i] = ignore;
        return resized;
    }

    /// <summary>
    /// The <see cref="EvaluationProtocol.Native"/> depth label: AddIgnoreRegions at the original resolution, a hole (0) becomes
    /// the ignore value (<see cref="SampleTransform.DepthWithIgnore"/>, as <c>Evaluate(model, data)</c> does).
    /// </summary>
    public static float[] OriginalDepth(ReadOnlySpan<float> depth, float ignore) => SampleTransform.DepthWithIgnore(depth, ignore);

    /// <summary>
    /// The <see cref="EvaluationProtocol.Native"/> normals label: each valid vector renormalised as n/(‖n‖ + eps) in place;
    /// ignored pixels (255 in any plane) and zero vectors (AddIgnoreRegions: ‖n‖ = 0) end as 255 in all three planes.
    /// </summary>
    public static void RenormalizeNormals(Span<float> planar)
    {
        int n = planar.Length / 3;
        for (int i = 0; i < n; i++)
        {
            if (IsIgnored(planar, i, n))
            {
                planar[i] = planar[n + i] = planar[2 * n + i] = DenseTasks.IgnoreLabel;
                continue;
            }
            SampleTransform.WriteNormal(planar[i], planar[n + i], planar[2 * n + i], planar, i, n);
        }
    }
}
