using Microsoft.ML.MtLora.Visualization;
using static Microsoft.ML.MtLora.Tests.Visualization.PngTestHelpers;

namespace Microsoft.ML.MtLora.Tests.Visualization;

public class PlotTests
{
    // Category10 (matplotlib's tab10): the colours the series and points are drawn in, in order.
    private static readonly (byte, byte, byte)[] Category10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)];

    [Fact]
    public void TrainingCurvesPngHasTheSizeAndTheSeries()
    {
        var points = TrainingLogTests.Points(120);
        using var dir = Fixture.TempDir();
        var path = dir.File("training_curves.png");
        TrainingCurves.Save(path, points);
        using var png = Decode(path);
        Assert.Equal((1000, 700), (png.Width, png.Height));
        Assert.True(GreyVariance(png) > 100, "the figure is blank");
        // Each of the four task curves is drawn in its series colour.
        foreach (var colour in Category10) Assert.True(Count(png, colour) > 20, $"no curve drawn in {colour}");
    }

    [Fact]
    public void TrainingCurvesHonourOptionsAndAreDeterministic()
    {
        var points = TrainingLogTests.Points(3);
        var options = new TrainingCurvesOptions { Width = 640, Height = 480, LogScaleLoss = false, Title = "tiny" };
        var first = TrainingCurves.RenderPng(points, options);
        using var png = Decode(first);
        Assert.Equal((640, 480), (png.Width, png.Height));
        Assert.True(GreyVariance(png) > 100);
        Assert.Equal(first, TrainingCurves.RenderPng(points, options));
        Assert.Throws<ArgumentException>(() => TrainingCurves.RenderPng([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingCurves.RenderPng(points, new TrainingCurvesOptions { Width = 10 }));
    }

    [Fact]
    public void TradeOffPlotHasOneColouredPointPerEntry()
    {
        TradeOffPoint[] points =
        [
            new("Single task", 112_620_000, 0),
            new("MTL - Tuning Decoders", 1_940_000, -24.63),
            new("MTLoRA r=16", 4_950_000, 1.35),
            new("MTLoRA r=32", 6_080_000, 2.55),
        ];
        using var dir = Fixture.TempDir();
        var path = dir.File("tradeoff.png");
        TradeOffPlot.Save(path, points);
        using var png = Decode(path);
        Assert.Equal((800, 600), (png.Width, png.Height));
        Assert.True(GreyVariance(png) > 100, "the figure is blank");
        foreach (var colour in Category10) Assert.True(Count(png, colour) > 20, $"no point drawn in {colour}");
        Assert.Equal(File.ReadAllBytes(path), TradeOffPlot.RenderPng(points));

        var linear = Decode(TradeOffPlot.RenderPng(points, new TradeOffPlotOptions { LogScaleParameters = false, Width = 400, Height = 300 }));
        Assert.Equal((400, 300), (linear.Width, linear.Height));
        linear.Dispose();
    }

    [Fact]
    public void TradeOffPlotRejectsBadPoints()
    {
        var e = Assert.Throws<ArgumentException>(() => TradeOffPlot.RenderPng([new TradeOffPoint("broken", 0, 1)]));
        Assert.Contains("broken", e.Message);
        Assert.Throws<ArgumentException>(() => TradeOffPlot.RenderPng([new TradeOffPoint("nan", 10, double.NaN)]));
        Assert.Throws<ArgumentException>(() => TradeOffPlot.RenderPng([]));
    }

    [Theory]
    [InlineData(0.2, 8, new[] { "0.2", "0.5", "1", "2", "5" })]
    [InlineData(1, 1000, new[] { "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000" })]
    [InlineData(1e-3, 1e5, new[] { "0.001", "0.01", "0.1", "1", "10", "100", "1000", "10000", "100000" })]
    [InlineData(3, 7, new[] { "3", "4", "5", "6", "7" })]
    public void LogTicksAreRoundNumbersInsideTheRange(double min, double max, string[] expected)
    {
        var (positions, labels) = PlotRendering.LogTicks(min, max);
        Assert.Equal(expected, labels);
        foreach (var p in positions) Assert.InRange(p, Math.Log10(min) - 1e-9, Math.Log10(max) + 1e-9);
    }
}
