using System.Globalization;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// The single-task reference values M_t^ST that Δm compares against, one per task, in the paper's units:
/// mIoU in percent (×100) for semantic segmentation, human parts and saliency; mean angular error in degrees for normals.
/// </summary>
/// <remarks>Baselines are data: use <see cref="Paper"/>, or your own single-task runs through the constructor or <see cref="Parse"/>.</remarks>
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

    /// <summary>The tasks that have a baseline, in the reference's task order.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => DenseTaskDescriptor.Pascal.Where(_values.ContainsKey).ToArray();

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
    public static SingleTaskBaselines Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        if (trimmed.Equals("paper", StringComparison.OrdinalIgnoreCase)) return Paper;
        if (trimmed.Equals("none", StringComparison.OrdinalIgnoreCase) || trimmed.Length == 0) return None;
        var values = new Dictionary<DenseTaskDescriptor, double>();
        foreach (var part in trimmed.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0)
                throw new FormatException($"Baseline '{part}' is not of the form task=value (e.g. semseg=67.21).");
            var name = part[..eq].Trim();
            if (!DenseTasks.TryParse(name, out var task))
                throw new FormatException($"Baseline '{part}': unknown task '{name}'. Known tasks: semseg, human_parts, sal, normals.");
            if (!double.TryParse(part[(eq + 1)..].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value <= 0)
                throw new FormatException($"Baseline '{part}': the value must be a positive number (mIoU in percent, normals in degrees).");
            if (!values.TryAdd(task, value))
                throw new FormatException($"Baseline of {task.ReferenceName()} is given twice.");
        }
        return new SingleTaskBaselines(values);
    }

    /// <summary>The baselines as <c>task=value</c> pairs, in the form <see cref="Parse"/> reads.</summary>
    /// <returns>The text, empty for <see cref="None"/>.</returns>
    public override string ToString() =>
        string.Join(",", Tasks.Select(t => $"{t.Name}={_values[t].ToString("R", CultureInfo.InvariantCulture)}"));
}
