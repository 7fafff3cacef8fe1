using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

[Collection(SerialCollection.Name)]
public class EvaluationProtocolTests
{
    // The expected values below come from an independent plain-Python re-implementation of the reference's label transforms
    // (data/helpers.py::fixed_resize → cv2.resize INTER_NEAREST / INTER_CUBIC with A = −0.75 and a replicated border, then
    // data/custom_transforms.py::FixedResize's n/(‖n‖ + np.finfo(float).eps) and AddIgnoreRegions), in double precision,
    // run offline on the same 5×4 and 8×6 inputs (script: for each output pixel, fx = (x + 0.5)·src/dst − 0.5, the 4×4
    // neighbourhood at floor(fx) − 1 … + 2 clamped to the image, cv2's cubic weights; nearest: floor(x·src/dst)).
    private const int W = 5, H = 4;

    private static readonly byte[] Semseg =
    [
        0, 0, 3, 3, 255,
        0, 7, 7, 3, 255,
        1, 7, 7, 20, 20,
        1, 1, 255, 20, 20,
    ];

    /// <summary>The 5×4 normals of the Python run, CHW with 255 where invalid (the loader's layout).</summary>
    private static float[] Normals()
    {
        var invalid = new HashSet<(int, int)> { (0, 0), (1, 0), (0, 1), (4, 3), (3, 3), (4, 2) };
        var planar = new float[3 * W * H];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            {
                int i = y * W + x;
                bool bad = invalid.Contains((x, y));
                planar[i] = bad ? 255 : 0.3f * x - 0.2f * y + 0.1f;
                planar[W * H + i] = bad ? 255 : 0.5f - 0.1f * x * y;
                planar[2 * W * H + i] = bad ? 255 : 1.0f + 0.05f * y;
            }
        return planar;
    }

    private static Dictionary<int, int> Histogram(byte[] map) => map.GroupBy(v => (int)v).ToDictionary(g => g.Key, g => g.Count());

    private static float[] Pixel(float[] planar, int i, int size) => [planar[i], planar[size * size + i], planar[2 * size * size + i]];

    [Fact]
    public void ClassMapsAreResizedAsCv2NearestDoes()
    {
        Assert.Equal(new Dictionary<int, int> { [0] = 3, [1] = 1, [3] = 2, [7] = 2, [20] = 1 }, Histogram(ProtocolLabels.ResizeClassMap(Semseg, W, H, 3, humanParts: false)));
        Assert.Equal(new Dictionary<int, int> { [0] = 10, [1] = 7, [3] = 8, [7] = 12, [20] = 6, [255] = 6 }, Histogram(ProtocolLabels.ResizeClassMap(Semseg, W, H, 7, humanParts: false)));
        // AddIgnoreRegions: a human-parts map with no part left after the resize is ignored whole; semseg is not.
        var zeros = new byte[W * H];
        Assert.All(ProtocolLabels.ResizeClassMap(zeros, W, H, 3, humanParts: true), v => Assert.Equal(255, v));
        Assert.All(ProtocolLabels.ResizeClassMap(zeros, W, H, 3, humanParts: false), v => Assert.Equal(0, v));
    }

    [Fact]
    public void NativeLabelsGetAddIgnoreRegionsAsTheBatchPipelineDoes()
    {
        // A human-parts map 0 everywhere is ignored whole; one with a part, or a semseg map of zeros, is kept as it is.
        var zeros = new byte[W * H];
        Assert.All(ProtocolLabels.OriginalClassMap(zeros, humanParts: true).ToArray(), v => Assert.Equal(255, v));
        Assert.All(ProtocolLabels.OriginalClassMap(zeros, humanParts: false).ToArray(), v => Assert.Equal(0, v));
        var onePart = new byte[W * H];
        onePart[7] = 3;
        Assert.Equal(onePart, ProtocolLabels.OriginalClassMap(onePart, humanParts: true).ToArray());

        // Normals: 255 in any one plane marks the pixel invalid (SampleSources' ReadNormals rule), as does the zero vector;
        // both end as 255 in all three planes, natively and after the Reference resize.
        var normals = Normals();
        int n = W * H;
        normals[n + 7] = 255;                                                              // pixel 7: y only
        normals[2 * n + 8] = 255;                                                          // pixel 8: z only
        normals[9] = normals[n + 9] = normals[2 * n + 9] = 0;                              // pixel 9: the zero vector
        var native = (float[])normals.Clone();
        ProtocolLabels.RenormalizeNormals(native);
        foreach (int i in new[] { 0, 7, 8, 9 }) Assert.Equal([255f, 255f, 255f], new[] { native[i], native[n + i], native[2 * n + i] });
        Assert.Equal(n - 9, Enumerable.Range(0, n).Count(i => native[i] != 255));           // the 6 invalid pixels of Normals() and these 3
        var allPlanes = Normals();
        foreach (int i in new[] { 7, 8, 9 }) allPlanes[i] = allPlanes[n + i] = allPlanes[2 * n + i] = 255;
        Assert.Equal(ProtocolLabels.ResizeNormals(allPlanes, W, H, 7), ProtocolLabels.ResizeNormals(normals, W, H, 7));
    }

