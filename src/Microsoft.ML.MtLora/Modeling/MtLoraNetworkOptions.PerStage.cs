namespace Microsoft.ML.MtLora.Modeling;

// The reference's per-stage and per-task adapter lists (config.py::update_config: MTLORA.R, R_PER_TASK, SHARED_SCALE,
// SCALE_PER_TASK, DROPOUT; docs/mtlora-reference.md §2.6). The single values (SharedRank, TaskRank, LoraScale, LoraDropout)
// are the shorthand: a list or per-task entry, when set, wins over them.
public sealed partial class MtLoraNetworkOptions
{
    /// <summary>
    /// Shared LoRA rank per stage (reference <c>MTLORA.R</c> / <c>R_PER_TASK['shared']</c>), 4 entries; the rank of every shared
    /// adapter of stage i, the patch-merging reduction after it included (MTLoRA+). Default null: <see cref="SharedRank"/> in every stage.
    /// </summary>
    public IReadOnlyList<int>? SharedRankPerStage { get; set; }

    /// <summary>Task LoRA rank per stage, the same for every task, 4 entries. Default null: <see cref="TaskRank"/> in every stage.</summary>
    public IReadOnlyList<int>? TaskRankPerStage { get; set; }

    /// <summary>
    /// Task LoRA rank per task and stage (reference <c>MTLORA.R_PER_TASK[task]</c>), 4 entries per task. A task without an entry
    /// takes <see cref="TaskRankPerStage"/>, else <see cref="TaskRank"/>. Keyed by <see cref="DenseTaskDescriptor.Name"/>. Default null.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<int>>? TaskRankPerTask { get; set; }

    /// <summary>
    /// Shared LoRA scale per stage (reference <c>MTLORA.SHARED_SCALE</c>), 4 entries; also the task scale of a task without an
    /// entry in <see cref="TaskScalePerTask"/>, as the reference copies <c>SHARED_SCALE</c> into an empty <c>SCALE_PER_TASK</c>.
    /// Default null: <see cref="LoraScale"/> in every stage.
    /// </summary>
    public IReadOnlyList<double>? LoraScalePerStage { get; set; }

    /// <summary>Task LoRA scale per task and stage (reference <c>MTLORA.SCALE_PER_TASK[task]</c>), 4 entries per task, keyed by <see cref="DenseTaskDescriptor.Name"/>. Default null.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<double>>? TaskScalePerTask { get; set; }

    /// <summary>LoRA dropout per stage (reference <c>MTLORA.DROPOUT</c>), 4 entries. Default null: <see cref="LoraDropout"/> in every stage.</summary>
    public IReadOnlyList<double>? LoraDropoutPerStage { get; set; }

    /// <summary>The shared LoRA rank of a stage's adapters.</summary>
    /// <param name="stage">Stage index, 0 to 3.</param>
    public int SharedRankAt(int stage) => SharedRankPerStage is { } l ? l[stage] : SharedRank;

    /// <summary>A task's LoRA rank in a stage's last block.</summary>
    /// <param name="stage">Stage index, 0 to 3.</param>
    /// <param name="task">The task.</param>
    public int TaskRankAt(int stage, DenseTaskDescriptor task) =>
        TaskRankPerTask is not null && TaskRankPerTask.TryGetValue(task.Name, out var l) ? l[stage]
        : TaskRankPerStage is { } s ? s[stage] : TaskRank;

    /// <summary>The shared LoRA scale of a stage's adapters.</summary>
    /// <param name="stage">Stage index, 0 to 3.</param>
    public double SharedScaleAt(int stage) => LoraScalePerStage is { } l ? l[stage] : LoraScale;

    /// <summary>A task's LoRA scale in a stage's last block (the shared scale unless <see cref="TaskScalePerTask"/> names the task).</summary>
    /// <param name="stage">Stage index, 0 to 3.</param>
    /// <param name="task">The task.</param>
    public double TaskScaleAt(int stage, DenseTaskDescriptor task) =>
        TaskScalePerTask is not null && TaskScalePerTask.TryGetValue(task.Name, out var l) ? l[stage] : SharedScaleAt(stage);

    /// <summary>The LoRA dropout of a stage's adapters.</summary>
    /// <param name="stage">Stage index, 0 to 3.</param>
    public double LoraDropoutAt(int stage) => LoraDropoutPerStage is { } l ? l[stage] : LoraDropout;

    private void CopyPerStageTo(MtLoraNetworkOptions copy)
    {
        copy.SharedRankPerStage = SharedRankPerStage?.ToArray();
        copy.TaskRankPerStage = TaskRankPerStage?.ToArray();
        copy.TaskRankPerTask = TaskRankPerTask?.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<int>)kv.Value.ToArray());
        copy.LoraScalePerStage = LoraScalePerStage?.ToArray();
        copy.TaskScalePerTask = TaskScalePerTask?.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<double>)kv.Value.ToArray());
        copy.LoraDropoutPerStage = LoraDropoutPerStage?.ToArray();
    }

    /// <summary>Checks the lists' lengths and values, then that every resolved rank fits the layers it adapts.</summary>
    private void ValidatePerStage()
    {
        StageList(SharedRankPerStage, "shared_rank", v => v >= 0, "a rank of 0 or more");
        StageList(TaskRankPerStage, "task_rank", v => v >= 0, "a rank of 0 or more");
        StageList(LoraScalePerStage, "lora_scale", v => double.IsFinite(v), "a finite number");
        StageList(LoraDropoutPerStage, "lora_dropout", v => v >= 0 && v < 1, "a number in [0, 1)");
        if (TaskRankPerTask is not null)
            foreach (var (task, list) in TaskRankPerTask)
                StageList(list, $"task_rank.{task}", v => v >= 0, "a rank of 0 or more");
        if (TaskScalePerTask is not null)
            foreach (var (task, list) in TaskScalePerTask)
                StageList(list, $"lora_scale.{task}", v => double.IsFinite(v), "a finite number");

        long? sharedWidth = NarrowestLoraWidth(taskSitesOnly: false), taskWidth = NarrowestLoraWidth(taskSitesOnly: true);
        for (int i = 0; i < StageCount; i++)
        {
            // Stage i's layers are 2^i times as wide as stage 0's.
            if (UsesLora)
            {
                string key = SharedRankPerStage is null ? "shared_rank" : $"shared_rank[{i}]";
                Positive(SharedRankAt(i), key);
                RankFits(SharedRankAt(i), key, sharedWidth << i, i);
            }
            if (UsesTaskLora)
            {
                foreach (var t in Tasks)
                {
                    string key = TaskRankPerTask?.ContainsKey(t.Name) == true ? $"task_rank.{t.Name}[{i}]"
                        : TaskRankPerStage is null ? "task_rank" : $"task_rank[{i}]";
                    Positive(TaskRankAt(i, t), key);
                    RankFits(TaskRankAt(i, t), key, taskWidth << i, i);
                }
            }
        }
    }

    private static void StageList<T>(IReadOnlyList<T>? values, string key, Func<T, bool> ok, string expected)
    {
        if (values is null) return;
        if (values.Count != StageCount)
            throw new ArgumentException($"'{key}' must be one value or a list of {StageCount}, one per stage; got {values.Count} value(s).");
        for (int i = 0; i < StageCount; i++)
            if (!ok(values[i])) throw new ArgumentException($"'{key}'[{i}] must be {expected}, got {values[i]}.");
    }
}
