using System.Globalization;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// The single-task reference values M_t^ST that Δm compares against, one per task, in the units of
/// <see cref="MultiTaskMetrics.GetPaperMetric"/>: mIoU in percent (×100) for a segmentation and saliency; mean angular error
/// in degrees for normals; RMSE in the labels' unit (metres for NYUD) for depth; <c>edge_f@0.5</c> in percent for an edge map.
/// Whether a gain is an increase or a decrease comes from each task's <see cref="DenseTaskDescriptor.HigherIsBetter"/>.
/// </summary>
/// <remarks>Baselines are data: use <see cref="Paper"/> (PASCAL-Context), or your own single-task runs through the constructor
/// or <see cref="Parse(string, IEnumerable{DenseTaskDescriptor})"/> for any task set (e.g. NYUD's <c>semseg=…,depth=…</c>).</remarks>
public sealed class SingleTaskBaselines
{
    private readonly Dictionary<DenseTaskDescriptor, double> _values;

    /// <summary>Creates a set of baselines.</summary>
    /// <param name="values">The baseline of each task (any subset of tasks), in the paper's units.</param>
    /// <exception cref="ArgumentException">A value is not a positive finite number.</exception>
    public SingleTaskBaselines(IEnumerable<KeyValuePair<DenseTaskDescriptor, double>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = [];
        foreach (var (task, value) in values)
        {
            if (!double.IsFinite(value) || value <= 0)
                throw new ArgumentException($"The single-task baseline of {task.Name} must be a positive number, but is {value.ToString(CultureInfo.InvariantCulture)}.", nameof(values));
            _values[task] = value;
        }
    }

    /// <summary>
    /// The paper's single-task full fine-tuning results (MTLoRA, Table 1, Swin-T on PASCAL-Context):
    /// semantic segmentation 67.21, human parts 61.93, saliency 62.35 (mIoU, %), normals 17.97 (mean angle, °).
    /// </summary>
    public static SingleTaskBaselines Paper { get; } = new(new Dictionary<DenseTaskDescriptor, double>
    {
        [DenseTask.SemanticSegmentation] = 67.21,
        [DenseTask.HumanParts] = 61.93,
        [DenseTask.Saliency] = 62.35,
        [DenseTask.SurfaceNormals] = 17.97,
    });

    /// <summary>No baselines: Δm is not computed.</summary>
    public static SingleTaskBaselines None { get; } = new([]);

    /// <summary>The tasks that have a baseline, in the reference's task order (semseg, human_parts, sal, normals, depth, edge),
    /// then your own by name.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => _values.Keys.Order().ToArray();

    /// <summary>Gets the baseline of a task.</summary>
    /// <param name="task">The task.</param>
    /// <param name="value">Its baseline in the paper's units, when present.</param>
    /// <returns>Whether the task has a baseline.</returns>
    public bool TryGetValue(DenseTaskDescriptor task, out double value) => _values.TryGetValue(task, out value);

    /// <summary>
    /// Parses <c>task=value</c> pairs separated by commas, e.g. <c>semseg=67.21,human_parts=61.93,sal=62.35,normals=17.97</c>
    /// (task names as <see cref="DenseTasks.Parse"/> accepts them, invariant-culture numbers). <c>paper</c> gives
    /// <see cref="Paper"/> and <c>none</c> gives <see cref="None"/>.
    /// </summary>
    /// <param name="text">The text to parse.</param>
    /// <returns>The baselines.</returns>
    /// <exception cref="FormatException">The text is malformed; the message names the faulty pair.</exception>
    public static SingleTaskBaselines Parse(string text) => Parse(text, DenseTaskDescriptor.Pascal);

    /// <summary>
    /// Parses <c>task=value</c> pairs separated by commas for the given tasks, e.g. <c>semseg=37.18,depth=0.75</c> for NYUD
    /// (a task's <see cref="DenseTaskDescriptor.Name"/>; for the PASCAL built-ins also the names <see cref="DenseTasks.Parse"/>
    /// accepts; invariant-culture numbers in the units of <see cref="MultiTaskMetrics.GetPaperMetric"/>). Tasks left out
    /// have no baseline and do not count in Δm. <c>none</c> (or empty) gives <see cref="None"/>; <c>paper</c> gives
    /// <see cref="Paper"/> and is accepted only when every task is a PASCAL-Context built-in.
    /// </summary>
    /// <param name="text">The text to parse.</param>
    /// <param name="tasks">The tasks a name may refer to (the evaluated ones).</param>
    /// <returns>The baselines, keyed by the given descriptors.</returns>
    /// <exception cref="FormatException">The text is malformed or names a task not in <paramref name="tasks"/>; the message
    /// names the faulty pair and the tasks there are.</exception>
    public static SingleTaskBaselines Parse(string text, IEnumerable<DenseTaskDescriptor> tasks)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(tasks);
        var known = tasks.ToList();
        var trimmed = text.Trim();
        if (trimmed.Equals("paper", StringComparison.OrdinalIgnoreCase))
        {
            var notPascal = known.Where(t => !DenseTaskDescriptor.Pascal.Any(p => p.SameDefinition(t))).Select(t => t.Name).ToList();
            if (notPascal.Count > 0)
                throw new FormatException($"Baselines 'paper' are the paper's PASCAL-Context single-task results; task(s) {string.Join(", ", notPascal)} need their own, e.g. {notPascal[0]}=<value>.");
            return Paper;
        }
        if (trimmed.Equals("none", StringComparison.OrdinalIgnoreCase) || trimmed.Length == 0) return None;
        var values = new Dictionary<DenseTaskDescriptor, double>();
        foreach (var part in trimmed.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0)
                throw new FormatException($"Baseline '{part}' is not of the form task=value (e.g. semseg=67.21).");
            var name = part[..eq].Trim();
            var task = known.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.Ordinal))
                ?? (DenseTasks.TryParse(name, out var pascal) ? known.FirstOrDefault(t => t.Equals(pascal.ToDescriptor())) : null)
                ?? throw new FormatException($"Baseline '{part}': unknown task '{name}'. Known tasks: {string.Join(", ", known.Select(t => t.Name))}.");
            if (!double.TryParse(part[(eq + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value <= 0)
                throw new FormatException($"Baseline '{part}': the value must be a positive number (mIoU or F in percent, normals in degrees, depth RMSE in the labels' unit).");
            if (!values.TryAdd(task, value))
                throw new FormatException($"Baseline of {task.Name} is given twice.");
        }
        return new SingleTaskBaselines(values);
    }

    /// <summary>The baselines as <c>task=value</c> pairs, in the form <see cref="Parse(string, IEnumerable{DenseTaskDescriptor})"/> reads.</summary>
    /// <returns>The text, empty for <see cref="None"/>.</returns>
    public override string ToString() =>
        string.Join(",", Tasks.Select(t => $"{t.Name}={_values[t].ToString("R", CultureInfo.InvariantCulture)}"));
}