    [Theory]
    [InlineData(3, 0, new[] { -0.790386f, -0.374288f, -0.484973f })]
    [InlineData(3, 4, new[] { 0.343550f, 0.171775f, 0.923291f })]
    [InlineData(3, 8, new[] { 0.511232f, -0.207127f, -0.834110f })]
    [InlineData(7, 0, new[] { 0.175243f, 0.350486f, 0.920027f })]
    [InlineData(7, 24, new[] { 0.343550f, 0.171775f, 0.923291f })]
    [InlineData(7, 48, new[] { 0.477334f, -0.079556f, 0.875113f })]
    public void NormalsAreResizedBicubicallyAndRenormalisedAsTheReferenceDoes(int size, int pixel, float[] expected)
    {
        var resized = ProtocolLabels.ResizeNormals(Normals(), W, H, size);
        Assert.Equal(3 * size * size, resized.Length);
        Assert.Equal(0, resized.Count(v => v == 255));                  // the Python run: every pixel valid at 3 and at 7
        var v = Pixel(resized, pixel, size);
        for (int c = 0; c < 3; c++) Assert.Equal(expected[c], v[c], 1e-5f);
    }

    [Fact]
    public void NormalsFarFromAnyValidPixelStayIgnored()
    {
        // 8×6, the left half invalid, to 4×4: the Python run leaves exactly pixels 0, 4, 8 and 12 (column 0) zero → 255.
        const int w = 8, h = 6, s = 4;
        var planar = new float[3 * w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                bool bad = x < 4;
                planar[i] = bad ? 255 : 0.2f * x - 1.0f;
                planar[w * h + i] = bad ? 255 : 0.1f * y;
                planar[2 * w * h + i] = bad ? 255 : 1.0f;
            }
        var resized = ProtocolLabels.ResizeNormals(planar, w, h, s);
        var ignored = Enumerable.Range(0, s * s).Where(i => resized[i] == 255).ToArray();
        Assert.Equal([0, 4, 8, 12], ignored);
        Assert.All(ignored, i => Assert.Equal([255f, 255f], new[] { resized[s * s + i], resized[2 * s * s + i] }));
        float[][] expected = [[0.196082f, -0.018766f, -0.980408f], [0.299774f, 0.160173f, 0.940468f], [0.276098f, 0.416515f, 0.866190f]];
        foreach (var (i, e) in new[] { 1, 7, 15 }.Zip(expected))
            for (int c = 0; c < 3; c++) Assert.Equal(e[c], Pixel(resized, i, s)[c], 1e-5f);
    }

    private sealed class ScoredRow
    {
        public int Height { get; set; }
        public int Width { get; set; }
        [VectorType] public byte[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
    }

    private sealed class NormalsRow
    {
        [VectorType] public float[] NormalsLabel { get; set; } = [];
        [VectorType] public float[] NormalsPredicted { get; set; } = [];
    }

    [Fact]
    public void ScoredViewUnderReferenceResizesTheLabelsToTheInputSize()
    {
        var ml = new MLContext(seed: 0);
        // A 2×2 label [1 2; 3 255] becomes four 2×2 blocks at 4×4; the prediction matches it except one pixel of class 1 said 2.
        byte[] prediction = [1, 1, 2, 2, 2, 1, 2, 2, 3, 3, 0, 0, 3, 3, 0, 0];
        var view = ml.Data.LoadFromEnumerable([new ScoredRow { Height = 2, Width = 2, SemsegLabel = [1, 2, 3, 255], SemsegPredictedLabel = prediction }]);
        var m = ml.MultiTask().Evaluate(view, new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Reference, ImageSize = 4 });
        Assert.Equal(EvaluationProtocol.Reference, m.Protocol);
        Assert.Equal(12, m.SemanticSegmentation!.PixelCount);                 // the 4 ignored pixels left out
        Assert.Equal(3.0 / 4, m.SemanticSegmentation.PerClassIoU[1], 12);      // TP 3, FN 1
        Assert.Equal(4.0 / 5, m.SemanticSegmentation.PerClassIoU[2], 12);      // TP 4, FP 1
        Assert.Equal(1.0, m.SemanticSegmentation.PerClassIoU[3], 12);
        Assert.Equal("reference", m.ToJson()["protocol"]!.GetValue<string>());

