using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>Builds <see cref="SourceSample"/>s from plain arrays and runs <see cref="SampleTransform"/> on them.</summary>
internal static class SampleHarness
{
    /// <summary>The outputs of one sample: image (3, S, S) normalised, class maps (S, S) by task, normals (3, S, S).</summary>
    internal sealed record Output(float[] Image, Dictionary<DenseTask, byte[]> Maps, float[]? Normals);

    /// <summary>A sample from CHW RGB bytes, row-major class maps and CHW normals (zero vector = invalid).</summary>
    public static SourceSample Sample(int width, int height, byte[] rgbPlanar, Dictionary<DenseTask, byte[]>? maps = null, float[]? normalsPlanar = null)
    {
        int n = width * height;
        var s = new SourceSample { Id = "test", Width = width, Height = height };
        s.Pixels = new byte[4 * n];
        for (int i = 0; i < n; i++)
        {
            s.Pixels[4 * i] = rgbPlanar[i];
            s.Pixels[4 * i + 1] = rgbPlanar[n + i];
            s.Pixels[4 * i + 2] = rgbPlanar[2 * n + i];
            s.Pixels[4 * i + 3] = 255;
        }
        foreach (var (task, map) in maps ?? [])
        {
            s.ClassMaps[SourceSample.Slot(task)] = (byte[])map.Clone();
            if (task == DenseTask.HumanParts && map.All(v => v == 255)) s.NoHumanParts = true;
        }
        if (normalsPlanar is not null)
        {
            s.Normals = new float[4 * n];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < 3; c++) s.Normals[4 * i + c] = normalsPlanar[c * n + i];
            s.HasNormals = true;
        }
        return s;
    }

    public static Output Run(SourceSample sample, int size, AugmentationGeometry geometry, bool augment, AugmentationDraw draw)
    {
        int area = size * size;
        var image = new float[3 * area];
        var maps = new Dictionary<DenseTask, byte[]>();
        foreach (var task in new[] { DenseTask.SemanticSegmentation, DenseTask.HumanParts, DenseTask.Saliency })
            if (sample.ClassMaps[SourceSample.Slot(task)] is not null || (task == DenseTask.HumanParts && sample.NoHumanParts)) maps[task] = new byte[area];
        var normals = sample.HasNormals ? new float[3 * area] : null;
        var targets = new SampleTargets
        {
            Image = image,
            Semseg = maps.GetValueOrDefault(DenseTask.SemanticSegmentation),
            HumanParts = maps.GetValueOrDefault(DenseTask.HumanParts),
            Saliency = maps.GetValueOrDefault(DenseTask.Saliency),
            Normals = normals,
        };
        new SampleTransform(size, geometry).Apply(sample, augment, draw, targets, new TransformScratch());
        return new Output(image, maps, normals);
    }

    /// <summary>The 8-bit value (0..255) each normalised image value came from (inverse of the reference's Normalize).</summary>
    public static int[] ToBytes(float[] normalised)
    {
        int plane = normalised.Length / 3;
        var result = new int[normalised.Length];
        for (int i = 0; i < normalised.Length; i++)
        {
            int c = i / plane;
            result[i] = (int)Math.Round((normalised[i] * DenseTransforms.Std[c] + DenseTransforms.Mean[c]) * 255);
        }
        return result;
    }

    /// <summary>CHW floats → 4-channel interleaved (the 4th channel 0).</summary>
    public static float[] Interleave(float[] planar, int channels, int count)
    {
        var v = new float[4 * count];
        for (int i = 0; i < count; i++)
            for (int c = 0; c < channels; c++) v[4 * i + c] = planar[c * count + i];
        return v;
    }

    /// <summary>4-channel interleaved → CHW of the first <paramref name="channels"/> channels.</summary>
    public static float[] Planar(ReadOnlySpan<float> interleaved, int channels)
    {
        var v = MemoryMarshal.Cast<float, Vector128<float>>(interleaved);
        var p = new float[channels * v.Length];
        for (int i = 0; i < v.Length; i++)
            for (int c = 0; c < channels; c++) p[c * v.Length + i] = v[i].GetElement(c);
        return p;
    }
}
