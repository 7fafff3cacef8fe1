using Microsoft.ML.MtLora.Data.Preprocessing;
using P = Microsoft.ML.MtLora.Tests.Data.Preprocessing.Cv2Parity;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>The managed re-implementation against OpenCV 4.6 outputs (Cv2Parity.cs, written by make_cv2_parity.py).</summary>
public class Cv2ParityTests
{
    private const int N = P.H * P.W;

    private static float[] Image()
    {
        var v = new float[3 * N];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < P.H; y++)
                for (int x = 0; x < P.W; x++) v[(c * P.H + y) * P.W + x] = (x * 37 + y * 91 + c * 53) % 256;
        return v;
    }

    private static byte[] Map(Func<int, int, int> f)
    {
        var v = new byte[N];
        for (int y = 0; y < P.H; y++)
            for (int x = 0; x < P.W; x++) v[y * P.W + x] = (byte)f(x, y);
        return v;
    }

    private static byte[] Semseg() => Map((x, y) => (x * 7 + y * 3) % 22 is var s && s == 21 ? 255 : s);

    private static float[] Normals()
    {
        var v = new float[3 * N];
        for (int y = 0; y < P.H; y++)
            for (int x = 0; x < P.W; x++)
            {
                double a = Math.Sin(x * 0.7 + y * 0.3), b = Math.Cos(x * 0.5 - y * 0.2), c = 0.5 + 0.1 * x;
                double len = Math.Sqrt(a * a + b * b + c * c);
                bool zero = (x + y) % 5 == 0;
                int i = y * P.W + x;
                v[i] = zero ? 0 : (float)(a / len);
                v[N + i] = zero ? 0 : (float)(b / len);
                v[2 * N + i] = zero ? 0 : (float)(c / len);
            }
        return v;
    }

    private static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            float d = Math.Abs(actual[i] - expected[i]);
            if (d > worst) { worst = d; at = i; }
        }
        Assert.True(worst <= tolerance, $"{what}: max |diff| {worst} at {at} (expected {expected[Math.Max(at, 0)]}, got {actual[Math.Max(at, 0)]})");
    }

    private static void AssertEqual(float[] expected, byte[] actual, string what) =>
        Assert.True(expected.Select(v => (byte)v).SequenceEqual(actual), $"{what}: the class map differs from OpenCV's");

    [Fact]
    public void Resize_matches_opencv()
    {
        var image = SampleHarness.Interleave(Image(), 3, N);
        var up = new float[4 * 5 * 14];
        CvGeometry.ResizeCubic(image, P.W, P.H, up, 14, 5);
        AssertClose(P.ResizeCubicUp, SampleHarness.Planar(up, 3), 2e-3f, "cubic up");
        var down = new float[4 * 12 * 4];
        CvGeometry.ResizeCubic(image, P.W, P.H, down, 4, 12);
        AssertClose(P.ResizeCubicDown, SampleHarness.Planar(down, 3), 2e-3f, "cubic down");
        var nearest = new byte[4 * 17];
        CvGeometry.ResizeNearest(Semseg(), P.W, P.H, nearest, 17, 4);
        AssertEqual(P.ResizeNearest, nearest, "nearest");
    }

    [Fact]
    public void Rotation_matrix_and_warp_match_opencv()
    {
        var m = CvGeometry.RotationMatrix2D(P.W / 2.0, P.H / 2.0, P.Angle, P.Scale);
        for (int i = 0; i < 6; i++) Assert.True(Math.Abs(P.WarpMatrix[i] - m[i]) < 1e-5, $"M[{i}] = {m[i]}, OpenCV {P.WarpMatrix[i]}");
        var cubic = new float[4 * N];
        CvGeometry.WarpCubic(SampleHarness.Interleave(Image(), 3, N), P.W, P.H, m, cubic);
        AssertClose(P.WarpCubic, SampleHarness.Planar(cubic, 3), 2e-3f, "warp cubic");
        var nearest = new byte[N];
        CvGeometry.WarpNearest(Semseg(), P.W, P.H, m, nearest);
        AssertEqual(P.WarpNearest, nearest, "warp nearest");
    }

    private static SampleHarness.Output Chain(AugmentationGeometry geometry)
    {
        var rgb = Image().Select(v => (byte)v).ToArray();
        var sample = SampleHarness.Sample(P.W, P.H, rgb, new()
        {
            [DenseTask.SemanticSegmentation] = Semseg(),
            [DenseTask.HumanParts] = Map((x, y) => (x + 2 * y) % 7),
        }, Normals());
        return SampleHarness.Run(sample, P.S, geometry, augment: true, new AugmentationDraw(P.Flip, P.Angle, P.Scale));
    }

    [Fact]
    public void Reference_two_step_chain_matches_the_reference_transforms()
    {
        var o = Chain(AugmentationGeometry.ReferenceTwoStep);
        // The image leaves as the normalised uint8 cast of OpenCV's float result: within 2e-3 of it before the cast.
        var lut = SampleTransform.NormalizationTable(DenseTransforms.Mean, DenseTransforms.Std);
        for (int i = 0; i < o.Image.Length; i++)
        {
            int c = i / (P.S * P.S);
            float e = P.ChainImage[i];
            int lo = (int)Math.Floor(Math.Clamp(e - 2e-3f, 0, 255)), hi = (int)Math.Floor(Math.Clamp(e + 2e-3f, 0, 255));
            Assert.True(o.Image[i] == lut[c * 256 + lo] || o.Image[i] == lut[c * 256 + hi],
                $"image value {i}: OpenCV {e}, got the normalised value of {SampleHarness.ToBytes(o.Image)[i]}");
        }
        AssertEqual(P.ChainSemseg, o.Maps[DenseTask.SemanticSegmentation], "semseg");
        AssertEqual(P.ChainHumanParts, o.Maps[DenseTask.HumanParts], "human parts");
        AssertClose(P.ChainNormals, o.Normals, 2e-4f, "normals");
    }

    [Fact]
    public void Single_pass_class_maps_equal_the_reference_chain_exactly()
    {
        var o = Chain(AugmentationGeometry.SinglePass);
        AssertEqual(P.ChainSemseg, o.Maps[DenseTask.SemanticSegmentation], "semseg");
        AssertEqual(P.ChainHumanParts, o.Maps[DenseTask.HumanParts], "human parts");
    }
}
