using System.Globalization;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>Shared pieces of the ScottPlot figures: stacking plots on one canvas, PNG encoding, log-axis ticks.</summary>
internal static class PlotRendering
{
    /// <summary>Renders plots stacked vertically (heights in pixels, summing to the figure height) and encodes the figure as PNG.</summary>
    public static byte[] RenderPng(int width, IReadOnlyList<(ScottPlot.Plot Plot, int Height)> plots)
    {
        int height = plots.Sum(p => p.Height);
        using var bitmap = ColorMaps.NewBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            int top = 0;
            foreach (var (plot, h) in plots)
            {
                canvas.Save();
                canvas.Translate(0, top);
                canvas.ClipRect(SKRect.Create(0, 0, width, h));
                plot.Render(canvas, width, h);
                canvas.Restore();
                top += h;
            }
        }
        return PngFile.Encode(bitmap);
    }

    /// <summary>
    /// Ticks for an axis that plots log10 of positive values: 1-2-5 steps per decade (every decade alone when that gives too many,
    /// 1..9 when it gives too few), placed at log10(value) and labelled with the value.
    /// </summary>
    public static (double[] Positions, string[] Labels) LogTicks(double minValue, double maxValue)
    {
        int lo = (int)Math.Floor(Math.Log10(minValue)), hi = (int)Math.Ceiling(Math.Log10(maxValue));
        foreach (var mantissas in new[] { new[] { 1.0, 2, 5 }, [1.0, 2, 3, 4, 5, 6, 7, 8, 9], [1.0] })
        {
            var values = new List<double>();
            for (int e = lo; e <= hi; e++)
            {
                foreach (var m in mantissas)
                {
                    double v = m * Math.Pow(10, e);
                    if (v >= minValue * (1 - 1e-9) && v <= maxValue * (1 + 1e-9)) values.Add(v);
                }
            }
            bool tooFew = values.Count < 2 && mantissas.Length == 3;
            bool tooMany = values.Count > 12 && mantissas.Length > 1;
            if (tooFew || tooMany) continue;
            if (values.Count == 0) break;
            return ([.. values.Select(Math.Log10)], [.. values.Select(TickLabel)]);
        }
        // A range inside one 1..9 step: label its two ends.
        return ([Math.Log10(minValue), Math.Log10(maxValue)], [TickLabel(minValue), TickLabel(maxValue)]);
    }

    /// <summary>A short tick label: plain digits from 0.0001 to a million (0.2, 50, 1000), scientific notation outside.</summary>
    private static string TickLabel(double value) =>
        value >= 1e-4 && value < 1e6
            ? Math.Round(value, 6).ToString("0.######", CultureInfo.InvariantCulture)
            : value.ToString("G3", CultureInfo.InvariantCulture);

    /// <summary>A new plot whose text uses the same sans-serif face as the prediction grids (ScottPlot picks a serif one on some Linux machines).</summary>
    public static ScottPlot.Plot NewPlot()
    {
        var plot = new ScottPlot.Plot();
        plot.Font.Set(VisualizationFonts.Typeface?.FamilyName ?? ScottPlot.Fonts.Sans);
        return plot;
    }

    /// <summary>The Category10 colour of series <paramref name="index"/>.</summary>
    public static ScottPlot.Color SeriesColor(int index) => new ScottPlot.Palettes.Category10().GetColor(index);
}
