using Microsoft.ML.MtLora.Evaluation;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests.Tasks;

/// <summary>MultiTaskMeter / MultiTaskMetrics on tasks that are not PASCAL built-ins, each scored by its kind; expected values by hand.</summary>
[Collection(SerialCollection.Name)]
public class MultiTaskMeterKindsTests
{
    private static readonly DenseTaskDescriptor Defects = DenseTaskDescriptor.Segmentation("defects", classes: 5);

    private static MultiTaskMetrics Score(SingleTaskBaselines baselines)
    {
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([DenseTaskDescriptor.NyudEdge, Defects, DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.NyudSemanticSegmentation]);
        // Depth: 4 pixels, one ignored (255): errors 0, 0, 4 − 5 = −1 → RMSE √(1/3); log-RMSE √((ln 5 − ln 4)²/3).
        meter.Update(DenseTaskDescriptor.NyudDepth,
            torch.tensor(new[] { 1f, 2f, 7f, 4f }).reshape(1, 1, 2, 2),
            torch.tensor(new[] { 1f, 2f, 255f, 5f }).reshape(1, 1, 2, 2));
        // Edge: logits ≥ 0 are edges. Two images of (logit, label): (2, 1) TP, (−1, 1) FN, (3, 0) FP; (−2, 0) TN, (5, 255) ignored,
        // (0, 1) TP (sigmoid 0 = 0.5 ≥ 0.5) → TP 2, FP 1, FN 1: precision 2/3, recall 2/3, F = 2·2 / (2·2 + 1 + 1) = 2/3.
        meter.Update(DenseTaskDescriptor.NyudEdge,
            torch.tensor(new[] { 2f, -1f, 3f, -2f, 5f, 0f }).reshape(2, 1, 1, 3),
            torch.tensor(new[] { 1f, 1f, 0f, 0f, 255f, 1f }).reshape(2, 1, 1, 3));
        // defects (5 classes): argmax 0 and 4, labels 0 and 3 → pixel accuracy 1/2, IoU of class 0 = 1, of 3 and 4 = 0.
        var logits = torch.zeros(1, 5, 1, 2);
        logits[0, 0, 0, 0] = torch.tensor(1f);
        logits[0, 4, 0, 1] = torch.tensor(1f);
        meter.Update(Defects, logits, torch.tensor(new[] { 0f, 3f }).reshape(1, 1, 1, 2));
        var semseg = torch.zeros(1, 40, 1, 1);
        semseg[0, 7, 0, 0] = torch.tensor(1f);
        meter.Update(DenseTaskDescriptor.NyudSemanticSegmentation, semseg, torch.tensor(new[] { 7f }).reshape(1, 1, 1, 1));
        return meter.GetMetrics(baselines);
    }

    [Fact]
    public void EachKindHasItsMeter()
    {
        var m = Score(SingleTaskBaselines.None);
        Assert.Equal(["semseg", "depth", "edge", "defects"], m.Tasks.Select(t => t.Name).ToArray());
        var depth = m.Depths[DenseTaskDescriptor.NyudDepth];
        Assert.Equal(Math.Sqrt(1.0 / 3), depth.Rmse, 12);
        Assert.Equal(Math.Sqrt(Math.Pow(Math.Log(5) - Math.Log(4), 2) / 3), depth.LogRmse, 12);
        Assert.Equal(3, depth.PixelCount);
        var edge = m.Edges[DenseTaskDescriptor.NyudEdge];
        Assert.Equal((2L, 1L, 1L, 5L), (edge.TruePositives, edge.FalsePositives, edge.FalseNegatives, edge.PixelCount));
        Assert.Equal(4.0 / 6, edge.FMeasure, 12);   // 2·2 / (2·2 + 1 + 1)
        Assert.Equal(2.0 / 3, edge.Precision, 12);
        Assert.Equal(2.0 / 3, edge.Recall, 12);
        var defects = m.OtherSegmentations[Defects];
        Assert.Equal(5, defects.NumClasses);
        Assert.Equal(0.5, defects.PixelAccuracy, 12);
        Assert.Equal(m.Depths[DenseTaskDescriptor.NyudDepth].Rmse, m.GetPaperMetric(DenseTaskDescriptor.NyudDepth));
        Assert.Equal(400.0 / 6, m.GetPaperMetric(DenseTaskDescriptor.NyudEdge), 10);
        Assert.Equal(defects.MeanIoU * 100, m.GetPaperMetric(Defects));
        Assert.Equal(40, m.SemanticSegmentation!.NumClasses);
        Assert.Null(m.DeltaM);
    }

    [Fact]
    public void JsonTableAndDataFrameNameTheMetrics()
    {
        var m = Score(SingleTaskBaselines.None);
        var json = m.ToJson();
        Assert.Equal(["semseg", "depth", "edge", "defects"], json.Select(kv => kv.Key).ToArray());
        Assert.Equal(Math.Sqrt(1.0 / 3), json["depth"]!["rmse"]!.GetValue<double>(), 12);
        Assert.True(json["depth"]!.AsObject().ContainsKey("log_rmse"));
        Assert.Equal(4.0 / 6, json["edge"]!["edge_f@0.5"]!.GetValue<double>(), 12);
        Assert.Equal(0.5, json["edge"]!["threshold"]!.GetValue<double>());
        Assert.Equal(5, json["defects"]!["per_class_iou"]!.AsArray().Count);
        var lines = m.ToTable().Split(Environment.NewLine);
        Assert.StartsWith("depth", lines[2]);
        Assert.Contains("RMSE", lines[2]);
        Assert.Contains("0.5774", lines[2]);          // √(1/3)
        Assert.StartsWith("edge", lines[3]);
        Assert.Contains("edge_f@0.5 (%)", lines[3]);
        Assert.Contains("66.67", lines[3]);
        Assert.Contains("not ODS-F", lines[3]);
        var df = m.ToDataFrame();
        Assert.Equal(Math.Sqrt(1.0 / 3), (double)df["DepthRmse"][1]!, 12);
        Assert.Equal(4.0 / 6, (double)df["EdgeF"][2]!, 12);
        Assert.Null(df["EdgeF"][1]);
    }

    [Fact]
    public void ADepthWithOnlyIgnoredPixelsIsAnError()
    {
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([DenseTaskDescriptor.NyudDepth]);
        meter.Update(DenseTaskDescriptor.NyudDepth, torch.ones(1, 1, 1, 2), torch.tensor(new[] { 255f, 255f }).reshape(1, 1, 1, 2));
        Assert.Contains("depth", Assert.Throws<InvalidOperationException>(() => meter.GetMetrics()).Message);
        var edgeMeter = new MultiTaskMeter([DenseTaskDescriptor.NyudEdge]);
        var e = Assert.Throws<ArgumentException>(() => edgeMeter.Update(DenseTaskDescriptor.NyudEdge, torch.ones(1, 1, 1, 1), torch.tensor(new[] { 2f }).reshape(1, 1, 1, 1)));
        Assert.Contains("edge", e.Message);
    }

    [Fact]
    public void ACustomDepthUsesItsIgnoreValue()
    {
        var range = DenseTaskDescriptor.Depth("range", ignoreValue: 0);
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([range]);
        // Label 0 is ignored; the other pixel: error 3 − 1 = 2 → RMSE 2.
        meter.Update(range, torch.tensor(new[] { 9f, 1f }).reshape(1, 1, 1, 2), torch.tensor(new[] { 0f, 3f }).reshape(1, 1, 1, 2));
        Assert.Equal(2.0, meter.GetMetrics(SingleTaskBaselines.None).Depths[range].Rmse, 12);
    }
}
