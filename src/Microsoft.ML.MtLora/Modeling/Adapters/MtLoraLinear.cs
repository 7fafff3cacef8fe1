using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using Microsoft.ML.MtLora.Modeling.Swin;

namespace Microsoft.ML.MtLora.Modeling.Adapters;

/// <summary>
/// The MTLoRA linear layer (reference <c>models/lora.py::MTLoRALinear</c>, mode <c>matrix</c>): a frozen base linear plus a
/// shared (task-agnostic) low-rank delta and optional per-task low-rank deltas. This type owns the adapter maths only;
/// where adapters sit and what is frozen is decided by the Swin blocks and <see cref="MultiTaskSwin.ApplyTrainablePolicy"/>.
/// </summary>
/// <remarks>
/// <para>Forward, with <c>xd = Dropout(x)</c> drawn once per call (reference §2.4):</para>
/// <para>shared: <c>y = W·x + b + s·B_s·A_s·xd</c>;
/// task t: <c>y_t = W·x + b + s_t·B_t·A_t·u_t</c> with <c>u_t = x_tasks[t]</c> when task inputs are given (no dropout), else <c>xd</c>,
/// and <c>s_t</c> the task's own scale (<see cref="TaskAdapter.Scale"/>; the shared scale <c>s</c> unless set otherwise).
/// The task output does not contain the shared delta, and the frozen W always sees the shared input.</para>
/// <para>State-dict names: <c>linear.weight</c>, <c>linear.bias</c>, <c>lora_shared_A</c> [r, in], <c>lora_shared_B</c> [out, r],
/// <c>lora_tasks_A.&lt;task&gt;</c> [r_t, in], <c>lora_tasks_B.&lt;task&gt;</c> [out, r_t].</para>
/// <para>Merging (<see cref="Merge"/>) folds <c>s·B_s·A_s</c> into <c>linear.weight</c>, keeping an exact copy of the original
/// weight for <see cref="Unmerge"/>. While merged, the shared output is the merged linear alone, and each task output is
/// computed as <c>merged(x) − s·B_s·A_s·x + s·B_t·A_t·u_t</c>: the shared delta is subtracted through the two rank-r factors
/// (cheap) instead of evaluating the full original weight a second time. Merged outputs equal unmerged ones within float32
/// rounding. Merging requires evaluation mode (no dropout), since merged weights cannot express a dropped input.</para>
/// </remarks>
public sealed class MtLoraLinear : nn.Module
{
    [ComponentName(Name = "linear")]
    private readonly Linear _linear;
    [ComponentName(Name = "lora_shared_A")]
    private readonly Parameter? _sharedA;
    [ComponentName(Name = "lora_shared_B")]
    private readonly Parameter? _sharedB;
    [ComponentName(Name = "lora_tasks_A")]
    private readonly ParameterDict? _tasksA;
    [ComponentName(Name = "lora_tasks_B")]
    private readonly ParameterDict? _tasksB;
    private readonly string[] _tasks;
    private readonly TaskAdapter[] _adapters;
    // Kept outside a Tensor-typed field so that TorchSharp's reflection never registers it as a buffer.
    private readonly MergeState _merge = new();
    // The LoRA multiplier as one long-lived Scalar (no implicit Scalar temporaries: see TorchScalars); disposed with the layer.
    private readonly Scalar _scale;

    /// <summary>Creates the layer with the reference initialisation: trunc-normal(0.02) base weight, zero bias, Kaiming-uniform (a=√5) A, zero B.</summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="hasBias">Whether the base linear has a bias.</param>
    /// <param name="sharedRank">Rank of the shared LoRA (0: none).</param>
    /// <param name="taskRank">Rank of each task LoRA (ignored without tasks).</param>
    /// <param name="tasks">Reference names of the tasks that get their own LoRA, or null/empty for a shared-only layer.</param>
    /// <param name="scale">Multiplier of every LoRA delta (shared and task; the reference copies the shared scale to the tasks).</param>
    /// <param name="dropout">Dropout probability on the shared LoRA input (training mode only).</param>
    /// <param name="device">Where to allocate the parameters (default CPU).</param>
    public MtLoraLinear(int inFeatures, int outFeatures, bool hasBias, int sharedRank, int taskRank,
        IReadOnlyList<string>? tasks, double scale, double dropout, Device? device = null)
        : this(inFeatures, outFeatures, hasBias, sharedRank, scale, tasks?.Select(t => new TaskAdapter(t, taskRank, scale)).ToArray(), dropout, device)
    {
    }

