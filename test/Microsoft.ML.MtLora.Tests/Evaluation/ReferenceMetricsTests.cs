using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

/// <summary>The meters against the numbers the reference's evaluation code computed from the same outputs and targets.</summary>
public class ReferenceMetricsTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<string> Fixtures => new() { "metrics", "tiny4" };

    private static MetricFixture Load(string name) => name == "metrics" ? MetricFixture.Metrics() : MetricFixture.Tiny4();

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void MetersMatchTheReference(string name)
    {
        using var fx = Load(name);
        var meter = new MultiTaskMeter(DenseTasks.All);
        foreach (var task in DenseTasks.All) meter.Update(task, fx.Out(task), fx.Target(task));
        var m = meter.GetMetrics();

        Assert.Equal(fx.ExpectedValue(DenseTask.SemanticSegmentation, "mIoU"), m.SemanticSegmentation!.MeanIoU, Tolerance);
        Assert.Equal(fx.ExpectedValue(DenseTask.HumanParts, "mIoU"), m.HumanParts!.MeanIoU, Tolerance);
        Assert.Equal(fx.ExpectedValue(DenseTask.Saliency, "mIoU"), m.Saliency!.MeanIoU, Tolerance);
        Assert.Equal(fx.ExpectedValue(DenseTask.Saliency, "maxF"), m.Saliency.MaxF, Tolerance);
        Assert.Equal(fx.ExpectedValue(DenseTask.SurfaceNormals, "mean"), m.SurfaceNormals!.Mean, Tolerance);
        Assert.Equal(fx.ExpectedValue(DenseTask.SurfaceNormals, "rmse"), m.SurfaceNormals.ReferenceRmse, Tolerance);
    }

    [Fact]
    public void BatchByBatchEqualsAllAtOnce()
    {
        using var fx = MetricFixture.Metrics();
        var whole = new MultiTaskMeter(DenseTasks.All);
        var split = new MultiTaskMeter(DenseTasks.All);
        foreach (var task in DenseTasks.All)
        {
            whole.Update(task, fx.Out(task), fx.Target(task));
            for (int i = 0; i < fx.Out(task).size(0); i++)
                split.Update(task, fx.Out(task).narrow(0, i, 1), fx.Target(task).narrow(0, i, 1));
        }
        var a = whole.GetMetrics();
        var b = split.GetMetrics();
        Assert.Equal(a.SemanticSegmentation!.PerClassIoU, b.SemanticSegmentation!.PerClassIoU);
        Assert.Equal(a.HumanParts!.PerClassIoU, b.HumanParts!.PerClassIoU);
        Assert.Equal(a.Saliency!.MeanIoUPerThreshold, b.Saliency!.MeanIoUPerThreshold);
        Assert.Equal(a.Saliency.FPerThreshold, b.Saliency.FPerThreshold);
        Assert.Equal(a.SurfaceNormals!.Mean, b.SurfaceNormals!.Mean, 1e-9);
        Assert.Equal(a.SurfaceNormals.Rmse, b.SurfaceNormals.Rmse, 1e-9);
        Assert.Equal(a.SurfaceNormals.Median, b.SurfaceNormals.Median);
        Assert.Equal(a.SurfaceNormals.Within11_25, b.SurfaceNormals.Within11_25);
        Assert.Equal(a.DeltaM!.Value, b.DeltaM!.Value, 1e-9);
    }

    [Fact]
    public void FullyIgnoredImageContributesNothing()
    {
        // The first image of the metrics fixture has an all-255 human-parts label.
        using var fx = MetricFixture.Metrics();
        var target = fx.Target(DenseTask.HumanParts);
        Assert.True(target[0].eq(255).all().item<bool>());
        var all = SegmentationMeter.For(DenseTask.HumanParts);
        all.Update(fx.Out(DenseTask.HumanParts), target);
        var rest = SegmentationMeter.For(DenseTask.HumanParts);
        rest.Update(fx.Out(DenseTask.HumanParts).narrow(0, 1, 2), target.narrow(0, 1, 2));
        Assert.Equal(rest.GetMetrics().PerClassIoU, all.GetMetrics().PerClassIoU);
        Assert.Equal(rest.PixelCount, all.PixelCount);
    }
}
