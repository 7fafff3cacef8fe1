using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Tests.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

/// <summary>
/// <c>Evaluate(scored view, options)</c> on tasks outside PASCAL-Context: a model's own tasks read by kind from the transformer's
/// columns give what <c>Evaluate(model, data)</c> gives, under both protocols.
/// </summary>
// Fit seeds and draws from torch's process-wide generator.
[Collection(SerialCollection.Name)]
public class ScoredViewAnyTaskTests
{
    private const int Size = 128;                                                        // tiny4's input size

    private static readonly DenseTaskDescriptor Defects = CustomLabelBatchTests.Defects;
    private static readonly DenseTaskDescriptor Range = CustomLabelBatchTests.Range;
    private static readonly DenseTaskDescriptor Cracks = CustomLabelBatchTests.Cracks;

    private static MtLoraTransformer Fit(MLContext ml, IDataView data, IReadOnlyList<DenseTaskDescriptor> tasks)
    {
        var options = MtLoraEstimatorTests.OneStepOptions();
        options.Network.Tasks = tasks;
        options.PretrainedWeightsPath = Fixture.Path("swin_ms", "swin_ms_format.pth"); // a backbone: the task heads start fresh
        return ml.MultiTask().Trainers.MtLora(options).Fit(data);
    }

    private static MultiTaskEvaluatorOptions Options(MtLoraTransformer model, EvaluationProtocol protocol) => new()
    {
        Tasks = [.. model.Tasks],
        Protocol = protocol,
        Baselines = SingleTaskBaselines.None,
        ImageSize = model.ImageSize,
    };

    /// <summary>The input row of the file-name mapping.</summary>
    public sealed class KeyInput
    {
        public string ResizedKey { get; set; } = "";
    }

    /// <summary>The output row of the file-name mapping: the resized image's file.</summary>
    public sealed class FileOutput
    {
        public string ResizedFile { get; set; } = "";
    }

    /// <summary>
    /// The image FixedResize of the evaluation pipeline, done ahead: bicubic to S×S (OpenCV rules) and the uint8 cast
    /// (<c>SampleTransform.Apply</c> without augmentation). The transformer's own resize of an S×S image is then the
    /// identity, so its S×S predictions are the network's outputs on the pipeline's input.
    /// </summary>
    private static MLImage ResizeAsThePipeline(MLImage image, int s)
    {
        int w = image.Width, h = image.Height;
        var pixels = new byte[4 * w * h];
        MLImagePixels.CopyTo(image, pixels);
        var rgb = new float[4 * w * h];
        SampleTransform.ToFloat4(pixels, MLImagePixels.IsBgra(image), rgb, w * h);
        var resized = new float[4 * s * s];
        CvGeometry.ResizeCubic(rgb, w, h, resized, s, s);
        var rgba = new byte[4 * s * s];
        for (int i = 0; i < s * s; i++)
        {
            for (int c = 0; c < 3; c++) rgba[4 * i + c] = (byte)MathF.Floor(Math.Clamp(resized[4 * i + c], 0f, 255f));
            rgba[4 * i + 3] = 255;
        }
        return MLImage.CreateFromPixels(s, s, MLPixelFormat.Rgba32, rgba);
    }

    /// <summary>
    /// The data with each image resized to S×S and its original size kept in OriginalHeight/OriginalWidth (the transformer's
    /// Height/Width then say S×S). The resized images go through lossless PNG files and LoadImages, because ML.NET's
    /// CustomMapping cannot take an image column of unknown size (ImageDataViewType.Equals is false for two such types).
    /// </summary>
    private static IDataView WithInputSizeImages(MLContext ml, IDataView data, string keyColumn, string folder)
    {
        using (var cursor = data.GetRowCursor([data.Schema["Image"], data.Schema[keyColumn]]))
        {
            var image = cursor.GetGetter<MLImage>(data.Schema["Image"]);
            var key = cursor.GetGetter<ReadOnlyMemory<char>>(data.Schema[keyColumn]);
            ReadOnlyMemory<char> name = default;
            while (cursor.MoveNext())
            {
                MLImage value = null!;
                image(ref value);
                key(ref name);
                using (value)
                using (var resized = ResizeAsThePipeline(value, Size)) resized.Save(Path.Combine(folder, $"{name}.resized.png"));
            }
        }
        var pipeline = ml.Transforms.CopyColumns("OriginalHeight", "Height")
            .Append(ml.Transforms.CopyColumns("OriginalWidth", "Width"))
            .Append(ml.Transforms.CopyColumns("ResizedKey", keyColumn))
            .Append(ml.Transforms.CustomMapping<KeyInput, FileOutput>((input, output) => output.ResizedFile = input.ResizedKey + ".resized.png", contractName: null))
            .Append(ml.Transforms.LoadImages("Image", folder, "ResizedFile"));
        return pipeline.Fit(data).Transform(data);
    }