    /// <summary>
    /// Creates the layer with a rank and a scale per task (reference <c>MTLoRALinear</c> with <c>r = {'shared': r, task: r_t}</c>
    /// and <c>lora_task_scale = {task: s_t}</c>), with the reference initialisation: trunc-normal(0.02) base weight, zero bias,
    /// Kaiming-uniform (a=√5) A, zero B.
    /// </summary>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="hasBias">Whether the base linear has a bias.</param>
    /// <param name="sharedRank">Rank of the shared LoRA (0: none).</param>
    /// <param name="sharedScale">Multiplier of the shared LoRA delta.</param>
    /// <param name="tasks">The tasks that get their own LoRA, in order, or null/empty for a shared-only layer; a task of rank 0 gets none.</param>
    /// <param name="dropout">Dropout probability on the shared LoRA input (training mode only).</param>
    /// <param name="device">Where to allocate the parameters (default CPU).</param>
    public MtLoraLinear(int inFeatures, int outFeatures, bool hasBias, int sharedRank, double sharedScale,
        IReadOnlyList<TaskAdapter>? tasks, double dropout, Device? device = null) : base(nameof(MtLoraLinear))
    {
        if (inFeatures <= 0 || outFeatures <= 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), "features must be positive.");
        if (sharedRank < 0) throw new ArgumentOutOfRangeException(nameof(sharedRank), sharedRank, "rank must not be negative.");
        if (dropout < 0 || dropout >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "dropout must be in [0, 1).");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        SharedRank = sharedRank;
        if (!double.IsFinite(sharedScale)) throw new ArgumentOutOfRangeException(nameof(sharedScale), sharedScale, "scale must be a finite number.");
        Scale = sharedScale;
        _scale = sharedScale.ToScalar();
        Dropout = dropout;
        _adapters = tasks?.Where(t => t.Rank > 0).ToArray() ?? [];
        foreach (var t in _adapters)
        {
            if (!double.IsFinite(t.Scale)) throw new ArgumentOutOfRangeException(nameof(tasks), t.Scale, $"task '{t.Name}': scale must be a finite number.");
        }
        _tasks = _adapters.Select(t => t.Name).ToArray();
        TaskRank = _adapters.Length > 0 ? _adapters.Max(t => t.Rank) : 0;

