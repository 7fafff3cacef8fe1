using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

public class DenseTransformsTests
{
    private static float[] Grid(int channels, int h, int w) =>
        SampleHarness.Interleave(Enumerable.Range(0, channels * h * w).Select(v => (float)v).ToArray(), channels, h * w);

    [Fact]
    public void Nearest_resize_uses_opencv_source_indices()
    {
        byte[] input = [10, 11, 12, 13, 14];
        // OpenCV: ifx = 5/3; sx = floor(x·ifx) = 0, 1, 3
        var down = new byte[3];
        CvGeometry.ResizeNearest(input, 5, 1, down, 3, 1);
        Assert.Equal([10, 11, 13], down);
        // 5 → 8: ifx = 0.625; floor(x·0.625) = 0,0,1,1,2,3,3,4
        var up = new byte[8];
        CvGeometry.ResizeNearest(input, 5, 1, up, 8, 1);
        Assert.Equal([10, 10, 11, 11, 12, 13, 13, 14], up);
    }

    [Fact]
    public void Identity_warp_returns_the_input_for_both_interpolations()
    {
        double[] identity = [1, 0, 0, 0, 1, 0];
        var grid = Grid(3, 5, 7);
        var cubic = new float[grid.Length];
        CvGeometry.WarpCubic(grid, 7, 5, identity, cubic);
        Assert.Equal(grid, cubic);
        var map = Enumerable.Range(0, 35).Select(v => (byte)v).ToArray();
        var nearest = new byte[35];
        CvGeometry.WarpNearest(map, 7, 5, identity, nearest);
        Assert.Equal(map, nearest);
    }

    [Fact]
    public void Rotation_by_90_degrees_moves_a_marker_counter_clockwise_about_w_over_2_h_over_2()
    {
        var map = new byte[25];
        map[0 * 5 + 1] = 7;                                                    // marker at x=1, y=0
        // getRotationMatrix2D((2.5, 2.5), 90, 1): x' = y, y' = 5 − x  →  (1, 0) goes to (0, 4).
        var m = CvGeometry.RotationMatrix2D(2.5, 2.5, 90, 1);
        var nearest = new byte[25];
        CvGeometry.WarpNearest(map, 5, 5, m, nearest);
        Assert.Equal(7, nearest[4 * 5 + 0]);
        Assert.Equal(7, nearest.Sum(v => v));
        // Row y' = 0 maps to source x = 5, outside the image: constant-0 border.
        Assert.All(nearest[..5], v => Assert.Equal(0, v));
        var image = new float[4 * 25];
        image[4 * 1] = 7f;
        var cubic = new float[4 * 25];
        CvGeometry.WarpCubic(image, 5, 5, m, cubic);
        Assert.True(Math.Abs(cubic[4 * (4 * 5 + 0)] - 7f) < 1e-4);
    }

    [Fact]
    public void Flip_mirrors_every_element_and_negates_normal_x()
    {
        // 4x4 at S = 4: no resize, the flip alone (both geometries take the same path when nothing rotates).
        const int w = 4, h = 4, n = w * h;
        var rgb = Enumerable.Range(0, 3 * n).Select(v => (byte)(5 * v)).ToArray();
        var semseg = Enumerable.Range(1, n).Select(v => (byte)v).ToArray();
        var normals = new float[3 * n];
        for (int i = 0; i < n; i++) { normals[i] = 0.6f; normals[n + i] = 0.8f; }
        normals[0] = -0.6f;                                                     // x at pixel (0, 0)
        foreach (var geometry in Enum.GetValues<AugmentationGeometry>())
        {
            var o = SampleHarness.Run(SampleHarness.Sample(w, h, rgb, new() { [DenseTask.SemanticSegmentation] = semseg }, normals),
                4, geometry, augment: true, new AugmentationDraw(true, 0, 1));
            Assert.Equal([4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13], o.Maps[DenseTask.SemanticSegmentation]);
            var bytes = SampleHarness.ToBytes(o.Image);
            Assert.Equal(rgb[0], bytes[3]);                                    // red (0, 0) → (3, 0)
            Assert.Equal(rgb[3], bytes[0]);
            Assert.Equal(rgb[2 * n + 5], bytes[2 * n + 6]);                    // blue (1, 1) → (2, 1)
            Assert.Equal(0.6f, o.Normals![3], 5);                              // −0.6 at x=0, now at x=3 with x negated
            Assert.Equal(-0.6f, o.Normals[0], 5);
            Assert.Equal(0.8f, o.Normals[n + 3], 5);                           // y unchanged
        }
    }