    /// <summary>
    /// The scored view under Reference: the transformer's predictions on the images resized ahead to S×S, scored against the
    /// labels at their original size (given by OriginalHeight/OriginalWidth); <paramref name="options"/> null: all the model's tasks.
    /// </summary>
    internal static MultiTaskMetrics ScoredAtInputSize(MLContext ml, MtLoraTransformer model, IDataView data, string keyColumn, string folder, MultiTaskEvaluatorOptions? options = null)
    {
        options ??= Options(model, EvaluationProtocol.Reference);
        options.HeightColumnName = "OriginalHeight";
        options.WidthColumnName = "OriginalWidth";
        return ml.MultiTask().Evaluate(model.Transform(WithInputSizeImages(ml, data, keyColumn, folder)), options);
    }

    private static void AssertSameSegmentation(SegmentationMetrics expected, SegmentationMetrics actual)
    {
        Assert.Equal(expected.PixelCount, actual.PixelCount);
        Assert.Equal(expected.PerClassIoU.Count, actual.PerClassIoU.Count);
        Assert.Equal(expected.MeanIoU, actual.MeanIoU, 9);
        Assert.Equal(expected.PixelAccuracy, actual.PixelAccuracy, 9);
    }

    private static void AssertSameDepth(DepthMetrics expected, DepthMetrics actual)
    {
        Assert.Equal(expected.PixelCount, actual.PixelCount);
        Assert.Equal(expected.Rmse, actual.Rmse, 1e-6);
        Assert.Equal(expected.LogRmse, actual.LogRmse, 1e-6);
    }

    [Fact]
    public void A_custom_model_scored_view_gives_what_Evaluate_model_gives_under_both_protocols()
    {
        using var dir = Fixture.TempDir();
        var ml = new MLContext(seed: 1);
        var rows = CustomLabelBatchTests.Rows(dir.Path, 3, 24, 20);
        foreach (var r in rows) for (int k = 0; k < r.RangeLabel.Length; k++) if (r.RangeLabel[k] != 255f) r.RangeLabel[k] /= 100f;
        rows[0].RangeLabel[5] = 0f;                                                      // a hole: 0 → ignored, as AddIgnoreRegions
        var data = CustomLabelBatchTests.View(ml, dir.Path, rows);
        using var model = Fit(ml, data, [Defects, Range, Cracks]);
        long valid = rows.Sum(r => r.RangeLabel.Count(v => v is not (0f or 255f)));   // holes (0) and the ignore value left out

        foreach (var protocol in new[] { EvaluationProtocol.Native, EvaluationProtocol.Reference })
        {
            var expected = ml.MultiTask().Evaluate(model, data, Options(model, protocol));
            var scored = protocol == EvaluationProtocol.Native
                ? ml.MultiTask().Evaluate(model.Transform(data), Options(model, protocol))
                : ScoredAtInputSize(ml, model, data, "Name", dir.Path);
            Assert.Equal(protocol, scored.Protocol);
            Assert.Equal([Cracks, Defects, Range], scored.Tasks);                       // the reference's order, then by name
            var defects = scored.OtherSegmentations[Defects];
            Assert.Equal(5, defects.PerClassIoU.Count);                                  // its own 5 classes
            AssertSameSegmentation(expected.OtherSegmentations[Defects], defects);
            AssertSameDepth(expected.Depths[Range], scored.Depths[Range]);
            Assert.Equal(expected.OtherSaliencyMaps[Cracks].MeanIoUPerThreshold, scored.OtherSaliencyMaps[Cracks].MeanIoUPerThreshold);
            if (protocol == EvaluationProtocol.Native)
            {
                Assert.Equal(valid, scored.Depths[Range].PixelCount);
                Assert.Equal(3 * 24 * 19, defects.PixelCount);                           // the top row ignored
            }
            else
            {
                Assert.Equal(3L * Size * Size, scored.Depths[Range].PixelCount + CountIgnoredAtInputSize(rows));
            }
        }
    }

