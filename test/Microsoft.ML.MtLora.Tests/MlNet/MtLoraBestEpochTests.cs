using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Tests.MlNet;

[Collection(SerialCollection.Name)]
public class MtLoraBestEpochTests
{
    [Fact]
    public void FitKeepsTheBestValidationAndReportsBestAndLast()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        var data = MtLoraEstimatorTests.Labelled(ml, images.Path, 4);
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Epochs = 4;
        options.ValidationSet = data;
        options.ValidationEveryEpochs = 1;
        options.Keep = MtLoraKeep.Best;
        options.BestEpochTask = DenseTask.SemanticSegmentation;
        var all = new List<MtLoraValidationReport>();
        options.ValidationProgress = new Progress(all.Add);
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(data);

        var report = Assert.IsType<MtLoraTrainingReport>(model.TrainingReport);
        Assert.Equal(EvaluationProtocol.Reference, report.Protocol);
        Assert.Equal(8, report.Steps);
        Assert.Equal(0, report.SkippedSteps);
        Assert.NotNull(report.Best);
        Assert.NotNull(report.Last);
        Assert.Equal(4, report.Last!.Epoch);
        Assert.Equal(EvaluationProtocol.Reference, report.Last.Metrics.Protocol);
        Assert.Equal(MtLoraKeep.Best, report.Kept);
        // The best is the first validation with the highest semseg mIoU among those of epochs 1..4 (reported in order).
        Assert.Equal([1, 2, 3, 4], all.Select(v => v.Epoch));
        var expected = all.First(v => v.Metrics.SemanticSegmentation!.MeanIoU == all.Max(a => a.Metrics.SemanticSegmentation!.MeanIoU));
        Assert.Same(expected, report.Best);
        Assert.Same(all[^1], report.Last);

        // The returned weights are the best epoch's: evaluated again under the same protocol they give its metrics.
        var again = ml.MultiTask().Evaluate(model, data);
        Assert.Equal(report.Best.Metrics.SemanticSegmentation!.MeanIoU, again.SemanticSegmentation!.MeanIoU, 3);
        Assert.Equal(report.Best.Metrics.SurfaceNormals!.Mean, again.SurfaceNormals!.Mean, 2);
    }

    [Fact]
    public void TheValidationBaselinesPickTheBestByTheirDeltaM()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        var data = MtLoraEstimatorTests.Labelled(ml, images.Path, 4);

        // Δm against user baselines: the best is the first validation with the highest Δm computed against them.
        var baselines = SingleTaskBaselines.Parse("semseg=5,normals=40");
        var all = new List<MtLoraValidationReport>();
        using (var model = ml.MultiTask().Trainers.MtLora(Options(data, baselines, all.Add)).Fit(data))
        {
            Assert.Equal([1, 2, 3, 4], all.Select(v => v.Epoch));
            // Equation 3 by hand: semseg (higher is better) and normals' mean angle (lower is better) against 5 and 40.
            Assert.All(all, v =>
            {
                double semseg = v.Metrics.GetPaperMetric(DenseTask.SemanticSegmentation), normals = v.Metrics.GetPaperMetric(DenseTask.SurfaceNormals);
                Assert.Equal(((semseg - 5) / 5 - (normals - 40) / 40) / 2 * 100, v.Metrics.DeltaM!.Value, 9);
            });
            var expected = all.First(v => v.Metrics.DeltaM == all.Max(a => a.Metrics.DeltaM));
            Assert.Same(expected, model.TrainingReport!.Best);
        }

        // No baselines: no validation has a Δm, so none is the best and the last weights are kept.
        all.Clear();
        using (var model = ml.MultiTask().Trainers.MtLora(Options(data, SingleTaskBaselines.None, all.Add)).Fit(data))
        {
            Assert.Equal(4, all.Count);
            Assert.All(all, v => Assert.Null(v.Metrics.DeltaM));
            Assert.Null(model.TrainingReport!.Best);
            Assert.Equal(MtLoraKeep.Last, model.TrainingReport.Kept);
        }

        static MtLoraOptions Options(IDataView data, SingleTaskBaselines baselines, Action<MtLoraValidationReport> report)
        {
            var options = MtLoraEstimatorTests.TinyOptions();
            options.Epochs = 4;
            options.ValidationSet = data;
            options.ValidationEveryEpochs = 1;
            options.Keep = MtLoraKeep.Best;
            options.ValidationBaselines = baselines;
            options.ValidationProgress = new Progress(report);
            return options;
        }
    }

    [Fact]
    public void BestWeightsRecordHowTheyWereScoredAndAResumeUnderAnotherProtocolSaysItDoesNotCompare()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        using var checkpoints = Fixture.TempDir();
        var data = MtLoraEstimatorTests.Labelled(ml, images.Path, 4);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Add(e.RawMessage); };
        var best = Path.Combine(checkpoints.Path, Microsoft.ML.MtLora.Training.TrainerValidation.BestFolderName, Microsoft.ML.MtLora.Training.TrainerValidation.BestFileName);
        string Criterion()
        {
            var weights = Microsoft.ML.MtLora.Checkpoints.SafeTensors.Load(best, out var metadata);
            foreach (var t in weights.Values) t.Dispose();
            return metadata["criterion"];
        }

        // 2 of 4 epochs (2 steps each), validated after each: best/ says how its score was measured.
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Epochs = 4;
        options.MaxSteps = 4;
        options.ValidationSet = data;
        options.ValidationEveryEpochs = 1;
        options.BestEpochTask = DenseTask.SemanticSegmentation;
        options.CheckpointDirectory = checkpoints.Path;
        using (ml.MultiTask().Trainers.MtLora(options).Fit(data)) { }
        Assert.Empty(warnings);
        Assert.Equal("semseg paper metric; protocol Reference; image size 128; tasks semseg,human_parts,sal,normals; baselines semseg=67.21,human_parts=61.93,sal=62.35,normals=17.97",
            Criterion());

        // Resumed under the native protocol: the stored best is not compared, and the first validation after the resume replaces it.
        options.MaxSteps = null;
        options.ResumeFrom = checkpoints.Path;
        options.ValidationProtocol = EvaluationProtocol.Native;
        using (ml.MultiTask().Trainers.MtLora(options).Fit(data)) { }
        var warning = Assert.Single(warnings);
        Assert.Contains("not comparable", warning);
        Assert.Contains("protocol Reference", warning);
        Assert.Contains("protocol Native", warning);
        Assert.Contains("protocol Native", Criterion());
    }

    private sealed class Progress(Action<MtLoraValidationReport> action) : IProgress<MtLoraValidationReport>
    {
        public void Report(MtLoraValidationReport value) => action(value);
    }
}
