using Microsoft.Data.Analysis;
using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class MultiTaskMetricsTests
{
    private static MultiTaskMetrics FixtureMetrics(SingleTaskBaselines? baselines = null)
    {
        using var fx = MetricFixture.Metrics();
        var meter = new MultiTaskMeter(DenseTasks.All);
        foreach (var task in DenseTasks.All) meter.Update(task, fx.Out(task), fx.Target(task));
        return meter.GetMetrics(baselines);
    }

    [Fact]
    public void DeltaMUsesThePaperUnits()
    {
        var m = FixtureMetrics();
        Assert.Equal(m.SemanticSegmentation!.MeanIoU * 100, m.GetPaperMetric(DenseTask.SemanticSegmentation));
        Assert.Equal(m.SurfaceNormals!.Mean, m.GetPaperMetric(DenseTask.SurfaceNormals));
        var expected = DeltaM.Compute(DenseTasks.All.Select(t => KeyValuePair.Create(t, m.GetPaperMetric(t))), SingleTaskBaselines.Paper);
        Assert.Equal(expected, m.DeltaM);
        Assert.Null(FixtureMetrics(SingleTaskBaselines.None).DeltaM);
    }

    [Fact]
    public void TableHasOneLinePerTaskAndDeltaM()
    {
        var table = FixtureMetrics().ToTable();
        var lines = table.Split(Environment.NewLine);
        Assert.Equal(6, lines.Length);
        Assert.StartsWith("Task", lines[0]);
        Assert.StartsWith("semseg", lines[1]);
        Assert.Contains("22.92", lines[1]);   // mIoU 0.2292 printed in percent
        Assert.Contains("67.21", lines[1]);   // its baseline
        Assert.StartsWith("normals", lines[4]);
        Assert.Contains("28.57", lines[4]);
        Assert.StartsWith("Δm = -42.85 %", lines[5]);
        Assert.Equal(table, FixtureMetrics().ToString());
    }

    [Fact]
    public void DataFrameHasOneRowPerTask()
    {
        var m = FixtureMetrics();
        DataFrame df = m.ToDataFrame();
        Assert.Equal(4, df.Rows.Count);
        Assert.Equal(["semseg", "human_parts", "sal", "normals"], df["Task"].Cast<string>().ToArray());
        Assert.Equal(m.Saliency!.MeanIoU, (double)df["MeanIoU"][2]!);
        Assert.Equal(m.Saliency.MaxF, (double)df["MaxF"][2]!);
        Assert.Null(df["MaxF"][0]);
        Assert.Null(df["MeanIoU"][3]);
        Assert.Equal(m.SurfaceNormals!.Median, (double)df["MedianAngle"][3]!);
        Assert.Equal(17.97, (double)df["Baseline"][3]!);
        Assert.Equal(DeltaM.RelativeGain(DenseTask.SurfaceNormals, m.SurfaceNormals.Mean, 17.97), (double)df["Gain"][3]!);
    }

    [Fact]
    public void JsonUsesTheReferenceNamesAndUnits()
    {
        var m = FixtureMetrics();
        var json = m.ToJson();
        Assert.Equal(m.SemanticSegmentation!.MeanIoU, json["semseg"]!["mIoU"]!.GetValue<double>());
        Assert.Equal(21, json["semseg"]!["per_class_iou"]!.AsArray().Count);
        Assert.Equal(m.Saliency!.MaxF, json["sal"]!["maxF"]!.GetValue<double>());
        Assert.Equal(m.SurfaceNormals!.Mean, json["normals"]!["rmse"]!.GetValue<double>());
        Assert.Equal(m.SurfaceNormals.Rmse, json["normals"]!["rmse_true"]!.GetValue<double>());
        Assert.Equal(m.SurfaceNormals.Within30 * 100, json["normals"]!["30"]!.GetValue<double>());
        Assert.Equal(m.DeltaM!.Value, json["delta_m"]!.GetValue<double>());
        Assert.False(FixtureMetrics(SingleTaskBaselines.None).ToJson().ContainsKey("delta_m"));
    }
}
