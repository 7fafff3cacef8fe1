using Microsoft.ML.MtLora.Data.Preprocessing;
using TorchSharp;
using static TorchSharp.torch;
using P = Microsoft.ML.MtLora.Tests.Data.Preprocessing.Cv2Parity;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>The tensor re-implementation against OpenCV 4.6 outputs (Cv2Parity.cs, written by make_cv2_parity.py).</summary>
public class Cv2ParityTests
{
    private static Tensor Image()
    {
        var v = new float[3 * P.H * P.W];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < P.H; y++)
                for (int x = 0; x < P.W; x++) v[(c * P.H + y) * P.W + x] = (x * 37 + y * 91 + c * 53) % 256;
        return torch.tensor(v, [3, P.H, P.W]);
    }

    private static Tensor Map(Func<int, int, float> f)
    {
        var v = new float[P.H * P.W];
        for (int y = 0; y < P.H; y++)
            for (int x = 0; x < P.W; x++) v[y * P.W + x] = f(x, y);
        return torch.tensor(v, [1, P.H, P.W]);
    }

    private static Tensor Semseg() => Map((x, y) => (x * 7 + y * 3) % 22 is var s && s == 21 ? 255 : s);

    private static Tensor Normals()
    {
        var v = new float[3 * P.H * P.W];
        for (int y = 0; y < P.H; y++)
            for (int x = 0; x < P.W; x++)
            {
                double a = Math.Sin(x * 0.7 + y * 0.3), b = Math.Cos(x * 0.5 - y * 0.2), c = 0.5 + 0.1 * x;
                double len = Math.Sqrt(a * a + b * b + c * c);
                bool zero = (x + y) % 5 == 0;
                int i = y * P.W + x;
                v[i] = zero ? 0 : (float)(a / len);
                v[P.H * P.W + i] = zero ? 0 : (float)(b / len);
                v[2 * P.H * P.W + i] = zero ? 0 : (float)(c / len);
            }
        return torch.tensor(v, [3, P.H, P.W]);
    }

    private static void AssertClose(float[] expected, Tensor actual, float tolerance, string what)
    {
        var a = actual.contiguous().data<float>().ToArray();
        Assert.Equal(expected.Length, a.Length);
        float worst = 0;
        int at = -1;
        for (int i = 0; i < a.Length; i++)
        {
            float d = Math.Abs(a[i] - expected[i]);
            if (d > worst) { worst = d; at = i; }
        }
        Assert.True(worst <= tolerance, $"{what}: max |diff| {worst} at {at} (expected {expected[Math.Max(at, 0)]}, got {a[Math.Max(at, 0)]})");
    }

    [Fact]
    public void Resize_matches_opencv()
    {
        using var scope = NewDisposeScope();
        AssertClose(P.ResizeCubicUp, CvGeometry.ResizeBicubic(Image(), 5, 14), 2e-3f, "cubic up");
        AssertClose(P.ResizeCubicDown, CvGeometry.ResizeBicubic(Image(), 12, 4), 2e-3f, "cubic down");
        AssertClose(P.ResizeNearest, CvGeometry.ResizeNearest(Semseg(), 4, 17), 0, "nearest");
    }

    [Fact]
    public void Rotation_matrix_and_warp_match_opencv()
    {
        using var scope = NewDisposeScope();
        var m = CvGeometry.RotationMatrix2D(P.W / 2.0, P.H / 2.0, P.Angle, P.Scale);
        for (int i = 0; i < 6; i++) Assert.True(Math.Abs(P.WarpMatrix[i] - m[i]) < 1e-5, $"M[{i}] = {m[i]}, OpenCV {P.WarpMatrix[i]}");
        AssertClose(P.WarpCubic, CvGeometry.WarpAffine(Image(), m, bicubic: true), 2e-3f, "warp cubic");
        AssertClose(P.WarpNearest, CvGeometry.WarpAffine(Semseg(), m, bicubic: false), 0, "warp nearest");
    }

    [Fact]
    public void Training_chain_matches_the_reference_transforms()
    {
        using var scope = NewDisposeScope();
        var image = Image();
        var labels = new Dictionary<DenseTask, Tensor>
        {
            [DenseTask.SemanticSegmentation] = Semseg(),
            [DenseTask.HumanParts] = Map((x, y) => (x + 2 * y) % 7),
            [DenseTask.SurfaceNormals] = Normals(),
        };
        DenseTransforms.Augment(ref image, labels, new AugmentationDraw(P.Flip, P.Angle, P.Scale));
        DenseTransforms.FixedResize(ref image, labels, P.S);
        DenseTransforms.AddIgnoreRegions(labels);
        AssertClose(P.ChainImage, image, 2e-3f, "image");
        AssertClose(P.ChainSemseg, labels[DenseTask.SemanticSegmentation], 0, "semseg");
        AssertClose(P.ChainHumanParts, labels[DenseTask.HumanParts], 0, "human parts");
        AssertClose(P.ChainNormals, labels[DenseTask.SurfaceNormals], 2e-4f, "normals");
    }
}