        _linear = nn.Linear(inFeatures, outFeatures, hasBias, device: device);
        SwinInit.TruncNormalLinear(_linear);
        register_module("linear", _linear);
        using (no_grad())
        {
            if (sharedRank > 0)
            {
                _sharedA = nn.Parameter(KaimingA(sharedRank, inFeatures, device));
                _sharedB = nn.Parameter(zeros(new long[] { outFeatures, sharedRank }, device: device));
                register_parameter("lora_shared_A", _sharedA);
                register_parameter("lora_shared_B", _sharedB);
            }
            if (_tasks.Length > 0)
            {
                _tasksA = new ParameterDict();
                _tasksB = new ParameterDict();
                foreach (var t in _adapters)
                {
                    _tasksA.Add((t.Name, nn.Parameter(KaimingA(t.Rank, inFeatures, device))));
                    _tasksB.Add((t.Name, nn.Parameter(zeros(new long[] { outFeatures, t.Rank }, device: device))));
                }
                register_module("lora_tasks_A", _tasksA);
                register_module("lora_tasks_B", _tasksB);
            }
        }
    }

    /// <summary>Input features.</summary>
    public int InFeatures { get; }

    /// <summary>Output features.</summary>
    public int OutFeatures { get; }

    /// <summary>Rank of the shared LoRA (0 when there is none).</summary>
    public int SharedRank { get; }

    /// <summary>Rank of the task LoRAs (0 when the layer has no tasks; the largest when they differ, see <see cref="TaskAdapters"/>).</summary>
    public int TaskRank { get; }

    /// <summary>The shared LoRA multiplier (and the task multiplier of the single-scale constructor).</summary>
    public double Scale { get; }

    /// <summary>The task LoRAs: name, rank and multiplier of each, in order (empty for a shared-only layer).</summary>
    public IReadOnlyList<TaskAdapter> TaskAdapters => _adapters;

    /// <summary>Dropout probability on the shared LoRA input.</summary>
    public double Dropout { get; }

    /// <summary>Reference names of the tasks with their own LoRA (empty for a shared-only layer).</summary>
    public IReadOnlyList<string> Tasks => _tasks;

    /// <summary>Whether the shared delta is folded into the base weight.</summary>
    public bool IsMerged => _merge.UnmergedWeight is not null;

    /// <summary>The frozen base linear.</summary>
    internal Linear Linear => _linear;

    /// <summary>Runs the layer.</summary>
    /// <param name="x">Shared input (…, in).</param>
    /// <param name="xTasks">Optional task-specific inputs, same shape as <paramref name="x"/>, that feed only the task branches.</param>
    /// <returns>The shared output (…, out) and, when the layer has tasks, one output per task (else null).</returns>
    /// <remarks>
    /// Computed on the flattened tokens (N, in): the frozen path is one fused <c>addmm</c> (bias + x·Wᵀ); each LoRA delta is
    /// two thin matmuls, x·Aᵀ (N, r), then an <c>addmm</c> that adds s·(x·Aᵀ)·Bᵀ to the frozen output inside the GEMM, so B·A is
    /// never materialised and no separate scale or add pass runs. The task outputs are taken from the frozen output first;
    /// the shared delta is then added in place (the frozen output is saved by no backward formula).
    /// </remarks>
    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x, IReadOnlyDictionary<string, Tensor>? xTasks = null)
    {
        if (IsMerged && training)
            throw new InvalidOperationException("MtLoraLinear: the LoRA delta is merged into the weights; call Unmerge before training.");
        if (_sharedA is null && _tasks.Length == 0)
            return (_linear.forward(x), null);                            // (…, out)

        var shape = x.shape;
        shape[^1] = OutFeatures;
        var x2 = x.reshape(-1, InFeatures);                               // (N, in)
        var y = _linear.forward(x2);                                      // (N, out): merged or W·x + b, one addmm
        string? outer = ProfileRegions.Current;
        if (outer is not null) x2 = ProfileRegions.Enter("lora", x2);
        var xd = Dropout > 0 && training ? LoraDropout(x2) : x2;          // (N, in), one draw for the shared and task branches
        float s = (float)Scale;

        Dictionary<string, Tensor>? outs = null;
        if (_tasks.Length > 0)
        {
            // The task outputs start from the frozen output without the shared delta (matrix mode); a merged weight holds it,
            // so it is taken out again through the rank-r factors.
            var y0 = IsMerged && _sharedA is not null ? y.addmm(nn.functional.linear(x2, _sharedA), _sharedB!.t(), 1f, -s) : y;
            outs = new Dictionary<string, Tensor>(_tasks.Length);
            foreach (var (t, _, taskScale) in _adapters)
            {
                var u = xTasks is not null && xTasks.TryGetValue(t, out var xt) ? xt.reshape(-1, InFeatures) : xd;
                outs[t] = y0.addmm(nn.functional.linear(u, (Parameter)_tasksA![t]), ((Parameter)_tasksB![t]).t(), 1f, (float)taskScale).view(shape); // (…, out)
            }
        }
        if (_sharedA is not null && !IsMerged)
            y = y.addmm_(nn.functional.linear(xd, _sharedA), _sharedB!.t(), 1f, s);   // (N, out) += s·(xd·Aᵀ)·Bᵀ
        var shared = y.view(shape);                                       // (…, out)
        return (outer is null ? shared : ProfileRegions.Enter(outer, shared), outs);
    }

    /// <summary>
    /// Inverted dropout on the LoRA input: each element kept with probability 1 − p and scaled by 1/(1 − p), as
    /// <c>nn.Dropout</c>. On the CPU the mask comes from <see cref="DropoutMask"/> (libtorch's CPU generator draws one element
    /// at a time); on other devices the fused <c>dropout</c> kernel runs.
    /// </summary>
    private Tensor LoraDropout(Tensor x)
    {
        if (x.device_type != DeviceType.CPU) return nn.functional.dropout(x, Dropout, true);
        return x.mul(DropoutMask.Cpu(x.shape, Dropout, x.dtype));       // (N, in)
    }

    /// <summary>Folds the shared delta <c>s·B_s·A_s</c> into the base weight (evaluation mode only). No-op when already merged or without shared LoRA.</summary>
    /// <exception cref="InvalidOperationException">The layer is in training mode.</exception>
    public void Merge()
    {
        if (training) throw new InvalidOperationException("MtLoraLinear: merge LoRA only in evaluation mode (call eval() first).");
        if (IsMerged || _sharedA is null) return;
        using var _ = no_grad();
        var w = _linear.weight!;
        _merge.UnmergedWeight = w.detach().clone();
        using var delta = _sharedB!.matmul(_sharedA).mul(_scale);          // (out, in)
        w.add_(delta, TorchScalars.One);
    }

    /// <summary>Restores the exact original base weight saved by <see cref="Merge"/>. No-op when not merged.</summary>
    public void Unmerge()
    {
        if (_merge.UnmergedWeight is null) return;
        using (no_grad()) _linear.weight!.copy_(_merge.UnmergedWeight);
        _merge.UnmergedWeight.Dispose();
        _merge.UnmergedWeight = null;
    }

    private static Tensor KaimingA(int rank, int inFeatures, Device? device)
    {
        // kaiming_uniform_(a=√5) on [r, in]: U(-1/√in, 1/√in), as nn.Linear's default.
        var a = empty(new long[] { rank, inFeatures }, device: device);
        if (a.device_type != DeviceType.META) nn.init.kaiming_uniform_(a, Math.Sqrt(5));
        return a;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _merge.UnmergedWeight?.Dispose();
            _merge.UnmergedWeight = null;
            _scale.Dispose();
        }
        base.Dispose(disposing);
    }

    private sealed class MergeState
    {
        public Tensor? UnmergedWeight { get; set; }
    }
}
