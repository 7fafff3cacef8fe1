using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Evaluation;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class MultiTaskEvaluatorTests
{
    /// <summary>A row as the PASCAL loader and the MTLoRA transformer produce it.</summary>
    private sealed class Row
    {
        public string Id { get; set; } = "";
        public int Height { get; set; }
        public int Width { get; set; }
        [VectorType] public byte[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
        [VectorType] public byte[] HumanPartsLabel { get; set; } = [];
        [VectorType] public byte[] HumanPartsPredictedLabel { get; set; } = [];
        [VectorType] public byte[] SaliencyLabel { get; set; } = [];
        [VectorType] public float[] SaliencyProbability { get; set; } = [];
        [VectorType] public float[] NormalsLabel { get; set; } = [];
        [VectorType] public float[] NormalsPredicted { get; set; } = [];
    }

    /// <summary>Labels kept as float, as the reference keeps them, under other column names.</summary>
    private sealed class FloatLabelRow
    {
        [VectorType] public float[] Gt { get; set; } = [];
        [VectorType] public float[] Pred { get; set; } = [];
    }

    private sealed class SemsegRow
    {
        public string Id { get; set; } = "";
        public int Height { get; set; }
        public int Width { get; set; }
        [VectorType] public byte[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
    }

    private sealed class IntLabelRow
    {
        [VectorType] public int[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
    }

    private sealed class PredictionOnlyRow
    {
        [VectorType] public byte[] SemsegPredictedLabel { get; set; } = [];
        [VectorType] public byte[] HumanPartsLabel { get; set; } = [];
        [VectorType] public byte[] HumanPartsPredictedLabel { get; set; } = [];
    }

    private static byte[] Bytes(Tensor t) => t.to(ScalarType.Byte).contiguous().data<byte>().ToArray();

    private static float[] Floats(Tensor t) => t.to(ScalarType.Float32).contiguous().data<float>().ToArray();

    /// <summary>The metrics fixture as rows: class maps by argmax, saliency by sigmoid, raw normals (the evaluator normalises).</summary>
    private static List<Row> FixtureRows(MetricFixture fx)
    {
        var rows = new List<Row>();
        var semseg = fx.Out(DenseTask.SemanticSegmentation).argmax(1);   // (N, H, W)
        var parts = fx.Out(DenseTask.HumanParts).argmax(1);              // (N, H, W)
        var sal = fx.Out(DenseTask.Saliency).sigmoid();                  // (N, 1, H, W)
        for (int i = 0; i < semseg.size(0); i++)
        {
            rows.Add(new Row
            {
                Id = $"img{i}",
                Height = (int)semseg.size(1),
                Width = (int)semseg.size(2),
                SemsegLabel = Bytes(fx.Target(DenseTask.SemanticSegmentation)[i]),
                SemsegPredictedLabel = Bytes(semseg[i]),
                HumanPartsLabel = Bytes(fx.Target(DenseTask.HumanParts)[i]),
                HumanPartsPredictedLabel = Bytes(parts[i]),
                SaliencyLabel = Bytes(fx.Target(DenseTask.Saliency)[i]),
                SaliencyProbability = Floats(sal[i]),
                NormalsLabel = Floats(fx.Target(DenseTask.SurfaceNormals)[i]),
                NormalsPredicted = Floats(fx.Out(DenseTask.SurfaceNormals)[i]),
            });
        }
        return rows;
    }

    [Fact]
    public void StreamingEvaluationEqualsAllAtOnceAndTheReference()
    {
        var ml = new MLContext(seed: 1);
        using var fx = MetricFixture.Metrics();
        var view = ml.Data.LoadFromEnumerable(FixtureRows(fx));

        var streamed = ml.MultiTask().Evaluate(view);

        var meter = new MultiTaskMeter(DenseTasks.All);
        foreach (var task in DenseTasks.All) meter.Update(task, fx.Out(task), fx.Target(task));
        var whole = meter.GetMetrics();

        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), streamed.Tasks);
        Assert.Equal(whole.SemanticSegmentation!.PerClassIoU, streamed.SemanticSegmentation!.PerClassIoU);
        Assert.Equal(whole.HumanParts!.PerClassIoU, streamed.HumanParts!.PerClassIoU);
        Assert.Equal(whole.HumanParts.PixelAccuracy, streamed.HumanParts.PixelAccuracy);
        Assert.Equal(whole.Saliency!.MeanIoUPerThreshold, streamed.Saliency!.MeanIoUPerThreshold);
        Assert.Equal(whole.Saliency.MaxF, streamed.Saliency.MaxF);
        Assert.Equal(whole.SurfaceNormals!.Mean, streamed.SurfaceNormals!.Mean, 1e-5);
        Assert.Equal(whole.SurfaceNormals.PixelCount, streamed.SurfaceNormals.PixelCount);
        Assert.Equal(whole.DeltaM!.Value, streamed.DeltaM!.Value, 1e-5);

        Assert.Equal(fx.ExpectedValue(DenseTask.SemanticSegmentation, "mIoU"), streamed.SemanticSegmentation.MeanIoU, 1e-5);
        Assert.Equal(fx.ExpectedValue(DenseTask.HumanParts, "mIoU"), streamed.HumanParts.MeanIoU, 1e-5);
        Assert.Equal(fx.ExpectedValue(DenseTask.Saliency, "mIoU"), streamed.Saliency.MeanIoU, 1e-5);
        Assert.Equal(fx.ExpectedValue(DenseTask.Saliency, "maxF"), streamed.Saliency.MaxF, 1e-5);
        Assert.Equal(fx.ExpectedValue(DenseTask.SurfaceNormals, "mean"), streamed.SurfaceNormals.Mean, 1e-5);
    }

    [Fact]
    public void FloatLabelsRenamedColumnsAndChosenTasks()
    {
        var ml = new MLContext(seed: 1);
        using var fx = MetricFixture.Metrics();
        var rows = FixtureRows(fx);
        var floatRows = rows.Select(r => new FloatLabelRow
        {
            Gt = r.HumanPartsLabel.Select(b => (float)b).ToArray(),
            Pred = r.HumanPartsPredictedLabel.Select(b => (float)b).ToArray(),
        });
        var m = ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable(floatRows), new MultiTaskEvaluatorOptions
        {
            Tasks = [DenseTask.HumanParts],
            HumanPartsLabelColumnName = "Gt",
            HumanPartsPredictedLabelColumnName = "Pred",
            Baselines = SingleTaskBaselines.Parse("human_parts=50"),
        });
        Assert.Equal([DenseTask.HumanParts], m.Tasks);
        Assert.Null(m.SemanticSegmentation);
        Assert.Equal(fx.ExpectedValue(DenseTask.HumanParts, "mIoU"), m.HumanParts!.MeanIoU, 1e-5);
        Assert.Equal((m.HumanParts.MeanIoU * 100 - 50) / 50 * 100, m.DeltaM!.Value, 1e-9);

        // Only the tasks asked for are scored, even when more columns are present.
        var some = ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable(rows), new MultiTaskEvaluatorOptions { Tasks = [DenseTask.SurfaceNormals, DenseTask.Saliency] });
        Assert.Equal([DenseTask.Saliency, DenseTask.SurfaceNormals], some.Tasks);
    }

    [Fact]
    public void EmptyViewIsAnError()
    {
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Array.Empty<SemsegRow>());
        var e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(view));
        Assert.Contains("no rows", e.Message);
    }

    [Fact]
    public void MissingLabelColumnIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(new[] { new PredictionOnlyRow { SemsegPredictedLabel = [0], HumanPartsLabel = [0], HumanPartsPredictedLabel = [0] } });
        var e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(view));
        Assert.Contains("'SemsegLabel'", e.Message);

        e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(view, new MultiTaskEvaluatorOptions { Tasks = [DenseTask.SurfaceNormals] }));
        Assert.Contains("'NormalsLabel'", e.Message);

        var none = ml.Data.LoadFromEnumerable(new[] { new FloatLabelRow { Gt = [0], Pred = [0] } });
        e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(none));
        Assert.Contains("No task", e.Message);
        Assert.Contains("'SemsegLabel'", e.Message);
    }

    [Fact]
    public void WrongColumnTypeIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(new[] { new IntLabelRow { SemsegLabel = [0], SemsegPredictedLabel = [0] } });
        var e = Assert.Throws<ArgumentException>(() => ml.MultiTask().Evaluate(view));
        Assert.Contains("'SemsegLabel'", e.Message);
        Assert.Contains("Byte or Single", e.Message);
    }

    [Fact]
    public void SizeMismatchNamesTheRowAndBothSizes()
    {
        var ml = new MLContext(seed: 1);
        var rows = new[]
        {
            new SemsegRow { Id = "a", Height = 2, Width = 3, SemsegLabel = new byte[6], SemsegPredictedLabel = new byte[6] },
            new SemsegRow { Id = "b", Height = 2, Width = 3, SemsegLabel = new byte[6], SemsegPredictedLabel = new byte[4] },
        };
        var e = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("Row 1 (Id 'b')", e.Message);
        Assert.Contains("semseg", e.Message);
        Assert.Contains("has 4 values", e.Message);
        Assert.Contains("has 6", e.Message);

        rows[1].SemsegPredictedLabel = new byte[5];
        rows[1].SemsegLabel = new byte[5];
        e = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("Row 1 (Id 'b')", e.Message);
        Assert.Contains("2×3", e.Message);

        rows[1].SemsegPredictedLabel = new byte[6];
        rows[1].SemsegLabel = [0, 1, 2, 30, 255, 255];
        e = Assert.Throws<InvalidOperationException>(() => ml.MultiTask().Evaluate(ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("Row 1 (Id 'b')", e.Message);
        Assert.Contains("Label 30", e.Message);
    }
}
