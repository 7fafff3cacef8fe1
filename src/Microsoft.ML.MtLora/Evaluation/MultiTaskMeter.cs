using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// One meter per task, chosen by its kind (<see cref="SegmentationMeter"/> for a segmentation, with the task's own class
/// count; <see cref="SaliencyMeter"/> for <c>sal</c> and the binary maps scored by mIoU; <see cref="EdgeMeter"/> for the
/// binary maps scored by <c>edge_f@0.5</c>, e.g. NYUD's edge; <see cref="NormalsMeter"/> for a surface-normals task, <c>normals</c>
/// or any other name; <see cref="DepthMeter"/> for a depth task; see <see cref="DenseTaskDescriptor.MetricName"/>), fed batch by batch with raw network outputs and targets (the trainer's validation, the CLI) and turned into
/// <see cref="MultiTaskMetrics"/>. Memory stays constant however many batches are added.
/// </summary>
public sealed class MultiTaskMeter
{
    private readonly SegmentationMeter? _semseg;
    private readonly SegmentationMeter? _humanParts;
    private readonly SaliencyMeter? _saliency;
    private readonly NormalsMeter? _normals;
    private readonly Dictionary<DenseTaskDescriptor, SegmentationMeter> _otherSegmentations = [];
    private readonly Dictionary<DenseTaskDescriptor, SaliencyMeter> _otherSaliency = [];
    private readonly Dictionary<DenseTaskDescriptor, EdgeMeter> _edges = [];
    private readonly Dictionary<DenseTaskDescriptor, DepthMeter> _depths = [];
    private readonly Dictionary<DenseTaskDescriptor, NormalsMeter> _otherNormals = [];

    /// <summary>Creates meters for the given tasks (21 semantic classes, 7 human-part classes).</summary>
    /// <param name="tasks">The tasks to evaluate (at least one, no repeats).</param>
    public MultiTaskMeter(IEnumerable<DenseTask> tasks)
        : this((tasks ?? throw new ArgumentNullException(nameof(tasks))).Select(t => t.ToDescriptor()))
    {
    }

    /// <summary>Creates a meter for the tasks: PASCAL-Context's class counts (21 and 7) for its segmentations, each other
    /// segmentation with its own <see cref="DenseTaskDescriptor.OutputChannels"/> classes.</summary>
    /// <param name="tasks">The tasks to evaluate.</param>
    public MultiTaskMeter(IEnumerable<DenseTaskDescriptor> tasks)
        : this(tasks, DenseTaskDescriptor.PascalSemanticSegmentation.OutputChannels, DenseTaskDescriptor.PascalHumanParts.OutputChannels)
    {
    }

