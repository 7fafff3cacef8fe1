using Microsoft.ML.MtLora.Data.Formats;
using Plotly.NET;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>Options of <see cref="TrainingCurves"/>.</summary>
public sealed class TrainingCurvesOptions
{
    /// <summary>The figure width in pixels (default 1000).</summary>
    public int Width { get; set; } = 1000;

    /// <summary>The figure height in pixels (default 700): the loss panel takes the top 62 %, the learning-rate panel the bottom 28 %.</summary>
    public int Height { get; set; } = 700;

    /// <summary>Whether the loss axis is logarithmic (default true). Non-positive losses are left out of a log plot.</summary>
    public bool LogScaleLoss { get; set; } = true;

    /// <summary>The title above the loss panel (also the HTML document's title).</summary>
    public string Title { get; set; } = "Training loss";

    internal void Validate()
    {
        if (Width < 200 || Width > 10000) throw new ArgumentOutOfRangeException(nameof(Width), Width, "TrainingCurvesOptions.Width must be in 200..10000 pixels.");
        if (Height < 200 || Height > 10000) throw new ArgumentOutOfRangeException(nameof(Height), Height, "TrainingCurvesOptions.Height must be in 200..10000 pixels.");
        ArgumentNullException.ThrowIfNull(Title, nameof(Title));
    }
}

/// <summary>
/// Plots training progress with Plotly.NET: a top panel with each task's loss and the total loss against the step, and a bottom
/// panel with the learning rate against the step, sharing the step axis. Non-finite values are left out.
/// </summary>
/// <remarks>
/// One trace per task, named by its reference name (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>, then any
/// other name in first-seen order), then <c>total</c>, then <c>learning rate</c>. The loss traces use the axes <c>x</c>/<c>y</c>,
/// the learning rate <c>x</c>/<c>y2</c>. Files are self-contained HTML (plotly.js inlined, about 3.5 MB), readable offline.
/// </remarks>
public static class TrainingCurves
{
    /// <summary>The name of the total-loss trace.</summary>
    public const string TotalTraceName = "total";

    /// <summary>The name of the learning-rate trace.</summary>
    public const string LearningRateTraceName = "learning rate";

    /// <summary>Builds the figure, e.g. to display it in a notebook or to restyle it with Plotly.NET.</summary>
    /// <param name="points">The logged steps (at least one), in any order (sorted by step for drawing).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The chart; its HTML inlines plotly.js.</returns>
    public static GenericChart CreateChart(IReadOnlyList<TrainingCurvePoint> points, TrainingCurvesOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0) throw new ArgumentException("TrainingCurves: there are no points to plot.", nameof(points));
        options ??= new TrainingCurvesOptions();
        options.Validate();
        var sorted = points.OrderBy(p => p.Step).ToList();
        var tasks = TrainingLog.TaskColumns(sorted);

        var series = new List<(string Name, List<(double X, double Y)> Values)>();
        foreach (var task in tasks)
            series.Add((task, sorted.Where(p => p.TaskLosses.ContainsKey(task)).Select(p => ((double)p.Step, p.TaskLosses[task])).ToList()));
        series.Add((TotalTraceName, sorted.Select(p => ((double)p.Step, p.TotalLoss)).ToList()));
        bool log = options.LogScaleLoss && series.Any(s => s.Values.Any(v => double.IsFinite(v.Y) && v.Y > 0));

        var traces = new List<Trace>();
        for (int i = 0; i < series.Count; i++)
        {
            var values = series[i].Values.Where(v => double.IsFinite(v.Y) && (!log || v.Y > 0)).ToArray();
            bool total = i == series.Count - 1;
            traces.Add(PlotlyFigures.Scatter(
                series[i].Name,
                [.. values.Select(v => v.X)],
                [.. values.Select(v => v.Y)],
                Mode(values.Length),
                new Dictionary<string, object>
                {
                    ["line"] = new Dictionary<string, object> { ["color"] = total ? "#000000" : PlotlyFigures.SeriesColor(i), ["width"] = total ? 2.5 : 1.5 },
                    ["marker"] = new Dictionary<string, object> { ["size"] = 5 },
                    ["xaxis"] = "x",
                    ["yaxis"] = "y",
                }));
        }

        var lr = sorted.Where(p => double.IsFinite(p.LearningRate)).ToArray();
        traces.Add(PlotlyFigures.Scatter(
            LearningRateTraceName,
            [.. lr.Select(p => (double)p.Step)],
            [.. lr.Select(p => p.LearningRate)],
            Mode(lr.Length),
            new Dictionary<string, object>
            {
                ["line"] = new Dictionary<string, object> { ["color"] = PlotlyFigures.SeriesColor(tasks.Count + 1), ["width"] = 2.0 },
                ["marker"] = new Dictionary<string, object> { ["size"] = 5 },
                ["xaxis"] = "x",
                ["yaxis"] = "y2",
                ["showlegend"] = false,
            }));

        var layout = PlotlyFigures.Layout(new Dictionary<string, object>
        {
            ["title"] = PlotlyFigures.Title(options.Title),
            ["width"] = options.Width,
            ["height"] = options.Height,
            // The step axis is drawn under the bottom (learning-rate) panel and shared by both, so zooming one zooms the other.
            ["xaxis"] = new Dictionary<string, object> { ["title"] = PlotlyFigures.Title("step"), ["anchor"] = "y2" },
            ["yaxis"] = new Dictionary<string, object>
            {
                ["title"] = PlotlyFigures.Title(log ? "loss (log scale)" : "loss"),
                ["type"] = log ? "log" : "linear",
                ["domain"] = new[] { 0.38, 1.0 },
                ["anchor"] = "x",
            },
            ["yaxis2"] = new Dictionary<string, object>
            {
                ["title"] = PlotlyFigures.Title("learning rate"),
                ["type"] = "linear",
                ["exponentformat"] = "e",
                ["domain"] = new[] { 0.0, 0.28 },
                ["anchor"] = "x",
            },
            ["legend"] = new Dictionary<string, object> { ["x"] = 1.0, ["xanchor"] = "right", ["y"] = 1.0, ["yanchor"] = "top" },
        });
        return PlotlyFigures.Chart(traces, layout, options.Title);
    }

    /// <summary>The figure as a complete, self-contained HTML document (plotly.js inlined; no network needed to view it).</summary>
    /// <param name="points">The logged steps (at least one).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The HTML text.</returns>
    public static string ToHtml(IReadOnlyList<TrainingCurvePoint> points, TrainingCurvesOptions? options = null) =>
        PlotlyFigures.ToHtml(CreateChart(points, options));

    /// <summary>Writes the figure as a self-contained HTML file (to a temporary name, then moved into place).</summary>
    /// <param name="path">The file to write, usually <c>*.html</c>; its folder is created when missing.</param>
    /// <param name="points">The logged steps (at least one).</param>
    /// <param name="options">Options (defaults when null).</param>
    public static void Save(string path, IReadOnlyList<TrainingCurvePoint> points, TrainingCurvesOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllText(path, ToHtml(points, options));
    }

    // Markers help on short runs; on long ones they would hide the curve.
    private static string Mode(int count) => count <= 50 ? "lines+markers" : "lines";
}
