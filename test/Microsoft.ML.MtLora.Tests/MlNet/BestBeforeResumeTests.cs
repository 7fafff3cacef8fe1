using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.MlNet;

/// <summary>
/// <see cref="MtLoraTrainingReport.BestBeforeResume"/>: a resumed Fit that keeps the best validation from before the resume
/// reports where it was and the value that picked it, as the metric was measured (a lower-is-better metric unsigned).
/// </summary>
[Collection(SerialCollection.Name)]
public class BestBeforeResumeTests
{
    [Fact]
    public void AResumedFitThatKeepsTheEarlierBestReportsItsStepAndMetric()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        using var checkpoints = Fixture.TempDir();
        var data = MtLoraEstimatorTests.Labelled(ml, images.Path, 4);
        var validations = new List<MtLoraValidationReport>();

        // 2 of 4 epochs (2 steps each), validated after each, the best picked by the normals' mean angle (lower is better).
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Epochs = 4;
        options.MaxSteps = 4;
        options.ValidationSet = data;
        options.ValidationEveryEpochs = 1;
        options.Keep = MtLoraKeep.Best;
        options.BestEpochTask = DenseTask.SurfaceNormals;
        options.CheckpointDirectory = checkpoints.Path;
        options.ValidationProgress = new Progress(validations.Add);
        using (var first = ml.MultiTask().Trainers.MtLora(options).Fit(data))
        {
            Assert.NotNull(first.TrainingReport!.Best);
            Assert.Null(first.TrainingReport.BestBeforeResume);
        }
        Assert.Equal(2, validations.Count);

        // best/ holds the better of the two; its score is the signed metric (−angle). Made unbeatable: an angle of 0.5°.
        var bestFile = Path.Combine(checkpoints.Path, TrainerValidation.BestFolderName, TrainerValidation.BestFileName);
        var best = SafeTensors.Load(bestFile, out var metadata);
        var earlier = validations.MinBy(v => v.Metrics.GetPaperMetric(DenseTask.SurfaceNormals))!;
        try
        {
            Assert.Equal(-earlier.Metrics.GetPaperMetric(DenseTask.SurfaceNormals), double.Parse(metadata["score"], System.Globalization.CultureInfo.InvariantCulture));
            SafeTensors.Save(bestFile, best, new Dictionary<string, string>(metadata) { ["score"] = "-0.5" });
        }
        finally { foreach (var t in best.Values) t.Dispose(); }

        options.MaxSteps = null;
        options.ResumeFrom = checkpoints.Path;
        using var resumed = ml.MultiTask().Trainers.MtLora(options).Fit(data);
        var report = resumed.TrainingReport!;
        Assert.Null(report.Best);
        Assert.Equal(MtLoraKeep.Best, report.Kept);
        Assert.Equal(new MtLoraStoredBest(earlier.Epoch, earlier.Step, 0.5, "normals paper metric"), report.BestBeforeResume);
        Assert.Equal(8, report.Last!.Step);
    }

    private sealed class Progress(Action<MtLoraValidationReport> action) : IProgress<MtLoraValidationReport>
    {
        public void Report(MtLoraValidationReport value) => action(value);
    }
}