    internal MultiTaskMeter(IEnumerable<DenseTaskDescriptor> tasks, int semsegClasses, int humanPartsClasses)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        var list = tasks.ToList();
        if (list.Count == 0) throw new ArgumentException("At least one task is needed.", nameof(tasks));
        if (list.Distinct().Count() != list.Count) throw new ArgumentException("A task is listed twice.", nameof(tasks));
        foreach (var task in list)
        {
            switch (task.Name)
            {
                // NYUD's 40-class semseg shares the name: its own class count, not PASCAL's.
                case "semseg": _semseg = new SegmentationMeter(task.SameDefinition(DenseTaskDescriptor.PascalSemanticSegmentation) ? semsegClasses : task.OutputChannels); break;
                case "human_parts": _humanParts = new SegmentationMeter(humanPartsClasses); break;
                case "sal": _saliency = new SaliencyMeter(); break;
                case "normals": _normals = new NormalsMeter(); break;
                default:
                    switch (task.Kind)
                    {
                        case DenseTaskKind.Segmentation: _otherSegmentations[task] = new SegmentationMeter(task.OutputChannels); break;
                        case DenseTaskKind.BinaryMap when task.MetricName == EdgeMeter.MetricName: _edges[task] = new EdgeMeter(); break;
                        case DenseTaskKind.BinaryMap: _otherSaliency[task] = new SaliencyMeter(); break;
                        case DenseTaskKind.Depth: _depths[task] = new DepthMeter(task.IgnoreValue ?? DenseTaskDescriptor.DefaultIgnoreLabel); break;
                        // Scored exactly as 'normals' (one surface-normals task per model: the batch pipeline reads one, LabelLayout).
                        case DenseTaskKind.SurfaceNormals: _otherNormals[task] = new NormalsMeter(); break;
                        default: throw new ArgumentOutOfRangeException(nameof(tasks), task, $"Task '{task.Name}' has kind {task.Kind}, which no meter scores.");
                    }
                    break;
            }
        }
        // The reference's order (semseg, human_parts, sal, normals, depth, edge), then other tasks by name.
        Tasks = list.Order().ToArray();
    }

    /// <summary>The tasks evaluated, in the reference's order.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>Adds a batch of one task's raw outputs and targets.</summary>
    /// <param name="task">The task.</param>
    /// <param name="output">Raw outputs (B, C, H, W): logits for the class maps and binary maps, unnormalised vectors for
    /// normals, depths for a depth task.</param>
    /// <param name="target">Targets (B, 1, H, W), or (B, 3, H, W) for normals, with 255 (a depth task: its ignore value) = ignore.</param>
    /// <exception cref="ArgumentException">The task is not evaluated by this meter, or the shapes or labels are wrong (the message names the task).</exception>
    public void Update(DenseTaskDescriptor task, Tensor output, Tensor target)
    {
        try
        {
            switch (task.Name)
            {
                case "semseg" when _semseg is not null: _semseg.Update(output, target); break;
                case "human_parts" when _humanParts is not null: _humanParts.Update(output, target); break;
                case "sal" when _saliency is not null: _saliency.Update(output, target); break;
                case "normals" when _normals is not null: _normals.Update(output, target); break;
                case var _ when _otherSegmentations.TryGetValue(task, out var segmentation): segmentation.Update(output, target); break;
                case var _ when _otherSaliency.TryGetValue(task, out var saliency): saliency.Update(output, target); break;
                case var _ when _edges.TryGetValue(task, out var edge): edge.Update(output, target); break;
                case var _ when _depths.TryGetValue(task, out var depth): depth.Update(output, target); break;
                case var _ when _otherNormals.TryGetValue(task, out var normals): normals.Update(output, target); break;
                default: throw new ArgumentException($"This meter does not evaluate task {task.Name}; it evaluates {string.Join(", ", Tasks.Select(t => t.Name))}.", nameof(task));
            }
        }
        catch (ArgumentException e) when (e.ParamName is "logits" or "output" or "target")
        {
            throw new ArgumentException($"Task {task.Name}: {e.Message}", e.ParamName, e);
        }
    }

    /// <summary>Adds a batch of every evaluated task.</summary>
    /// <param name="outputs">Raw outputs by task; must hold every task of <see cref="Tasks"/>.</param>
    /// <param name="targets">Targets by task; must hold every task of <see cref="Tasks"/>.</param>
    public void Update(IReadOnlyDictionary<DenseTaskDescriptor, Tensor> outputs, IReadOnlyDictionary<DenseTaskDescriptor, Tensor> targets)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(targets);
        foreach (var task in Tasks)
        {
            if (!outputs.TryGetValue(task, out var output)) throw new ArgumentException($"No output for task {task.Name}.", nameof(outputs));
            if (!targets.TryGetValue(task, out var target)) throw new ArgumentException($"No target for task {task.Name}.", nameof(targets));
            Update(task, output, target);
        }
    }

    /// <summary>The semantic segmentation meter, for row-by-row updates.</summary>
    internal SegmentationMeter? SemanticSegmentation => _semseg;

    /// <summary>The human parts meter, for row-by-row updates.</summary>
    internal SegmentationMeter? HumanParts => _humanParts;

    /// <summary>The saliency meter, for row-by-row updates.</summary>
    internal SaliencyMeter? Saliency => _saliency;

    /// <summary>The normals meter, for row-by-row updates.</summary>
    internal NormalsMeter? SurfaceNormals => _normals;

    /// <summary>The depth meter of a depth task, for row-by-row updates.</summary>
    internal DepthMeter? Depth(DenseTaskDescriptor task) => _depths.GetValueOrDefault(task);

    /// <summary>The edge meter of a binary map scored by <c>edge_f@0.5</c>, for row-by-row updates.</summary>
    internal EdgeMeter? Edge(DenseTaskDescriptor task) => _edges.GetValueOrDefault(task);

    /// <summary>The meter of a segmentation other than PASCAL's semseg and human_parts, for row-by-row updates.</summary>
    internal SegmentationMeter? OtherSegmentation(DenseTaskDescriptor task) => _otherSegmentations.GetValueOrDefault(task);

    /// <summary>The meter that scores <paramref name="task"/> (a <see cref="SegmentationMeter"/>, <see cref="SaliencyMeter"/>,
    /// <see cref="EdgeMeter"/>, <see cref="DepthMeter"/> or <see cref="NormalsMeter"/>, whatever the normals task's name), for row-by-row updates.</summary>
    internal object RowMeter(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" when _semseg is not null => _semseg,
        "human_parts" when _humanParts is not null => _humanParts,
        "sal" when _saliency is not null => _saliency,
        "normals" when _normals is not null => _normals,
        _ when _otherSegmentations.TryGetValue(task, out var m) => m,
        _ when _otherSaliency.TryGetValue(task, out var m) => m,
        _ when _edges.TryGetValue(task, out var m) => m,
        _ when _depths.TryGetValue(task, out var m) => m,
        _ when _otherNormals.TryGetValue(task, out var m) => m,
        _ => throw new ArgumentException($"This meter does not evaluate task {task.Name}; it evaluates {string.Join(", ", Tasks.Select(t => t.Name))}.", nameof(task)),
    };

    /// <summary>Clears every meter.</summary>
    public void Reset()
    {
        _semseg?.Reset();
        _humanParts?.Reset();
        _saliency?.Reset();
        _normals?.Reset();
        foreach (var m in _otherSegmentations.Values) m.Reset();
        foreach (var m in _otherSaliency.Values) m.Reset();
        foreach (var m in _edges.Values) m.Reset();
        foreach (var m in _depths.Values) m.Reset();
        foreach (var m in _otherNormals.Values) m.Reset();
    }

    /// <summary>The metrics of everything added so far, and Δm against the baselines.</summary>
    /// <param name="baselines">Single-task baselines; null for <see cref="SingleTaskBaselines.Paper"/>, <see cref="SingleTaskBaselines.None"/> for no Δm.</param>
    /// <returns>The metrics.</returns>
    /// <exception cref="InvalidOperationException">A task has received no data.</exception>
    public MultiTaskMetrics GetMetrics(SingleTaskBaselines? baselines = null)
    {
        foreach (var task in Tasks)
        {
            long images = task.Name switch
            {
                "semseg" => _semseg!.ImageCount,
                "human_parts" => _humanParts!.ImageCount,
                "sal" => _saliency!.ImageCount,
                "normals" => _normals!.ImageCount,
                _ when _otherSegmentations.TryGetValue(task, out var m) => m.ImageCount,
                _ when _otherSaliency.TryGetValue(task, out var m) => m.ImageCount,
                _ when _edges.TryGetValue(task, out var m) => m.ImageCount,
                _ when _otherNormals.TryGetValue(task, out var m) => m.ImageCount,
                _ => _depths[task].ImageCount,
            };
            if (images == 0) throw new InvalidOperationException($"Task {task.Name} has received no data to evaluate.");
        }
        if (_normals is { PixelCount: 0 })
            throw new InvalidOperationException("Task normals has no valid pixel to evaluate: every label pixel is 255.");
        foreach (var (task, normals) in _otherNormals)
            if (normals.PixelCount == 0)
                throw new InvalidOperationException($"Task {task.Name} has no valid pixel to evaluate: every label pixel is 255.");
        foreach (var (task, depth) in _depths)
            if (depth.PixelCount == 0)
                throw new InvalidOperationException($"Task {task.Name} has no valid pixel to evaluate: every label pixel is the ignore value.");
        return new MultiTaskMetrics(_semseg?.GetMetrics(), _humanParts?.GetMetrics(), _saliency?.GetMetrics(), _normals?.GetMetrics(),
            baselines ?? SingleTaskBaselines.Paper,
            _otherSegmentations.ToDictionary(kv => kv.Key, kv => kv.Value.GetMetrics()),
            _otherSaliency.ToDictionary(kv => kv.Key, kv => kv.Value.GetMetrics()),
            _edges.ToDictionary(kv => kv.Key, kv => kv.Value.GetMetrics()),
            _depths.ToDictionary(kv => kv.Key, kv => kv.Value.GetMetrics()),
            _otherNormals.ToDictionary(kv => kv.Key, kv => kv.Value.GetMetrics()));
    }
}
