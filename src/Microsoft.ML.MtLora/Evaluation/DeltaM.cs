namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Δm, the average relative gain of a multi-task model over single-task baselines (MTLoRA paper, Equation 3):
/// Δm = (1/T) Σ_t s_t (M_t − M_t^ST) / M_t^ST × 100 %, with s_t = +1 where higher is better (the mIoUs) and
/// s_t = −1 where lower is better (the mean angular error of normals).
/// </summary>
public static class DeltaM
{
    /// <summary>The sign s_t of a task in Δm: +1 for the mIoU tasks, −1 for surface normals (lower error is better).</summary>
    /// <param name="task">The task.</param>
    /// <returns>+1 or −1.</returns>
    public static int Sign(DenseTaskDescriptor task) => (task ?? throw new ArgumentNullException(nameof(task))).HigherIsBetter ? 1 : -1;

    /// <summary>The relative gain of one task, s_t (M_t − M_t^ST) / M_t^ST, in percent.</summary>
    /// <param name="task">The task (gives the sign).</param>
    /// <param name="value">The multi-task model's metric M_t, in the baseline's units.</param>
    /// <param name="baseline">The single-task metric M_t^ST (positive).</param>
    /// <returns>The gain in percent; positive means better than the baseline.</returns>
    public static double RelativeGain(DenseTaskDescriptor task, double value, double baseline)
    {
        if (!double.IsFinite(baseline) || baseline <= 0)
            throw new ArgumentOutOfRangeException(nameof(baseline), baseline, $"The baseline of {task.Name} must be a positive number.");
        return Sign(task) * (value - baseline) / baseline * 100.0;
    }

    /// <summary>
    /// Δm over the tasks that have both a metric and a baseline.
    /// </summary>
    /// <param name="metrics">Each task's metric in the paper's units (mIoU ×100; normals mean angle in degrees).</param>
    /// <param name="baselines">The single-task baselines.</param>
    /// <returns>Δm in percent, or null when no task has both a metric and a baseline.</returns>
    /// <example>The paper's MTLoRA r=64 row 67.90 / 59.84 / 65.40 / 16.60 against <see cref="SingleTaskBaselines.Paper"/> gives +2.54 %.</example>
    public static double? Compute(IEnumerable<KeyValuePair<DenseTask, double>> metrics, SingleTaskBaselines baselines) =>
        Compute((metrics ?? throw new ArgumentNullException(nameof(metrics))).Select(kv => KeyValuePair.Create(kv.Key.ToDescriptor(), kv.Value)), baselines);

    /// <summary>
    /// Δm over the tasks that have both a metric and a baseline, for any tasks (the sign of each from
    /// <see cref="DenseTaskDescriptor.HigherIsBetter"/>).
    /// </summary>
    /// <param name="metrics">Each task's metric in the units of its baseline.</param>
    /// <param name="baselines">The single-task baselines.</param>
    /// <returns>Δm in percent, or null when no task has both a metric and a baseline.</returns>
    public static double? Compute(IEnumerable<KeyValuePair<DenseTaskDescriptor, double>> metrics, SingleTaskBaselines baselines)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(baselines);
        double sum = 0;
        int count = 0;
        var seen = new HashSet<DenseTaskDescriptor>();
        foreach (var (task, value) in metrics)
        {
            if (!seen.Add(task)) throw new ArgumentException($"Task {task.Name} appears twice.", nameof(metrics));
            if (!baselines.TryGetValue(task, out double baseline)) continue;
            sum += RelativeGain(task, value, baseline);
            count++;
        }
        return count == 0 ? null : sum / count;
    }
}