    /// <summary>The depth pixels that are ignored after the nearest resize to S×S (computed from the labels with OpenCV's rule).</summary>
    private static long CountIgnoredAtInputSize(List<CustomLabelBatchTests.CustomRow> rows)
    {
        long ignored = 0;
        foreach (var r in rows)
        {
            var cols = CvGeometry.NearestIndices(r.Width, Size);
            var lines = CvGeometry.NearestIndices(r.Height, Size);
            foreach (var y in lines)
                foreach (var x in cols)
                    if (r.RangeLabel[y * r.Width + x] is 0f or 255f) ignored++;
        }
        return ignored;
    }

    [Fact]
    public void A_NYUD_model_scored_view_gives_what_Evaluate_model_gives_under_both_protocols()
    {
        using var dir = Fixture.TempDir();
        SyntheticNyud.Generate(dir.Path, new SyntheticNyudOptions { TrainCount = 2, ValCount = 3, Width = 32, Height = 24, Seed = 3 });
        var ml = new MLContext(seed: 1);
        using var model = Fit(ml, ml.Data.LoadNyud(dir.Path, "train"), DenseTaskDescriptor.Nyud);
        var val = ml.Data.LoadNyud(dir.Path, "val");

        foreach (var protocol in new[] { EvaluationProtocol.Native, EvaluationProtocol.Reference })
        {
            var expected = ml.MultiTask().Evaluate(model, val, Options(model, protocol));
            var scored = protocol == EvaluationProtocol.Native
                ? ml.MultiTask().Evaluate(model.Transform(val), Options(model, protocol))
                : ScoredAtInputSize(ml, model, val, "Id", dir.Path);
            Assert.Equal(DenseTaskDescriptor.Nyud.Order(), scored.Tasks);
            Assert.Equal(40, scored.SemanticSegmentation!.PerClassIoU.Count);           // NYUD's 40 classes, not PASCAL's 21
            AssertSameSegmentation(expected.SemanticSegmentation!, scored.SemanticSegmentation);
            AssertSameDepth(expected.Depths[DenseTaskDescriptor.NyudDepth], scored.Depths[DenseTaskDescriptor.NyudDepth]);
            Assert.True(double.IsFinite(scored.Depths[DenseTaskDescriptor.NyudDepth].LogRmse)); // the holes (0) are ignored
            Assert.Equal(expected.SurfaceNormals!.PixelCount, scored.SurfaceNormals!.PixelCount);
            Assert.Equal(expected.SurfaceNormals.Mean, scored.SurfaceNormals.Mean, 4);
            Assert.Equal(expected.SurfaceNormals.Median, scored.SurfaceNormals.Median, 2);
            Assert.Equal(expected.Edges[DenseTaskDescriptor.NyudEdge], scored.Edges[DenseTaskDescriptor.NyudEdge]);
        }
    }

    private sealed class NyudRow
    {
        public int Height { get; set; }
        public int Width { get; set; }
        [VectorType] public byte[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
        [VectorType] public float[] DepthLabel { get; set; } = [];
        [VectorType] public float[] DepthPredicted { get; set; } = [];
        [VectorType] public byte[] EdgeLabel { get; set; } = [];
        [VectorType] public float[] EdgeProbability { get; set; } = [];
    }

