using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Tests.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.MlNet;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Tasks;

// Fit seeds and draws from torch's process-wide generator: bitwise checks need no test beside it.
[Collection(SerialCollection.Name)]
public class CustomTaskTrainingTests
{
    private static readonly DenseTaskDescriptor Defects = CustomLabelBatchTests.Defects;
    private static readonly DenseTaskDescriptor Range = CustomLabelBatchTests.Range;

    private static (MtLoraTransformer Model, List<TrainingProgress> Reports) Fit(MLContext ml, IDataView data, IReadOnlyList<DenseTaskDescriptor> tasks, int epochs)
    {
        var reports = new List<TrainingProgress>();
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Network.Tasks = tasks;
        options.Epochs = epochs;
        options.WarmupEpochs = epochs > 1 ? 1 : 0;
        options.PretrainedWeightsPath = Fixture.Path("swin_ms", "swin_ms_format.pth"); // a backbone: the task heads start fresh
        options.Progress = new MtLoraEstimatorTests.SyncProgress<TrainingProgress>(reports.Add);
        return (ml.MultiTask().Trainers.MtLora(options).Fit(data), reports);
    }

    [Fact]
    public void A_custom_two_task_model_trains_saves_loads_and_predicts_the_same()
    {
        using var dir = Fixture.TempDir();
        var ml = new MLContext(seed: 1);
        var rows = CustomLabelBatchTests.Rows(dir.Path, 4, 24, 20);
        foreach (var r in rows) for (int k = 0; k < r.RangeLabel.Length; k++) if (r.RangeLabel[k] != 255f) r.RangeLabel[k] /= 100f; // depths of a few metres
        var data = CustomLabelBatchTests.View(ml, dir.Path, rows);

        var (model, reports) = Fit(ml, data, [Defects, Range], epochs: 4);
        using (model)
        {
            Assert.Equal(8, reports.Count);                                   // 4 epochs × 2 batches
            Assert.All(reports, r => Assert.Equal(["defects", "range"], r.TaskLosses.Keys.Order()));
            double first = reports.Take(2).Average(r => r.TotalLoss), last = reports.TakeLast(2).Average(r => r.TotalLoss);
            Assert.True(last < first, $"loss {first} → {last}");

            // Deterministic: the same Fit gives the same losses.
            var (again, reportsAgain) = Fit(new MLContext(seed: 1), data, [Defects, Range], epochs: 4);
            again.Dispose();
            Assert.Equal(reports.Select(r => r.TotalLoss), reportsAgain.Select(r => r.TotalLoss));

            var zip = dir.File("model.zip");
            ml.Model.Save(model, data.Schema, zip);
            var loaded = new MLContext(seed: 2).Model.Load(zip, out _);
            string[] columns = ["DefectsPredictedLabel", "DefectsScore", "RangePredicted"];
            var before = MtLoraTransformerTests.ReadPredictions(model.Transform(data), columns);
            var after = MtLoraTransformerTests.ReadPredictions(loaded.Transform(data), columns);
            MtLoraTransformerTests.AssertSame(before, after);
            Assert.All(before, r => Assert.Equal(24 * 20, r["RangePredicted"].Length));
            (loaded as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Fit_trains_every_NYUD_task_from_LoadNyud()
    {
        using var dir = Fixture.TempDir();
        SyntheticNyud.Generate(dir.Path, new SyntheticNyudOptions { TrainCount = 4, ValCount = 1, Width = 32, Height = 24, Seed = 3 });
        var ml = new MLContext(seed: 1);
        var (model, reports) = Fit(ml, ml.Data.LoadNyud(dir.Path, "train"), DenseTaskDescriptor.Nyud, epochs: 1);
        using (model)
        {
            Assert.Equal(2, reports.Count);
            Assert.All(reports, r => Assert.Equal(["depth", "edge", "normals", "semseg"], r.TaskLosses.Keys.Order()));
            Assert.All(reports, r => Assert.All(r.TaskLosses.Values, v => Assert.True(double.IsFinite(v) && v > 0)));
            Assert.Equal(DenseTaskDescriptor.Nyud, model.Tasks);
        }
    }

    [Fact]
    public void Fit_validates_custom_tasks_and_the_last_validation_is_what_Evaluate_gives()
    {
        using var dir = Fixture.TempDir();
        var ml = new MLContext(seed: 1);
        var rows = CustomLabelBatchTests.Rows(dir.Path, 4, 24, 20);
        foreach (var r in rows) for (int k = 0; k < r.RangeLabel.Length; k++) if (r.RangeLabel[k] != 255f) r.RangeLabel[k] /= 100f;
        var data = CustomLabelBatchTests.View(ml, dir.Path, rows);

        var validations = new List<MtLoraValidationReport>();
        var options = ValidatedEveryEpoch([Defects, Range], epochs: 2, warmupEpochs: 1, data, validations);
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(data);

        Assert.Equal([1, 2], validations.Select(v => v.Epoch));
        var last = validations[^1].Metrics;
        var defects = Assert.Single(last.OtherSegmentations).Value;                     // scored with its own 5 classes
        Assert.Equal(5, defects.PerClassIoU.Count);
        var range = Assert.Single(last.Depths).Value;
        Assert.True(double.IsFinite(range.Rmse) && range.Rmse > 0 && range.PixelCount > 0, $"{range}");
        Assert.Null(last.DeltaM);                                                        // no baseline for these tasks

        // The returned (last) weights, evaluated again under the same protocol, give the last validation's numbers.
        var again = ml.MultiTask().Evaluate(model, data);
        Assert.Equal(defects.MeanIoU, Assert.Single(again.OtherSegmentations).Value.MeanIoU, 6);
        Assert.Equal(range.Rmse, Assert.Single(again.Depths).Value.Rmse, 5);
    }

    /// <summary>Tiny options for <paramref name="tasks"/> from the swin_ms fixture, validating on <paramref name="data"/> after
    /// every epoch into <paramref name="validations"/>.</summary>
    private static MtLoraOptions ValidatedEveryEpoch(DenseTaskDescriptor[] tasks, int epochs, int warmupEpochs, IDataView data, List<MtLoraValidationReport> validations)
    {
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Network.Tasks = tasks;
        options.Epochs = epochs;
        options.WarmupEpochs = warmupEpochs;
        options.PretrainedWeightsPath = Fixture.Path("swin_ms", "swin_ms_format.pth");
        options.ValidationSet = data;
        options.ValidationEveryEpochs = 1;
        options.ValidationProgress = new MtLoraEstimatorTests.SyncProgress<MtLoraValidationReport>(validations.Add);
        return options;
    }

    /// <summary>A row with the defects labels of <see cref="CustomLabelBatchTests.Rows"/> and the labels of a surface-normals task "tilt".</summary>
    public sealed class TiltRow
    {
        public string Name { get; set; } = "";
        public byte[] DefectsLabel { get; set; } = [];
        public float[] TiltLabel { get; set; } = [];
        public int Height { get; set; }
        public int Width { get; set; }
    }

    /// <summary>Unit normals (sin θ, 0, cos θ), θ = (x + 3·i)·2°, planar CHW; column 0 invalid (255 in the first plane).</summary>
    private static float[] TiltLabel(int width, int height, int i)
    {
        int n = width * height;
        var label = new float[3 * n];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int k = y * width + x;
                double theta = (x + 3 * i) * 2 * Math.PI / 180;
                label[k] = x == 0 ? DenseTasks.IgnoreLabel : (float)Math.Sin(theta);
                label[2 * n + k] = x == 0 ? 0f : (float)Math.Cos(theta);
            }
        return label;
    }

    [Fact]
    public void A_surface_normals_task_of_its_own_name_is_validated_during_Fit_and_evaluated()
    {
        using var dir = Fixture.TempDir();
        var ml = new MLContext(seed: 1);
        var tilt = DenseTaskDescriptor.SurfaceNormals("tilt");
        const int width = 24, height = 20;
        var rows = CustomLabelBatchTests.Rows(dir.Path, 4, width, height)
            .Select((r, i) => new TiltRow { Name = r.Name, DefectsLabel = r.DefectsLabel, TiltLabel = TiltLabel(width, height, i), Height = height, Width = width })
            .ToList();
        var view = ml.Data.LoadFromEnumerable(rows);
        var data = ml.Transforms.LoadImages("Image", dir.Path, "Name").Fit(view).Transform(view);

        var validations = new List<MtLoraValidationReport>();
        var options = ValidatedEveryEpoch([Defects, tilt], epochs: 1, warmupEpochs: 0, data, validations);
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(data);

        var validated = Assert.Single(validations).Metrics;
        var (task, angles) = Assert.Single(validated.OtherNormals);
        Assert.Same(tilt, task);
        Assert.Null(validated.SurfaceNormals);
        Assert.True(angles.PixelCount > 0 && angles.Mean is > 0 and < 180, $"{angles.Mean}° over {angles.PixelCount} pixels");
        Assert.Equal(5, Assert.Single(validated.OtherSegmentations).Value.PerClassIoU.Count);

        // Evaluate(model, data) reports tilt's angles: the validation's numbers (same weights, same protocol), in JSON under its name.
        var again = ml.MultiTask().Evaluate(model, data);
        Assert.Equal(angles.Mean, again.OtherNormals[tilt].Mean, 4);
        Assert.Equal(angles.PixelCount, again.OtherNormals[tilt].PixelCount);
        Assert.Equal(again.OtherNormals[tilt].Mean, again.ToJson()["tilt"]!["mean"]!.GetValue<double>());

        // The scored view, Native: the transformer's TiltPredicted against TiltLabel at the original size, as Evaluate(model, data).
        var native = new MultiTaskEvaluatorOptions { Tasks = [.. model.Tasks], Protocol = EvaluationProtocol.Native, Baselines = SingleTaskBaselines.None, ImageSize = model.ImageSize };
        var expected = ml.MultiTask().Evaluate(model, data, native).OtherNormals[tilt];
        var scored = ml.MultiTask().Evaluate(model.Transform(data), native).OtherNormals[tilt];
        Assert.Equal(4L * height * (width - 1), scored.PixelCount);                  // column 0 invalid
        Assert.Equal(expected.PixelCount, scored.PixelCount);
        Assert.Equal(expected.Mean, scored.Mean, 3);
    }
}
