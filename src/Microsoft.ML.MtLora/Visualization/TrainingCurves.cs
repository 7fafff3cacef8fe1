namespace Microsoft.ML.MtLora.Visualization;

/// <summary>Options of <see cref="TrainingCurves"/>.</summary>
public sealed class TrainingCurvesOptions
{
    /// <summary>The figure width in pixels (default 1000).</summary>
    public int Width { get; set; } = 1000;

    /// <summary>The figure height in pixels (default 700): the loss panel takes the top 65 %, the learning-rate panel the rest.</summary>
    public int Height { get; set; } = 700;

    /// <summary>Whether the loss axis is logarithmic (default true). Non-positive losses are left out of a log plot.</summary>
    public bool LogScaleLoss { get; set; } = true;

    /// <summary>The title above the loss panel.</summary>
    public string Title { get; set; } = "Training loss";

    internal void Validate()
    {
        if (Width < 200 || Width > 10000) throw new ArgumentOutOfRangeException(nameof(Width), Width, "TrainingCurvesOptions.Width must be in 200..10000 pixels.");
        if (Height < 200 || Height > 10000) throw new ArgumentOutOfRangeException(nameof(Height), Height, "TrainingCurvesOptions.Height must be in 200..10000 pixels.");
    }
}

/// <summary>
/// Plots training progress (ScottPlot): a top panel with each task's loss and the total loss against the step, and a bottom
/// panel with the learning rate against the step. Non-finite values are left out.
/// </summary>
public static class TrainingCurves
{
    /// <summary>Renders the curves as a PNG of <see cref="TrainingCurvesOptions.Width"/> × <see cref="TrainingCurvesOptions.Height"/> pixels.</summary>
    /// <param name="points">The logged steps (at least one), in any order (sorted by step for drawing).</param>
    /// <param name="options">Options (defaults when null).</param>
    /// <returns>The PNG file bytes.</returns>
    public static byte[] RenderPng(IReadOnlyList<TrainingCurvePoint> points, TrainingCurvesOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count == 0) throw new ArgumentException("TrainingCurves: there are no points to plot.", nameof(points));
        options ??= new TrainingCurvesOptions();
        options.Validate();
        var sorted = points.OrderBy(p => p.Step).ToList();
        var tasks = TrainingLog.TaskColumns(sorted);

        var series = new List<(string Name, IEnumerable<(double X, double Y)> Values)>();
        for (int i = 0; i < tasks.Count; i++)
        {
            var task = tasks[i];
            series.Add((task, sorted.Where(p => p.TaskLosses.ContainsKey(task)).Select(p => ((double)p.Step, p.TaskLosses[task]))));
        }
        series.Add(("total", sorted.Select(p => ((double)p.Step, p.TotalLoss))));
        bool log = options.LogScaleLoss && series.Any(s => s.Values.Any(v => double.IsFinite(v.Y) && v.Y > 0));

        var lossPlot = PlotRendering.NewPlot();
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        for (int i = 0; i < series.Count; i++)
        {
            var values = series[i].Values.Where(v => double.IsFinite(v.Y) && (!log || v.Y > 0)).ToArray();
            if (values.Length == 0) continue;
            bool total = i == series.Count - 1;
            var scatter = lossPlot.Add.Scatter(
                values.Select(v => v.X).ToArray(),
                values.Select(v => log ? Math.Log10(v.Y) : v.Y).ToArray(),
                total ? ScottPlot.Colors.Black : PlotRendering.SeriesColor(i));
            scatter.LegendText = series[i].Name;
            scatter.LineWidth = total ? 2.5f : 1.5f;
            scatter.MarkerSize = values.Length <= 50 ? 4 : 0;
            min = Math.Min(min, values.Min(v => v.Y));
            max = Math.Max(max, values.Max(v => v.Y));
        }
        if (log && min <= max)
        {
            var (positions, labels) = PlotRendering.LogTicks(min, max);
            lossPlot.Axes.Left.SetTicks(positions, labels);
        }
        lossPlot.Title(options.Title);
        lossPlot.YLabel(log ? "loss (log scale)" : "loss");
        lossPlot.XLabel("step");
        lossPlot.ShowLegend(ScottPlot.Alignment.UpperRight);

        var lrPlot = PlotRendering.NewPlot();
        var lr = sorted.Where(p => double.IsFinite(p.LearningRate)).ToArray();
        if (lr.Length > 0)
        {
            var lrLine = lrPlot.Add.Scatter(lr.Select(p => (double)p.Step).ToArray(), lr.Select(p => p.LearningRate).ToArray(), PlotRendering.SeriesColor(tasks.Count + 1));
            lrLine.LineWidth = 2f;
            lrLine.MarkerSize = lr.Length <= 50 ? 4 : 0;
        }
        lrPlot.YLabel("learning rate");
        lrPlot.XLabel("step");

        int lossHeight = (int)Math.Round(options.Height * 0.65);
        return PlotRendering.RenderPng(options.Width, [(lossPlot, lossHeight), (lrPlot, options.Height - lossHeight)]);
    }

    /// <summary>Renders the curves into a PNG file (written to a temporary name, then moved into place).</summary>
    /// <param name="path">The file to write; its folder is created when missing.</param>
    /// <param name="points">The logged steps (at least one).</param>
    /// <param name="options">Options (defaults when null).</param>
    public static void Save(string path, IReadOnlyList<TrainingCurvePoint> points, TrainingCurvesOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        AtomicFile.WriteAllBytes(path, RenderPng(points, options));
    }
}
