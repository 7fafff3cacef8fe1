namespace Microsoft.ML.MtLora.Visualization;

/// <summary>One model on the accuracy/parameter trade-off plot.</summary>
/// <param name="Label">The label written next to the point, e.g. <c>MTLoRA r=32</c>.</param>
/// <param name="TrainableParameters">The number of trainable parameters (positive).</param>
/// <param name="DeltaM">The multi-task gain Δm over the single-task baselines, in percent.</param>
public sealed record TradeOffPoint(string Label, long TrainableParameters, double DeltaM);

/// <summary>Options of <see cref="TradeOffPlot"/>.</summary>
public sealed class TradeOffPlotOptions
{
    /// <summary>The figure width in pixels (default 800).</summary>
    public int Width { get; set; } = 800;

    /// <summary>The figure height in pixels (default 600).</summary>
    public int Height { get; set; } = 600;

    /// <summary>Whether the parameter axis is logarithmic (default true).</summary>
    public bool LogScaleParameters { get; set; } = true;

    /// <summary>The title.</summary>
    public string Title { get; set; } = "Accuracy vs trainable parameters";

    internal void Validate()
    {
        if (Width < 200 || Width > 10000) throw new ArgumentOutOfRangeException(nameof(Width), Width, "TradeOffPlotOptions.Width must be in 200..10000 pixels.");
        if (Height < 200 || Height > 10000) throw new ArgumentOutOfRangeException(nameof(Height), Height, "TradeOffPlotOptions.Height must be in 200..10000 pixels.");
    }
}

/// <summary>
/// The paper's Figure 1 view (ScottPlot): trainable parameters in millions (x, log scale by default) against Δm in percent (y),
/// one labelled point per model, with a dashed line at Δm = 0 (the single-task baselines).
/// </summary>
public static class TradeOffPlot
{
    /// <summary>Renders the plot as a PNG of <see cref="TradeOffPlotOptions.Width"/> × <see cref="TradeOffPlotOptions.Height"/> pixels.</summary>
    /// <param name="points">The models (at least one; parameters positive, Δm finite).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The PNG file bytes.</returns>
    public static byte[] RenderPng(IReadOnlyList<TradeOffPoint> points, TradeOffPlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0) throw new ArgumentException("TradeOffPlot: there are no points to plot.", nameof(points));
        options ??= new TradeOffPlotOptions();
        options.Validate();
        foreach (var p in points)
        {
            if (p.TrainableParameters <= 0)
                throw new ArgumentException($"TradeOffPlot: point '{p.Label}' has {p.TrainableParameters} trainable parameters; expected a positive count.", nameof(points));
            if (!double.IsFinite(p.DeltaM))
                throw new ArgumentException($"TradeOffPlot: point '{p.Label}' has Δm = {p.DeltaM}; expected a finite percentage.", nameof(points));
        }

        bool log = options.LogScaleParameters;
        var plot = PlotRendering.NewPlot();
        plot.Add.HorizontalLine(0, 1, ScottPlot.Colors.Gray, ScottPlot.LinePattern.Dashed);
        for (int i = 0; i < points.Count; i++)
        {
            double millions = points[i].TrainableParameters / 1e6;
            double x = log ? Math.Log10(millions) : millions;
            var color = PlotRendering.SeriesColor(i);
            plot.Add.Marker(x, points[i].DeltaM, ScottPlot.MarkerShape.FilledCircle, 10, color);
            var text = plot.Add.Text(points[i].Label, x, points[i].DeltaM);
            text.LabelFontSize = 13;
            text.LabelFontColor = color;
            text.OffsetX = 8;
            text.LabelAlignment = ScottPlot.Alignment.LowerLeft;
            text.OffsetY = -3;
        }
        // Room on the right for the labels, which are written to the right of their points.
        double[] xs = [.. points.Select(p => log ? Math.Log10(p.TrainableParameters / 1e6) : p.TrainableParameters / 1e6)];
        double xMin = xs.Min(), xMax = xs.Max(), xSpan = Math.Max(xMax - xMin, log ? 1 : Math.Max(xMax, 1e-6));
        double left = xMin - 0.1 * xSpan, right = xMax + 0.35 * xSpan;
        if (!log) left = Math.Max(0, left);
        if (log)
        {
            var (positions, labels) = PlotRendering.LogTicks(Math.Pow(10, left), Math.Pow(10, right));
            plot.Axes.Bottom.SetTicks(positions, labels);
        }
        double yMin = Math.Min(0, points.Min(p => p.DeltaM)), yMax = Math.Max(0, points.Max(p => p.DeltaM));
        double ySpan = Math.Max(yMax - yMin, 1);
        plot.Axes.SetLimits(left, right, yMin - 0.1 * ySpan, yMax + 0.1 * ySpan);
        plot.Title(options.Title);
        plot.XLabel(log ? "trainable parameters (millions, log scale)" : "trainable parameters (millions)");
        plot.YLabel("Δm (%)");
        return PlotRendering.RenderPng(options.Width, [(plot, options.Height)]);
    }

    /// <summary>Renders the plot into a PNG file (written to a temporary name, then moved into place).</summary>
    /// <param name="path">The file to write; its folder is created when missing.</param>
    /// <param name="points">The models.</param>
    /// <param name="options">Options (defaults when null).</param>
    public static void Save(string path, IReadOnlyList<TradeOffPoint> points, TradeOffPlotOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllBytes(path, RenderPng(points, options));
    }
}