    [Fact]
    public void Found_by_columns_depth_and_edge_are_NYUDs_and_semseg_stays_PASCALs()
    {
        var ml = new MLContext(seed: 1);
        // 1×4: depth errors 0.5, −0.5, a hole (0) and the ignore value → RMSE 0.5 over 2 pixels; edge TP, FP, TN, FN → F = 2/(2+1+1).
        var row = new NyudRow
        {
            Height = 1, Width = 4,
            SemsegLabel = [0, 1, 30, 255], SemsegPredictedLabel = [0, 1, 30, 7],
            DepthLabel = [1f, 3f, 0f, 255f], DepthPredicted = [1.5f, 2.5f, 4f, 9f],
            EdgeLabel = [1, 0, 0, 1], EdgeProbability = [0.5f, 0.9f, 0.49f, 0.1f],
        };
        var view = ml.Data.LoadFromEnumerable([row]);
        var m = ml.MultiTask().Evaluate(view, new MultiTaskEvaluatorOptions { Tasks = [.. DenseTaskDescriptor.Nyud.Where(t => t.Name != "normals")], Baselines = SingleTaskBaselines.None });
        Assert.Equal(0.5, m.Depths[DenseTaskDescriptor.NyudDepth].Rmse, 6);
        Assert.Equal(2, m.Depths[DenseTaskDescriptor.NyudDepth].PixelCount);
        Assert.Equal(0.5, m.Edges[DenseTaskDescriptor.NyudEdge].FMeasure, 12);
        Assert.Equal(3, m.SemanticSegmentation!.PixelCount);
        Assert.Equal(1.0, m.SemanticSegmentation.PerClassIoU[30]);

        // Without a task list: depth and edge are found by their columns, semseg is PASCAL's 21 classes, so class 30 is an
        // error that says to list the tasks.
        var e = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(view, new MultiTaskEvaluatorOptions { Baselines = SingleTaskBaselines.None }));
        Assert.Contains("Label 30", e.Message, StringComparison.Ordinal);
        Assert.Contains("DenseTaskDescriptor.Nyud", e.Message, StringComparison.Ordinal);
        row.SemsegLabel = [0, 1, 3, 255];
        row.SemsegPredictedLabel = [0, 1, 3, 7];
        var found = ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable([row]), new MultiTaskEvaluatorOptions { Baselines = SingleTaskBaselines.None });
        Assert.Equal([DenseTaskDescriptor.PascalSemanticSegmentation, DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.NyudEdge], found.Tasks);
        Assert.Equal(21, found.SemanticSegmentation!.PerClassIoU.Count);
        Assert.Equal(0.5, found.Depths[DenseTaskDescriptor.NyudDepth].Rmse, 6);
    }

    private sealed class KeyRow
    {
        [VectorType] public byte[] DefectsLabel { get; set; } = [];
        [VectorType(4), KeyType(5)] public uint[] DefectsPredictedLabel { get; set; } = [];
        [VectorType] public float[] RangeLabel { get; set; } = [];
        [VectorType] public byte[] RangePredicted { get; set; } = [];
    }

    private sealed class DepthRow
    {
        [VectorType] public float[] RangeLabel { get; set; } = [];
        [VectorType] public float[] RangePredicted { get; set; } = [];
        public int Height { get; set; }
        public int Width { get; set; }
    }

    [Fact]
    public void Own_tasks_are_read_by_kind_and_bad_columns_are_named()
    {
        var ml = new MLContext(seed: 1);
        // Keys are 1-based: key k is class k − 1 (ML.NET's MapValueToKey convention).
        var keys = ml.Data.LoadFromEnumerable([new KeyRow { DefectsLabel = [0, 4, 2, 255], DefectsPredictedLabel = [1, 5, 2, 1], RangeLabel = [1, 2, 3, 4], RangePredicted = [1, 2, 3, 4] }]);
        var m = ml.MultiTask().Evaluate(keys, new MultiTaskEvaluatorOptions { Tasks = [Defects], Baselines = SingleTaskBaselines.None });
        var defects = m.OtherSegmentations[Defects];
        Assert.Equal(3, defects.PixelCount);
        Assert.Equal(1.0, defects.PerClassIoU[0]);
        Assert.Equal(1.0, defects.PerClassIoU[4]);
        Assert.Equal(0.0, defects.PerClassIoU[2]);                                      // label 2 predicted as 1

        // A depth prediction must be Single: the message names the column, the task and what was expected.
        var e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(keys, new MultiTaskEvaluatorOptions { Tasks = [Range] }));
        Assert.Contains("'RangePredicted'", e.Message, StringComparison.Ordinal);
        Assert.Contains("task range", e.Message, StringComparison.Ordinal);
        Assert.Contains("expected a vector of Single", e.Message, StringComparison.Ordinal);

        // A task of one's own is not found by its columns: the message says to list it.
        e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(keys));
        Assert.Contains("MultiTaskEvaluatorOptions.Tasks", e.Message, StringComparison.Ordinal);

        // A depth map of the wrong size names the row, the task and both sizes; under Reference the depth label is resized nearest.
        var depth = ml.Data.LoadFromEnumerable([new DepthRow { Height = 1, Width = 2, RangeLabel = [1f, 0f], RangePredicted = [1.5f, 2f, 1f, 3f] }]);
        var bad = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(depth, new MultiTaskEvaluatorOptions { Tasks = [Range], Protocol = EvaluationProtocol.Native }));
        Assert.Contains("Row 0, task range", bad.Message, StringComparison.Ordinal);
        Assert.Contains("has 4 values", bad.Message, StringComparison.Ordinal);
        // 1×2 → 2×2 nearest: [1 0; 1 0], the holes ignored → errors 0.5 and 0 → RMSE √(0.25 / 2).
        var reference = ml.MultiTask().Evaluate(depth, new MultiTaskEvaluatorOptions { Tasks = [Range], Protocol = EvaluationProtocol.Reference, ImageSize = 2, Baselines = SingleTaskBaselines.None });
        Assert.Equal(2, reference.Depths[Range].PixelCount);
        Assert.Equal(Math.Sqrt(0.125), reference.Depths[Range].Rmse, 9);
    }
}
