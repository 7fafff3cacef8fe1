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

    private sealed class Progress(Action<MtLoraValidationReport> action) : IProgress<MtLoraValidationReport>
    {
        public void Report(MtLoraValidationReport value) => action(value);
    }
}
