using Microsoft.ML.MtLora.Evaluation;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests.Tasks;

[Collection(SerialCollection.Name)]
public class NyudMeterTests
{
    [Fact]
    public void NyudSemsegIsScoredOverItsFortyClasses()
    {
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([DenseTaskDescriptor.NyudSemanticSegmentation]);
        // Two pixels: class 39 predicted and labelled (a class PASCAL's 21 could not hold), and an ignored one.
        var logits = torch.zeros(1, 40, 1, 2);
        logits[0, 39, 0, 0] = torch.tensor(5f);
        var target = torch.tensor(new[] { 39f, 255f }).reshape(1, 1, 1, 2);
        meter.Update(DenseTaskDescriptor.NyudSemanticSegmentation, logits, target);
        var m = meter.GetMetrics(SingleTaskBaselines.None).SemanticSegmentation!;
        Assert.Equal(40, m.NumClasses);
        Assert.Equal(1, m.PixelCount);
        Assert.Equal(1.0, m.PerClassIoU[39]);
        // mIoU over all 40 classes, as the reference's SemsegMeter: only class 39 has a union, so 1/40.
        Assert.Equal(1.0 / 40, m.MeanIoU, 12);
    }

    [Fact]
    public void A_surface_normals_task_of_another_name_is_scored_exactly_as_normals()
    {
        using var scope = torch.NewDisposeScope();
        var tilt = DenseTaskDescriptor.SurfaceNormals("tilt");
        var normals = DenseTaskDescriptor.PascalSurfaceNormals;
        var meter = new MultiTaskMeter([tilt, normals]);
        Assert.Equal([normals, tilt], meter.Tasks);                                   // the reference's order, then by name
        // Three pixels (CHW): label (1, 0, 0) twice and an invalid one (255 in the first plane); predictions (2, 0, 0) → 0°,
        // (1, 1, 0) → 45° (normalised before the dot product), anything on the invalid pixel.
        var output = torch.tensor(new[] { 2f, 1f, 7f, 0f, 1f, 7f, 0f, 0f, 7f }).reshape(1, 3, 1, 3);
        var target = torch.tensor(new[] { 1f, 1f, 255f, 0f, 0f, 0f, 0f, 0f, 0f }).reshape(1, 3, 1, 3);
        meter.Update(normals, output, target);
        meter.Update(tilt, output, target);
        var metrics = meter.GetMetrics();                                             // paper baselines: normals has one, tilt none
        var (task, m) = Assert.Single(metrics.OtherNormals);
        Assert.Same(tilt, task);
        Assert.Equal([normals, tilt], metrics.Tasks);
        Assert.Equal(2, m.PixelCount);
        Assert.Equal(22.5, m.Mean, 4);                                                // (0° + 45°) / 2
        Assert.Equal(0.5, m.Within11_25);
        Assert.Equal(0.5, m.Within30);
        Assert.Equal(22.5, metrics.GetPaperMetric(tilt), 4);
        Assert.Equal(metrics.GetPaperMetric(normals), metrics.GetPaperMetric(tilt));
        Assert.False(tilt.HigherIsBetter);
        Assert.Equal("mean", tilt.MetricName);
        // The same numbers under its own name: the same JSON fields and values as normals.
        var json = metrics.ToJson();
        Assert.Equal(json["normals"]!.ToJsonString(), json["tilt"]!.ToJsonString());
        Assert.Equal(22.5, json["tilt"]!["mean"]!.GetValue<double>(), 4);
        Assert.Equal(2, json["tilt"]!["pixels"]!.GetValue<long>());
        Assert.False(json["baselines"]!.AsObject().ContainsKey("tilt"));                 // Δm only over tasks with a baseline
        var lines = metrics.ToTable().Split(Environment.NewLine);
        string Row(string name) => lines.Single(l => l.StartsWith(name + " ", StringComparison.Ordinal))[name.Length..];
        Assert.Contains("mean angle (°)  22.50", Row("tilt"));
        Assert.EndsWith(Row("normals")[Row("normals").IndexOf("median", StringComparison.Ordinal)..], Row("tilt"));
        var frame = metrics.ToDataFrame();
        Assert.Equal("tilt", frame.Columns["Task"][1]);
        foreach (var column in new[] { "MeanAngle", "MedianAngle", "Rmse", "ReferenceRmse", "Within11_25", "Within22_5", "Within30", "PaperMetric" })
            Assert.Equal(frame.Columns[column][0], frame.Columns[column][1]);
        Assert.Null(frame.Columns["MeanIoU"][1]);
        Assert.Null(frame.Columns["Baseline"][1]);
    }
}