    [Fact]
    public void In_plane_rotation_of_normals_matches_the_atan2_form()
    {
        var rng = new Random(3);
        var v = Enumerable.Range(0, 20).Select(_ => Vector128.Create((float)rng.NextDouble() - 0.5f, (float)rng.NextDouble() - 0.5f, (float)rng.NextDouble(), 0f)).ToArray();
        var rotated = (Vector128<float>[])v.Clone();
        double theta = 17.5;
        SampleTransform.RotateInPlane(rotated, theta);
        double rad = theta * 2 * Math.PI / 360;
        for (int i = 0; i < v.Length; i++)
        {
            double nx = v[i].GetElement(0), ny = v[i].GetElement(1);
            double phi = Math.Atan2(nx, ny), rho = Math.Sqrt(nx * nx + ny * ny);
            Assert.Equal(Math.Sin(phi + rad) * rho, rotated[i].GetElement(0), 5);
            Assert.Equal(Math.Cos(phi + rad) * rho, rotated[i].GetElement(1), 5);
            Assert.Equal(v[i].GetElement(2), rotated[i].GetElement(2));
        }
        // 90°: (nx, ny) → (ny, −nx)
        Span<Vector128<float>> one = [Vector128.Create(1f, 0f, 0f, 0f)];
        SampleTransform.RotateInPlane(one, 90);
        Assert.True(Math.Abs(one[0].GetElement(0)) < 1e-6 && Math.Abs(one[0].GetElement(1) + 1) < 1e-6);
    }

    [Fact]
    public void Ignore_regions_mark_zero_normals_and_empty_human_parts()
    {
        // 2x2 at S = 2 (no resize): AddIgnoreRegions only.
        var normals = new float[3 * 4];
        normals[2 * 4 + 1] = 1f;                                                // only pixel 1 has a normal (0, 0, 1)
        var rgb = new byte[12];
        var o = SampleHarness.Run(SampleHarness.Sample(2, 2, rgb, new()
        {
            [DenseTask.HumanParts] = [0, 0, 0, 0],
            [DenseTask.SemanticSegmentation] = [0, 0, 0, 0],
            [DenseTask.Saliency] = [1, 0, 1, 0],
        }, normals), 2, AugmentationGeometry.SinglePass, augment: false, AugmentationDraw.Identity);
        Assert.Equal([255, 0, 255, 255, 255, 0, 255, 255, 255, 1, 255, 255], o.Normals!);
        Assert.All(o.Maps[DenseTask.HumanParts], v => Assert.Equal(255, v));
        Assert.All(o.Maps[DenseTask.SemanticSegmentation], v => Assert.Equal(0, v));
        Assert.Equal([1, 0, 1, 0], o.Maps[DenseTask.Saliency]);
        var some = SampleHarness.Run(SampleHarness.Sample(2, 1, new byte[6], new() { [DenseTask.HumanParts] = [0, 3] }),
            2, AugmentationGeometry.SinglePass, augment: false, AugmentationDraw.Identity);
        Assert.Equal([0, 3, 0, 3], some.Maps[DenseTask.HumanParts]);
        // A map that is 255 everywhere (the loader's "no annotated person") is ignored everywhere, and so stays.
        var none = SampleHarness.Run(SampleHarness.Sample(2, 1, new byte[6], new() { [DenseTask.HumanParts] = [255, 255] }),
            2, AugmentationGeometry.SinglePass, augment: true, new AugmentationDraw(false, 10, 1.1));
        Assert.All(none.Maps[DenseTask.HumanParts], v => Assert.Equal(255, v));
    }

    [Fact]
    public void Image_normalisation_clamps_truncates_and_uses_imagenet_statistics()
    {
        var lut = SampleTransform.NormalizationTable(DenseTransforms.Mean, DenseTransforms.Std);
        Assert.Equal((0f - 0.485f) / 0.229f, lut[0], 6);
        Assert.Equal((100f / 255f - 0.456f) / 0.224f, lut[256 + 100], 6);
        Assert.Equal((1f - 0.406f) / 0.225f, lut[512 + 255], 6);
        // A black/white edge upsampled bicubically overshoots below 0 and above 255; the cast clamps (the reference wraps).
        var rgb = new byte[3 * 8];
        for (int c = 0; c < 3; c++) for (int x = 4; x < 8; x++) rgb[c * 8 + x] = 255;
        var o = SampleHarness.Run(SampleHarness.Sample(8, 1, rgb), 32, AugmentationGeometry.SinglePass, augment: false, AugmentationDraw.Identity);
        var bytes = SampleHarness.ToBytes(o.Image);
        Assert.Equal(0, bytes.Min());
        Assert.Equal(255, bytes.Max());
        Assert.Contains(bytes[..32], v => v == 0);
    }

    [Fact]
    public void Augmentation_draws_depend_only_on_seed_epoch_and_index()
    {
        var a = AugmentationDraw.For(0, 3, 17);
        Assert.Equal(a, AugmentationDraw.For(0, 3, 17));
        Assert.NotEqual(a, AugmentationDraw.For(0, 3, 18));
        Assert.NotEqual(a, AugmentationDraw.For(1, 3, 17));
        var draws = Enumerable.Range(0, 2000).Select(i => AugmentationDraw.For(7, 1, i)).ToArray();
        Assert.All(draws, d => Assert.InRange(d.AngleDegrees, -20, 20));
        Assert.All(draws, d => Assert.InRange(d.Scale, 0.75, 1.25));
        Assert.InRange(draws.Count(d => d.Flip), 900, 1100);
        Assert.True(draws.Min(d => d.AngleDegrees) < -19 && draws.Max(d => d.AngleDegrees) > 19);
    }
}