        // Predictions that are not S×S cannot be scored the reference's way: the message says what to do.
        var native = ml.Data.LoadFromEnumerable([new ScoredRow { Height = 2, Width = 2, SemsegLabel = [1, 2, 3, 255], SemsegPredictedLabel = [1, 2, 3, 0] }]);
        var e = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(native, new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Reference, ImageSize = 4 }));
        Assert.Contains("SemsegPredictedLabel", e.Message, StringComparison.Ordinal);
        Assert.Contains("Protocol = Native", e.Message, StringComparison.Ordinal);
        // The default for a scored view is Native, and it says so.
        Assert.Equal(EvaluationProtocol.Native, ml.MultiTask().Evaluate(native, new MultiTaskEvaluatorOptions()).Protocol);
    }

    [Fact]
    public void NativeRenormalisesTheNormalsLabels()
    {
        var ml = new MLContext(seed: 0);
        // Label (0.3, 0, 0.4) has length 0.5: unnormalised its dot product with the unit prediction is 0.5 (60°); renormalised, 0°.
        var view = ml.Data.LoadFromEnumerable([new NormalsRow { NormalsLabel = [0.3f, 255, 0, 255, 0.4f, 255], NormalsPredicted = [0.6f, 1, 0, 0, 0.8f, 0] }]);
        var m = ml.MultiTask().Evaluate(view, new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Native, Baselines = SingleTaskBaselines.None });
        Assert.Equal(1, m.SurfaceNormals!.PixelCount);
        Assert.Equal(0.0, m.SurfaceNormals.Mean, 3);
    }

    [Fact]
    public void ModelEvaluationDefaultsToReferenceAndScoresAtTheInputSize()
    {
        var ml = new MLContext(seed: 0);
        using var folder = Fixture.TempDir();
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var data = MtLoraEstimatorTests.Labelled(ml, folder.Path, 3);            // assorted sizes, every normal valid
        long nativePixels = 0;
        using (var c = data.GetRowCursor(data.Schema.Where(col => col.Name is "Height" or "Width")))
        {
            var gh = c.GetGetter<int>(data.Schema["Height"]);
            var gw = c.GetGetter<int>(data.Schema["Width"]);
            int h = 0, w = 0;
            while (c.MoveNext()) { gh(ref h); gw(ref w); nativePixels += (long)h * w; }
        }

        var reference = ml.MultiTask().Evaluate(model, data);
        Assert.Equal(EvaluationProtocol.Reference, reference.Protocol);
        Assert.Equal(3L * 128 * 128, reference.SurfaceNormals!.PixelCount);      // tiny4's input size is 128
        Assert.Equal(3, reference.Saliency!.ImageCount);

        var native = ml.MultiTask().Evaluate(model, data, new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Native });
        Assert.Equal(EvaluationProtocol.Native, native.Protocol);
        Assert.Equal(nativePixels, native.SurfaceNormals!.PixelCount);
        // Native through the model equals scoring the transformer's own prediction columns.
        var scored = ml.MultiTask().Evaluate(model.Transform(data), new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Native });
        Assert.Equal(scored.SemanticSegmentation!.MeanIoU, native.SemanticSegmentation!.MeanIoU, 9);
        Assert.Equal(scored.SurfaceNormals!.Mean, native.SurfaceNormals.Mean, 4);
        Assert.Equal(scored.Saliency!.MeanIoU, native.Saliency!.MeanIoU, 9);
    }

    [Fact]
    public void AtTheInputSizeTheProtocolsAgree()
    {
        var ml = new MLContext(seed: 0);
        using var folder = Fixture.TempDir();
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var files = MtLoraEstimatorTests.LabelledFiles(ml, folder.Path, 2, size: (128, 128));
        var data = ml.Transforms.LoadImages("Image", folder.Path, "Name").Fit(files).Transform(files);
        var reference = ml.MultiTask().Evaluate(model, data);
        var native = ml.MultiTask().Evaluate(model, data, new MultiTaskEvaluatorOptions { Protocol = EvaluationProtocol.Native });
        Assert.Equal(reference.SemanticSegmentation!.PerClassIoU, native.SemanticSegmentation!.PerClassIoU);
        Assert.Equal(reference.HumanParts!.MeanIoU, native.HumanParts!.MeanIoU);
        Assert.Equal(reference.Saliency!.MeanIoU, native.Saliency!.MeanIoU);
        Assert.Equal(reference.SurfaceNormals!.Mean, native.SurfaceNormals!.Mean, 6);
    }
}
