using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Data.Synthetic;
using Xunit.Abstractions;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>
/// How far the single-pass geometry (the default) is from the reference's two steps (warp at the original size, then
/// resize): the numbers README.md quotes under "Data loading" come from these tests' output.
/// </summary>
public class SinglePassFidelityTests(ITestOutputHelper output)
{
    private const int S = 448;

    private sealed class Distance
    {
        public long Pixels, ImageAbs, Over8, MapPixels, MapAgree, NormalPixels, IgnoreAgree, BothValid;
        public double AngleSum, AngleMax;
        public int ImageMax;

        public double ImageMad => (double)ImageAbs / Pixels;

        public double MeanAngle => AngleSum / BothValid;

        public void Add(SampleHarness.Output exact, SampleHarness.Output fast)
        {
            var a = SampleHarness.ToBytes(exact.Image);
            var b = SampleHarness.ToBytes(fast.Image);
            for (int i = 0; i < a.Length; i++)
            {
                int d = Math.Abs(a[i] - b[i]);
                ImageAbs += d;
                ImageMax = Math.Max(ImageMax, d);
                if (d > 8) Over8++;
            }
            Pixels += a.Length;
            foreach (var (task, map) in exact.Maps)
            {
                MapPixels += map.Length;
                MapAgree += map.Zip(fast.Maps[task]).Count(p => p.First == p.Second);
            }
            if (exact.Normals is null) return;
            int n = S * S;
            for (int i = 0; i < n; i++)
            {
                bool ia = exact.Normals[i] == 255, ib = fast.Normals![i] == 255;
                NormalPixels++;
                if (ia == ib) IgnoreAgree++;
                if (ia || ib) continue;
                double dot = exact.Normals[i] * fast.Normals[i] + exact.Normals[n + i] * fast.Normals[n + i] + exact.Normals[2 * n + i] * fast.Normals[2 * n + i];
                double angle = Math.Acos(Math.Clamp(dot, -1, 1)) * 180 / Math.PI;
                AngleSum += angle;
                AngleMax = Math.Max(AngleMax, angle);
                BothValid++;
            }
        }

        public override string ToString() =>
            $"image: mean |diff| {ImageMad:F2} of 255 (max {ImageMax}, {100.0 * Over8 / Pixels:F2} % of values off by more than 8); " +
            $"class maps: {100.0 * MapAgree / MapPixels:F3} % of pixels equal; normals: mean angle {MeanAngle:F2}° (max {AngleMax:F1}°), " +
            $"ignore mask {100.0 * IgnoreAgree / NormalPixels:F2} % equal";
    }

    private static SampleHarness.Output Run(SourceSample sample, AugmentationGeometry geometry, AugmentationDraw draw)
    {
        // The transforms may modify the source buffers: each run gets its own copy.
        var copy = new SourceSample { Id = sample.Id, Width = sample.Width, Height = sample.Height, Bgra = sample.Bgra, NoHumanParts = sample.NoHumanParts, HasNormals = sample.HasNormals };
        copy.Pixels = (byte[])sample.Pixels.Clone();
        copy.Normals = (float[])sample.Normals.Clone();
        for (int i = 0; i < 3; i++) copy.ClassMaps[i] = (byte[]?)sample.ClassMaps[i]?.Clone();
        return SampleHarness.Run(copy, S, geometry, augment: true, draw);
    }

    [Fact]
    public void On_pascal_like_scenes_single_pass_stays_close_to_the_reference_two_steps()
    {
        using var dir = Fixture.TempDir();
        SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { TrainCount = 4, ValCount = 0, RealisticSizes = true, Seed = 11 });
        var view = (PascalContextDataView)new MLContext().Data.LoadPascalContext(dir.Path, "train");
        var source = new PascalSampleSource(view, DenseTasks.All, order: null, cache: null);
        var distance = new Distance();
        for (int k = 0; k < 4; k++)
        {
            var sample = new SourceSample();
            Assert.True(source.Read(k, sample, null));
            for (int d = 0; d < 3; d++)
            {
                var draw = AugmentationDraw.For(5, 0, 3 * k + d);
                distance.Add(Run(sample, AugmentationGeometry.ReferenceTwoStep, draw), Run(sample, AugmentationGeometry.SinglePass, draw));
            }
        }
        output.WriteLine($"PASCAL-like synthetic scenes (4 images of 500 px, 3 draws each, S = {S}): {distance}");
        Assert.Equal(distance.MapPixels, distance.MapAgree);                 // class maps: identical by construction
        Assert.True(distance.ImageMad < 2.0, distance.ToString());
        Assert.True(distance.MeanAngle < 2.0, distance.ToString());
        Assert.True(distance.IgnoreAgree > 0.99 * distance.NormalPixels, distance.ToString());
    }

    [Fact]
    public void On_white_noise_the_worst_case_the_difference_is_bounded()
    {
        // Independent random pixels: all energy at the highest frequencies, where one interpolation and two differ most.
        const int w = 500, h = 375;
        var rng = new Random(4);
        var rgb = new byte[3 * w * h];
        rng.NextBytes(rgb);
        var normals = new float[3 * w * h];
        for (int i = 0; i < w * h; i++)
        {
            double a = rng.NextDouble() * 2 * Math.PI, z = rng.NextDouble();
            double r = Math.Sqrt(1 - z * z);
            normals[i] = (float)(r * Math.Cos(a));
            normals[w * h + i] = (float)(r * Math.Sin(a));
            normals[2 * w * h + i] = (float)z;
        }
        var classes = new byte[w * h];
        rng.NextBytes(classes);
        var sample = SampleHarness.Sample(w, h, rgb, new() { [DenseTask.SemanticSegmentation] = classes }, normals);
        var distance = new Distance();
        for (int d = 0; d < 3; d++)
        {
            var draw = AugmentationDraw.For(6, 0, d);
            distance.Add(Run(sample, AugmentationGeometry.ReferenceTwoStep, draw), Run(sample, AugmentationGeometry.SinglePass, draw));
        }
        output.WriteLine($"white noise (500x375, 3 draws, S = {S}): {distance}");
        Assert.Equal(distance.MapPixels, distance.MapAgree);
        Assert.True(distance.ImageMad < 40, distance.ToString());
    }
}
