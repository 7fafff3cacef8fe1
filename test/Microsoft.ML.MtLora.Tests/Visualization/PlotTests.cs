using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.MtLora.Visualization;

namespace Microsoft.ML.MtLora.Tests.Visualization;

public partial class PlotTests
{
    private static readonly TradeOffPoint[] TradeOffPoints =
    [
        new("Single task", 112_620_000, 0),
        new("MTL - Tuning Decoders", 1_940_000, -24.63),
        new("MTLoRA r=16", 4_950_000, 1.35),
        new("MTLoRA r=32", 6_080_000, 2.55),
    ];

    [Fact]
    public void TrainingCurvesHtmlHasOneTracePerTaskWithTheLoggedValues()
    {
        var points = TrainingLogTests.Points(120);
        using var dir = Fixture.TempDir();
        var path = dir.File("training_curves.html");
        TrainingCurves.Save(path, points);
        var html = File.ReadAllText(path);
        var (data, layout) = Figure(html);

        // The task traces in reference order, then the total and the learning rate.
        var traces = data.EnumerateArray().ToList();
        Assert.Equal(["semseg", "human_parts", "sal", "normals", "total", "learning rate"], traces.Select(t => t.GetProperty("name").GetString()));
        foreach (var task in new[] { "semseg", "human_parts", "sal", "normals" })
        {
            var trace = traces.Single(t => t.GetProperty("name").GetString() == task);
            Assert.Equal(points.Select(p => (double)p.Step), Numbers(trace, "x"));
            Assert.Equal(points.Select(p => p.TaskLosses[task]), Numbers(trace, "y"));
            Assert.Equal("y", trace.GetProperty("yaxis").GetString());
        }
        Assert.Equal(points.Select(p => p.TotalLoss), Numbers(traces[4], "y"));
        Assert.Equal(points.Select(p => p.LearningRate), Numbers(traces[5], "y"));
        Assert.Equal("y2", traces[5].GetProperty("yaxis").GetString());

        // Log loss axis; the learning rate has its own linear panel under it, sharing the step axis.
        Assert.Equal("log", layout.GetProperty("yaxis").GetProperty("type").GetString());
        Assert.Equal("linear", layout.GetProperty("yaxis2").GetProperty("type").GetString());
        Assert.True(layout.GetProperty("yaxis2").GetProperty("domain")[1].GetDouble() < layout.GetProperty("yaxis").GetProperty("domain")[0].GetDouble());
        Assert.Equal((1000, 700), (layout.GetProperty("width").GetInt32(), layout.GetProperty("height").GetInt32()));
        Assert.Equal(data.GetRawText(), Figure(TrainingCurves.ToHtml(points)).Data.GetRawText());
    }

