using Microsoft.ML.MtLora.Evaluation;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests.Tasks;

/// <summary>Single-task baselines and Δm for a task set that is not PASCAL's, with a lower-is-better depth task.</summary>
[Collection(SerialCollection.Name)]
public class AnyTaskDeltaMTests
{
    private static readonly DenseTaskDescriptor[] Nyud = DenseTaskDescriptor.Nyud.ToArray();

    [Fact]
    public void DeltaMWithALowerIsBetterDepthTask()
    {
        var baselines = SingleTaskBaselines.Parse("depth=0.75, semseg=37.18", Nyud);
        Assert.Equal(["semseg", "depth"], baselines.Tasks.Select(t => t.Name).ToArray());
        Assert.Equal("semseg=37.18,depth=0.75", baselines.ToString());
        // By hand: semseg +(40 − 37.18) / 37.18 · 100 = +7.584723 %, depth −(0.60 − 0.75) / 0.75 · 100 = +20 % (lower RMSE is a
        // gain); edge has no baseline and does not count: Δm = (7.584723 + 20) / 2 = 13.792361 %.
        double? dm = DeltaM.Compute(
            [
                KeyValuePair.Create(DenseTaskDescriptor.NyudSemanticSegmentation, 40.0),
                KeyValuePair.Create(DenseTaskDescriptor.NyudDepth, 0.60),
                KeyValuePair.Create(DenseTaskDescriptor.NyudEdge, 55.0),
            ], baselines);
        Assert.Equal(13.792361, dm!.Value, 6);
        // A worse depth (0.90 m) is a loss of 20 %: Δm = (7.584723 − 20) / 2.
        Assert.Equal(-20.0, DeltaM.RelativeGain(DenseTaskDescriptor.NyudDepth, 0.90, 0.75), 10);
    }

    [Fact]
    public void MetricsComputeDeltaMOverTheTasksWithABaseline()
    {
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.NyudEdge]);
        // Depth errors 0.5 and −0.5 m → RMSE 0.5; against a baseline of 0.4: gain −(0.5 − 0.4) / 0.4 · 100 = −25 %.
        meter.Update(DenseTaskDescriptor.NyudDepth, torch.tensor(new[] { 1.5f, 2.5f }).reshape(1, 1, 1, 2), torch.tensor(new[] { 1f, 3f }).reshape(1, 1, 1, 2));
        meter.Update(DenseTaskDescriptor.NyudEdge, torch.tensor(new[] { 1f, -1f }).reshape(1, 1, 1, 2), torch.tensor(new[] { 1f, 0f }).reshape(1, 1, 1, 2));
        var m = meter.GetMetrics(SingleTaskBaselines.Parse("depth=0.4", Nyud));
        Assert.Equal(-25.0, m.DeltaM!.Value, 10);
        var json = m.ToJson();
        Assert.Equal(0.4, json["baselines"]!["depth"]!.GetValue<double>());
        Assert.False(json["baselines"]!.AsObject().ContainsKey("edge"));
        Assert.Contains("over 1 task(s)", m.ToTable());
    }

    [Fact]
    public void BadBaselinesAreOneLineErrors()
    {
        var e = Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("depth=0.75,sal=60", Nyud));
        Assert.Equal("Baseline 'sal=60': unknown task 'sal'. Known tasks: semseg, depth, normals, edge.", e.Message);
        Assert.Contains("given twice", Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("depth=1,depth=2", Nyud)).Message);
        Assert.Contains("positive", Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("depth=0", Nyud)).Message);
        // The paper's baselines are PASCAL-Context's: refused for NYUD (its semseg has 40 classes), accepted for PASCAL.
        Assert.Contains("depth", Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("paper", Nyud)).Message);
        Assert.Same(SingleTaskBaselines.Paper, SingleTaskBaselines.Parse("paper", DenseTaskDescriptor.Pascal));
        Assert.Same(SingleTaskBaselines.None, SingleTaskBaselines.Parse("none", Nyud));
        // PASCAL aliases still resolve to a listed built-in.
        Assert.True(SingleTaskBaselines.Parse("SemanticSegmentation=70", Nyud).TryGetValue(DenseTaskDescriptor.NyudSemanticSegmentation, out double v));
        Assert.Equal(70, v);
        var custom = DenseTaskDescriptor.Segmentation("defects", classes: 5);
        Assert.True(SingleTaskBaselines.Parse("defects=50", [custom, DenseTaskDescriptor.NyudDepth]).TryGetValue(custom, out _));
    }
}
