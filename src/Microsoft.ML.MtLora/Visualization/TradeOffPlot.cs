using Microsoft.ML.MtLora.Data.Formats;
using Plotly.NET;

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

    /// <summary>The title (also the HTML document's title).</summary>
    public string Title { get; set; } = "Accuracy vs trainable parameters";

    internal void Validate()
    {
        if (Width < 200 || Width > 10000) throw new ArgumentOutOfRangeException(nameof(Width), Width, "TradeOffPlotOptions.Width must be in 200..10000 pixels.");
        if (Height < 200 || Height > 10000) throw new ArgumentOutOfRangeException(nameof(Height), Height, "TradeOffPlotOptions.Height must be in 200..10000 pixels.");
        ArgumentNullException.ThrowIfNull(Title, nameof(Title));
    }
}

/// <summary>
/// The paper's Figure 1 view, with Plotly.NET: trainable parameters in millions (x, log scale by default) against Δm in percent (y),
/// one labelled marker per model (one trace each, named by the label, marker and text), with a dashed line at Δm = 0 (the
/// single-task baselines). Files are self-contained HTML (plotly.js inlined, about 3.5 MB), readable offline.
/// </summary>
public static class TradeOffPlot
{
    /// <summary>Builds the figure, e.g. to display it in a notebook or to restyle it with Plotly.NET.</summary>
    /// <param name="points">The models (at least one; parameters positive, Δm finite).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The chart; its HTML inlines plotly.js.</returns>
    public static GenericChart CreateChart(IReadOnlyList<TradeOffPoint> points, TradeOffPlotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0) throw new ArgumentException("TradeOffPlot: there are no points to plot.", nameof(points));
        options ??= new TradeOffPlotOptions();
        options.Validate();
        foreach (var p in points)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(points));
            if (p.Label is null) throw new ArgumentException("TradeOffPlot: a point has no label.", nameof(points));
            if (p.TrainableParameters <= 0)
                throw new ArgumentException($"TradeOffPlot: point '{p.Label}' has {p.TrainableParameters} trainable parameters; expected a positive count.", nameof(points));
            if (!double.IsFinite(p.DeltaM))
                throw new ArgumentException($"TradeOffPlot: point '{p.Label}' has Δm = {p.DeltaM}; expected a finite percentage.", nameof(points));
        }

        bool log = options.LogScaleParameters;
        var traces = new List<Trace>();
        for (int i = 0; i < points.Count; i++)
        {
            var color = PlotlyFigures.SeriesColor(i);
            traces.Add(PlotlyFigures.Scatter(
                points[i].Label,
                [points[i].TrainableParameters / 1e6],
                [points[i].DeltaM],
                "markers+text",
                new Dictionary<string, object>
                {
                    ["text"] = new[] { points[i].Label },
                    ["textposition"] = "middle right",
                    ["textfont"] = new Dictionary<string, object> { ["color"] = color, ["size"] = 13 },
                    ["marker"] = new Dictionary<string, object> { ["color"] = color, ["size"] = 11 },
                    ["hovertemplate"] = "%{text}<br>%{x:.4g} M trainable parameters<br>Δm = %{y:.2f} %<extra></extra>",
                    ["showlegend"] = false,
                }));
        }

        // Room on the right for the labels, which are written to the right of their points; plotly.js gives log axes' ranges in log10.
        double[] xs = [.. points.Select(p => log ? Math.Log10(p.TrainableParameters / 1e6) : p.TrainableParameters / 1e6)];
        double xMin = xs.Min(), xMax = xs.Max(), xSpan = Math.Max(xMax - xMin, log ? 1 : Math.Max(xMax, 1e-6));
        double left = xMin - 0.1 * xSpan, right = xMax + 0.35 * xSpan;
        if (!log) left = Math.Max(0, left);
        double yMin = Math.Min(0, points.Min(p => p.DeltaM)), yMax = Math.Max(0, points.Max(p => p.DeltaM));
        double ySpan = Math.Max(yMax - yMin, 1);

        var layout = PlotlyFigures.Layout(new Dictionary<string, object>
        {
            ["title"] = PlotlyFigures.Title(options.Title),
            ["width"] = options.Width,
            ["height"] = options.Height,
            ["showlegend"] = false,
            ["xaxis"] = new Dictionary<string, object>
            {
                ["title"] = PlotlyFigures.Title(log ? "trainable parameters (millions, log scale)" : "trainable parameters (millions)"),
                ["type"] = log ? "log" : "linear",
                ["range"] = new[] { left, right },
            },
            ["yaxis"] = new Dictionary<string, object>
            {
                ["title"] = PlotlyFigures.Title("Δm (%)"),
                ["range"] = new[] { yMin - 0.1 * ySpan, yMax + 0.1 * ySpan },
                ["zeroline"] = false,
            },
            // Δm = 0 is the single-task baselines: a dashed line across the whole plot width.
            ["shapes"] = new[]
            {
                new Dictionary<string, object>
                {
                    ["type"] = "line",
                    ["xref"] = "paper", ["x0"] = 0.0, ["x1"] = 1.0,
                    ["yref"] = "y", ["y0"] = 0.0, ["y1"] = 0.0,
                    ["line"] = new Dictionary<string, object> { ["color"] = "gray", ["width"] = 1, ["dash"] = "dash" },
                },
            },
        });
        return PlotlyFigures.Chart(traces, layout, options.Title);
    }

    /// <summary>The figure as a complete, self-contained HTML document (plotly.js inlined; no network needed to view it).</summary>
    /// <param name="points">The models.</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The HTML text.</returns>
    public static string ToHtml(IReadOnlyList<TradeOffPoint> points, TradeOffPlotOptions? options = null) =>
        PlotlyFigures.ToHtml(CreateChart(points, options));

    /// <summary>Writes the figure as a self-contained HTML file (to a temporary name, then moved into place).</summary>
    /// <param name="path">The file to write, usually <c>*.html</c>; its folder is created when missing.</param>
    /// <param name="points">The models.</param>
    /// <param name="options">Options (defaults when null).</param>
    public static void Save(string path, IReadOnlyList<TradeOffPoint> points, TradeOffPlotOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllText(path, ToHtml(points, options));
    }
}