    [Fact]
    public void TrainingCurvesHonourOptionsAndLeaveOutUnplottableValues()
    {
        var points = TrainingLogTests.Points(3);
        points[1] = points[1] with { TotalLoss = double.NaN, TaskLosses = new Dictionary<string, double>(points[1].TaskLosses) { ["sal"] = 0 } };
        var options = new TrainingCurvesOptions { Width = 640, Height = 480, Title = "tiny" };
        var (data, layout) = Figure(TrainingCurves.ToHtml(points, options));
        var traces = data.EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        Assert.Equal([0.0, 20.0], Numbers(traces["total"], "x"));  // NaN left out
        Assert.Equal([0.0, 20.0], Numbers(traces["sal"], "x"));    // zero cannot be on a log axis
        Assert.Equal([0.0, 10.0, 20.0], Numbers(traces["semseg"], "x"));
        Assert.Equal("lines+markers", traces["semseg"].GetProperty("mode").GetString());
        Assert.Equal("tiny", layout.GetProperty("title").GetProperty("text").GetString());
        Assert.Equal((640, 480), (layout.GetProperty("width").GetInt32(), layout.GetProperty("height").GetInt32()));

        var linear = Figure(TrainingCurves.ToHtml(points, new TrainingCurvesOptions { LogScaleLoss = false })).Layout;
        Assert.Equal("linear", linear.GetProperty("yaxis").GetProperty("type").GetString());
        var linearTraces = Figure(TrainingCurves.ToHtml(points, new TrainingCurvesOptions { LogScaleLoss = false })).Data.EnumerateArray();
        Assert.Equal([0.0, 10.0, 20.0], Numbers(linearTraces.Single(t => t.GetProperty("name").GetString() == "sal"), "x"));

        Assert.Throws<ArgumentException>(() => TrainingCurves.CreateChart([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingCurves.CreateChart(points, new TrainingCurvesOptions { Width = 10 }));
    }

    [Fact]
    public void TradeOffPlotHasOneLabelledMarkerPerModelAndADashedZeroLine()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("tradeoff.html");
        TradeOffPlot.Save(path, TradeOffPoints);
        var (data, layout) = Figure(File.ReadAllText(path));

        var traces = data.EnumerateArray().ToList();
        Assert.Equal(TradeOffPoints.Length, traces.Count);
        for (int i = 0; i < traces.Count; i++)
        {
            Assert.Equal(TradeOffPoints[i].Label, traces[i].GetProperty("name").GetString());
            Assert.Equal("markers+text", traces[i].GetProperty("mode").GetString());
            Assert.Equal([TradeOffPoints[i].Label], traces[i].GetProperty("text").EnumerateArray().Select(t => t.GetString()));
            Assert.Equal([TradeOffPoints[i].TrainableParameters / 1e6], Numbers(traces[i], "x"));
            Assert.Equal([TradeOffPoints[i].DeltaM], Numbers(traces[i], "y"));
        }
        Assert.Equal(4, traces.Select(t => t.GetProperty("marker").GetProperty("color").GetString()).Distinct().Count());

        Assert.Equal("log", layout.GetProperty("xaxis").GetProperty("type").GetString());
        // plotly.js log-axis ranges are in log10 units: the range holds every point (1.94 M .. 112.62 M).
        var range = layout.GetProperty("xaxis").GetProperty("range").EnumerateArray().Select(r => r.GetDouble()).ToArray();
        Assert.True(range[0] < Math.Log10(1.94) && range[1] > Math.Log10(112.62));
        var zero = Assert.Single(layout.GetProperty("shapes").EnumerateArray());
        Assert.Equal("line", zero.GetProperty("type").GetString());
        Assert.Equal((0.0, 0.0), (zero.GetProperty("y0").GetDouble(), zero.GetProperty("y1").GetDouble()));
        Assert.Equal("dash", zero.GetProperty("line").GetProperty("dash").GetString());

        var linear = Figure(TradeOffPlot.ToHtml(TradeOffPoints, new TradeOffPlotOptions { LogScaleParameters = false, Width = 400, Height = 300 })).Layout;
        Assert.Equal("linear", linear.GetProperty("xaxis").GetProperty("type").GetString());
        Assert.Equal((400, 300), (linear.GetProperty("width").GetInt32(), linear.GetProperty("height").GetInt32()));
    }

    [Fact]
    public void HtmlIsSelfContained()
    {
        foreach (var html in new[] { TradeOffPlot.ToHtml(TradeOffPoints), TrainingCurves.ToHtml(TrainingLogTests.Points(5)) })
        {
            Assert.StartsWith("<!DOCTYPE html>", html);
            Assert.EndsWith("</html>", html.TrimEnd());
            // No script loaded from elsewhere: plotly.js itself is inlined.
            Assert.DoesNotMatch(ScriptSrc(), html);
            Assert.Contains("plotly.js v", html);
            Assert.Contains("Plotly.newPlot(", html);
            Assert.Contains("<meta charset=\"utf-8\">", html);
            Assert.True(html.Length > 1_000_000, "plotly.js is not inlined");
        }
    }

    [Fact]
    public void CreateChartGivesTheSameFigureAsTheHtml()
    {
        var chart = TradeOffPlot.CreateChart(TradeOffPoints);
        using var figure = JsonDocument.Parse(Plotly.NET.GenericChart.toFigureJson(chart));
        Assert.Equal(TradeOffPoints.Select(p => p.Label), figure.RootElement.GetProperty("data").EnumerateArray().Select(t => t.GetProperty("name").GetString()));
        Assert.Equal(TradeOffPoints.Length, Plotly.NET.GenericChart.countTrace(chart));
    }

    [Fact]
    public void TradeOffPlotRejectsBadPoints()
    {
        var e = Assert.Throws<ArgumentException>(() => TradeOffPlot.CreateChart([new TradeOffPoint("broken", 0, 1)]));
        Assert.Contains("broken", e.Message);
        Assert.Throws<ArgumentException>(() => TradeOffPlot.CreateChart([new TradeOffPoint("nan", 10, double.NaN)]));
        Assert.Throws<ArgumentException>(() => TradeOffPlot.CreateChart([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TradeOffPlot.CreateChart(TradeOffPoints, new TradeOffPlotOptions { Height = 50 }));
    }

    /// <summary>The <c>data</c> and <c>layout</c> JSON that the page passes to <c>Plotly.newPlot</c>.</summary>
    internal static (JsonElement Data, JsonElement Layout) Figure(string html)
    {
        var data = Assert.Single(DataLine().Matches(html));
        var layout = Assert.Single(LayoutLine().Matches(html));
        return (JsonDocument.Parse(data.Groups[1].Value).RootElement, JsonDocument.Parse(layout.Groups[1].Value).RootElement);
    }

    private static double[] Numbers(JsonElement trace, string name) =>
        [.. trace.GetProperty(name).EnumerateArray().Select(v => v.GetDouble())];

    [GeneratedRegex(@"^\s*var data = (\[.*\]);\s*$", RegexOptions.Multiline)]
    private static partial Regex DataLine();

    [GeneratedRegex(@"^\s*var layout = (\{.*\});\s*$", RegexOptions.Multiline)]
    private static partial Regex LayoutLine();

    [GeneratedRegex(@"<script[^>]*\ssrc\s*=", RegexOptions.IgnoreCase)]
    private static partial Regex ScriptSrc();
}
