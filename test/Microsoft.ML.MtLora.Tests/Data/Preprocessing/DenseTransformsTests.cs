using Microsoft.ML.MtLora.Data.Preprocessing;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

public class DenseTransformsTests
{
    private static Tensor Grid(int c, int h, int w) => torch.arange(c * h * w, ScalarType.Float32).reshape(c, h, w);

    [Fact]
    public void Nearest_resize_uses_opencv_source_indices()
    {
        using var scope = NewDisposeScope();
        var input = torch.tensor(new float[] { 10, 11, 12, 13, 14 }, [1, 1, 5]);
        // OpenCV: ifx = 5/3; sx = floor(x·ifx) = 0, 1, 3
        var down = CvGeometry.ResizeNearest(input, 1, 3);
        Assert.Equal(new float[] { 10, 11, 13 }, down.data<float>().ToArray());
        // 5 → 8: ifx = 0.625; floor(x·0.625) = 0,0,1,1,2,3,3,4
        var up = CvGeometry.ResizeNearest(input, 1, 8);
        Assert.Equal(new float[] { 10, 10, 11, 11, 12, 13, 13, 14 }, up.data<float>().ToArray());
    }

    [Fact]
    public void Identity_warp_returns_the_input_for_both_interpolations()
    {
        using var scope = NewDisposeScope();
        var input = Grid(2, 5, 7);
        double[] identity = [1, 0, 0, 0, 1, 0];
        Assert.Equal(0f, (CvGeometry.WarpAffine(input, identity, bicubic: false) - input).abs().max().item<float>());
        Assert.True((CvGeometry.WarpAffine(input, identity, bicubic: true) - input).abs().max().item<float>() < 1e-4f);
    }

    [Fact]
    public void Rotation_by_90_degrees_moves_a_marker_counter_clockwise_about_w_over_2_h_over_2()
    {
        using var scope = NewDisposeScope();
        var input = torch.zeros(1, 5, 5);
        input[0, 0, 1] = torch.tensor(7f);                                   // marker at x=1, y=0
        // getRotationMatrix2D((2.5, 2.5), 90, 1): x' = y, y' = 5 − x  →  (1, 0) goes to (0, 4).
        var m = CvGeometry.RotationMatrix2D(2.5, 2.5, 90, 1);
        var outNearest = CvGeometry.WarpAffine(input, m, bicubic: false);
        Assert.Equal(7f, outNearest[0, 4, 0].item<float>());
        Assert.Equal(7f, outNearest.sum().item<float>());
        // Row y' = 0 maps to source x = 5, outside the image: constant-0 border.
        Assert.Equal(0f, outNearest[0, 0].abs().sum().item<float>());
        var outCubic = CvGeometry.WarpAffine(input, m, bicubic: true);
        Assert.True(Math.Abs(outCubic[0, 4, 0].item<float>() - 7f) < 1e-4);
    }

    [Fact]
    public void Flip_mirrors_every_element_and_negates_normal_x()
    {
        using var scope = NewDisposeScope();
        var image = Grid(3, 2, 4);
        var semseg = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 2, 4]);
        var normals = torch.stack([torch.full(2, 4, 0.6f), torch.full(2, 4, 0.8f), torch.zeros(2, 4)], 0);
        normals[0, 0, 0] = torch.tensor(-0.6f);
        var labels = new Dictionary<DenseTask, Tensor> { [DenseTask.SemanticSegmentation] = semseg.clone(), [DenseTask.SurfaceNormals] = normals.clone() };
        var img = image.clone();
        DenseTransforms.Augment(ref img, labels, new AugmentationDraw(true, 0, 1));
        Assert.Equal(new float[] { 4, 3, 2, 1, 8, 7, 6, 5 }, labels[DenseTask.SemanticSegmentation].data<float>().ToArray());
        Assert.Equal(image[.., .., 0].data<float>().ToArray(), img[.., .., 3].data<float>().ToArray());
        var n = labels[DenseTask.SurfaceNormals];
        Assert.Equal(0.6f, n[0, 0, 3].item<float>());          // was −0.6 at x=0, now at x=3 with x negated
        Assert.Equal(-0.6f, n[0, 1, 0].item<float>());
        Assert.Equal(0.8f, n[1, 0, 3].item<float>());          // y unchanged
    }

    [Fact]
    public void In_plane_rotation_of_normals_matches_the_atan2_form()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        var n = torch.randn(3, 4, 5);
        double theta = 17.5;
        var rotated = DenseTransforms.RotateInPlane(n, theta);
        var phi = torch.atan2(n[0], n[1]);
        var rho = (n[0].square() + n[1].square()).sqrt();
        double rad = theta * 2 * Math.PI / 360;
        var expectedX = (phi + rad).sin() * rho;
        var expectedY = (phi + rad).cos() * rho;
        Assert.True((rotated[0] - expectedX).abs().max().item<float>() < 1e-5f);
        Assert.True((rotated[1] - expectedY).abs().max().item<float>() < 1e-5f);
        Assert.Equal(0f, (rotated[2] - n[2]).abs().max().item<float>());
        // 90°: (nx, ny) → (ny, −nx)
        var quarter = DenseTransforms.RotateInPlane(torch.tensor(new float[] { 1, 0, 0 }, [3, 1, 1]), 90);
        Assert.True(Math.Abs(quarter[0, 0, 0].item<float>()) < 1e-6 && Math.Abs(quarter[1, 0, 0].item<float>() + 1) < 1e-6);
    }

    [Fact]
    public void Add_ignore_regions_marks_zero_normals_and_empty_human_parts()
    {
        using var scope = NewDisposeScope();
        var normals = torch.zeros(3, 1, 2);
        normals[2, 0, 1] = torch.tensor(1f);
        var labels = new Dictionary<DenseTask, Tensor>
        {
            [DenseTask.SurfaceNormals] = normals,
            [DenseTask.HumanParts] = torch.zeros(1, 2, 2),
            [DenseTask.SemanticSegmentation] = torch.zeros(1, 2, 2),
        };
        DenseTransforms.AddIgnoreRegions(labels);
        Assert.Equal(new float[] { 255, 0, 255, 0, 255, 1 }, labels[DenseTask.SurfaceNormals].data<float>().ToArray());
        Assert.All(labels[DenseTask.HumanParts].data<float>().ToArray(), v => Assert.Equal(255f, v));
        Assert.All(labels[DenseTask.SemanticSegmentation].data<float>().ToArray(), v => Assert.Equal(0f, v));
        var someParts = new Dictionary<DenseTask, Tensor> { [DenseTask.HumanParts] = torch.tensor(new float[] { 0, 3 }, [1, 1, 2]) };
        DenseTransforms.AddIgnoreRegions(someParts);
        Assert.Equal(new float[] { 0, 3 }, someParts[DenseTask.HumanParts].data<float>().ToArray());
    }

    [Fact]
    public void Image_normalisation_clamps_truncates_and_uses_imagenet_statistics()
    {
        using var scope = NewDisposeScope();
        var image = torch.tensor(new float[] { -3, 100.7f, 300 }, [3, 1, 1]);
        var n = DenseTransforms.NormalizeImage(image).data<float>().ToArray();
        Assert.Equal((0f - 0.485f) / 0.229f, n[0], 5);
        Assert.Equal((100f / 255f - 0.456f) / 0.224f, n[1], 5);
        Assert.Equal((1f - 0.406f) / 0.225f, n[2], 5);
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
