using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// PyTorch's AdamW (decoupled weight decay, no AMSGrad; <c>torch.optim.AdamW</c>, single-tensor path) over the reference's
/// parameter groups, with its parameters, gradients and moments held in flat float32 buffers (per group and element type,
/// at most <see cref="MaxBucketElements"/> each), so that a step is a handful of kernels instead of several per parameter.
/// </summary>
/// <remarks>
/// <para>Per parameter with a gradient, at step t (its own count, as PyTorch keeps one per parameter):
/// <c>p ← p·(1 − lr·wd)</c>; <c>m ← β1·m + (1 − β1)·g</c>; <c>v ← β2·v + (1 − β2)·g²</c>;
/// <c>p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)</c>. A parameter that got no gradient in a step is skipped
/// (neither decayed nor moved), as PyTorch skips a parameter whose <c>grad</c> is None.</para>
/// <para>Storage: at construction each trainable parameter of the network is re-pointed (<c>set_</c>) into a flat buffer of
/// its group and element type, so the update writes the network's weights directly. The network must not be moved or
/// cast afterwards (<c>module.to(...)</c> replaces parameter tensors). For parameters that are not float32 (the bfloat16
/// path) the group also holds float32 master weights: the update runs there and is copied into the network's buffer.</para>
/// <para>Gradients: after each backward pass <see cref="CollectGradients"/> adds the parameters' gradients into a persistent
/// float32 buffer (summing over the micro-batches of an accumulated step) and clears them. <see cref="ClipGradientNorm"/>
/// scales that buffer by <c>min(1, max / (‖g‖ + 1e-6))</c> computed on the device (PyTorch's <c>clip_grad_norm_</c>), so
/// nothing is read back to the host. Scalars are explicit and disposed after each call (see <c>TorchScalars</c>): unlike
/// <c>TorchSharp.Modules.AdamW</c>, no implicit Scalar temporary exists while a kernel runs.</para>
/// </remarks>
internal sealed class FlatAdamW : IDisposable
{
    private readonly List<Bucket> _buckets = [];
    private readonly Scalar _beta1;
    private readonly Scalar _oneMinusBeta1;
    private readonly Scalar _beta2;
    private readonly Scalar _oneMinusBeta2;
    private readonly Scalar _epsilon;
    private readonly double _beta1Value;
    private readonly double _beta2Value;
    private bool _disposed;

    /// <summary>Builds the optimizer and re-points the parameters into its buffers.</summary>
    /// <param name="groups">The parameter groups: parameters by state-dict name and each group's weight decay.</param>
    /// <param name="beta1">β1 (0.9).</param>
    /// <param name="beta2">β2 (0.999).</param>
    /// <param name="epsilon">ε (1e-8).</param>
    /// <param name="initialMasters">float32 starting values by name for parameters that are not float32 (taken before the
    /// network was cast to a lower precision); a missing entry starts from the parameter converted to float32.</param>
    public FlatAdamW(IReadOnlyList<(IReadOnlyList<(string Name, Parameter Parameter)> Parameters, double WeightDecay)> groups,
        double beta1, double beta2, double epsilon, IReadOnlyDictionary<string, Tensor>? initialMasters = null)
    {
        _beta1Value = beta1;
        _beta2Value = beta2;
        _beta1 = beta1.ToScalar();
        _oneMinusBeta1 = (1 - beta1).ToScalar();
        _beta2 = beta2.ToScalar();
        _oneMinusBeta2 = (1 - beta2).ToScalar();
        _epsilon = epsilon.ToScalar();
        using var noGrad = no_grad();
        foreach (var (parameters, weightDecay) in groups)
            foreach (var byType in parameters.GroupBy(p => (p.Parameter.dtype, p.Parameter.device_type, p.Parameter.device_index)))
                foreach (var chunk in Chunk(byType.ToList()))
                    _buckets.Add(new Bucket(chunk, weightDecay, initialMasters));
    }

    /// <summary>
    /// Elements per buffer at most (16 MiB of float32), unless one parameter is larger. Small enough that glibc's malloc
    /// serves the buffers and the step's temporaries from its reused heap (it maps anything over 32 MiB afresh, page by page,
    /// at every allocation); large enough that a step is a few kernels.
    /// </summary>
    internal const long MaxBucketElements = 1L << 22;

    private static IEnumerable<List<(string Name, Parameter Parameter)>> Chunk(List<(string Name, Parameter Parameter)> parameters)
    {
        var chunk = new List<(string Name, Parameter Parameter)>();
        long size = 0;
        foreach (var p in parameters)
        {
            long n = p.Parameter.numel();
            if (chunk.Count > 0 && size + n > MaxBucketElements)
            {
                yield return chunk;
                chunk = [];
                size = 0;
            }
            chunk.Add(p);
            size += n;
        }
        if (chunk.Count > 0) yield return chunk;
    }

    /// <summary>Every optimized parameter in state order (groups in order; within a group by element type, then in the given order).</summary>
    public IEnumerable<OptimizedParameter> Parameters => _buckets.SelectMany(b => b.Slots);

    /// <summary>Clears the network's gradients and the collected ones (PyTorch's <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var b in _buckets) b.ZeroGrad();
    }

    /// <summary>
    /// Adds the parameters' current gradients to the collected float32 gradients and clears them; call after each backward
    /// pass of a step. A parameter with no gradient contributes nothing (and is skipped by the step if it never gets one).
    /// </summary>
    public void CollectGradients()
    {
        using var noGrad = no_grad();
        foreach (var b in _buckets) b.Collect();
    }

    /// <summary>
    /// Scales the collected gradients so that their global L2 norm is at most <paramref name="maxNorm"/> (PyTorch's
    /// <c>clip_grad_norm_</c>: coefficient <c>min(1, max / (norm + 1e-6))</c>), on the device.
    /// </summary>
    /// <returns>The norm before clipping, a scalar tensor on the device (reading it is the caller's choice), or null when
    /// no parameter has a gradient.</returns>
    public Tensor? ClipGradientNorm(double maxNorm)
    {
        using var noGrad = no_grad();
        var withGrad = _buckets.Where(b => b.Gradient is not null).ToList();
        if (withGrad.Count == 0) return null;
        using var scope = NewDisposeScope();
        var norms = withGrad.Select(b => b.Gradient!.norm()).ToList();
        var total = norms.Count == 1 ? norms[0] : stack(norms).norm();
        using var eps = 1e-6.ToScalar();
        using var max = maxNorm.ToScalar();
        var coefficient = total.add(eps, TorchScalars.One).reciprocal_().mul_(max).clamp_max_(TorchScalars.OneF);
        foreach (var b in withGrad) b.Gradient!.mul_(coefficient.to(b.Gradient.device));
        return total.MoveToOuterDisposeScope();
    }

    /// <summary>The collected float32 gradient of a parameter (clipped once <see cref="ClipGradientNorm"/> ran), as a new view
    /// the caller disposes; null when the parameter got none.</summary>
    internal Tensor? GradientOf(string name)
    {
        foreach (var b in _buckets)
            foreach (var slot in b.Slots)
                if (slot.Name == name)
                    return b.Gradient is null || !slot.HasGradient ? null : b.Gradient.narrow(0, slot.Offset, slot.Count).view(slot.Parameter.shape);
        throw new KeyNotFoundException($"'{name}' is not optimized.");
    }

    /// <summary>One AdamW step at learning rate <paramref name="learningRate"/> over the collected gradients.</summary>
    public void Step(double learningRate)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = no_grad();
        foreach (var b in _buckets) b.Step(learningRate, this);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var b in _buckets) b.Dispose();
        _beta1.Dispose();
        _oneMinusBeta1.Dispose();
        _beta2.Dispose();
        _oneMinusBeta2.Dispose();
        _epsilon.Dispose();
    }

    /// <summary>
    /// One group's parameters of one element type and device: the network's flat buffer (its parameters are views of it),
    /// float32 masters (the same buffer for float32), moments and collected gradients.
    /// </summary>
    private sealed class Bucket : IDisposable
    {
        private readonly Tensor _model;
        private readonly Tensor _master;
        private readonly Tensor _expAvg;
        private readonly Tensor _expAvgSq;
        private readonly double _weightDecay;

        public Bucket(IReadOnlyList<(string Name, Parameter Parameter)> parameters, double weightDecay, IReadOnlyDictionary<string, Tensor>? initialMasters)
        {
            _weightDecay = weightDecay;
            var first = parameters[0].Parameter;
            long total = parameters.Sum(p => p.Parameter.numel());
            // Long-lived: never owned by a dispose scope the caller may have open.
            _model = empty([total], first.dtype, first.device).DetachFromDisposeScope();
            _master = first.dtype == ScalarType.Float32 ? _model : empty([total], ScalarType.Float32, first.device).DetachFromDisposeScope();
            _expAvg = zeros([total], ScalarType.Float32, first.device).DetachFromDisposeScope();
            _expAvgSq = zeros([total], ScalarType.Float32, first.device).DetachFromDisposeScope();
            long offset = 0;
            foreach (var (name, p) in parameters)
            {
                long n = p.numel();
                var shape = p.shape;
                using (var slot = _model.narrow(0, offset, n)) slot.copy_(p.detach().reshape(-1));
                if (!ReferenceEquals(_master, _model))
                {
                    var init = initialMasters is not null && initialMasters.TryGetValue(name, out var m) ? m : p;
                    using var masterSlot = _master.narrow(0, offset, n);
                    masterSlot.copy_(init.detach().reshape(-1));
                }
                using (var view = _model.narrow(0, offset, n).view(shape)) p.set_(view);   // the parameter now lives in the buffer
                Slots.Add(new OptimizedParameter(name, p, Slice(_master, offset, shape), Slice(_expAvg, offset, shape), Slice(_expAvgSq, offset, shape), offset, n));
                offset += n;
            }
        }

        public List<OptimizedParameter> Slots { get; } = [];

        private static Tensor Slice(Tensor flat, long offset, long[] shape)
        {
            using var part = flat.narrow(0, offset, shape.Aggregate(1L, (a, b) => a * b));
            return part.view(shape).DetachFromDisposeScope();
        }

        /// <summary>The gradients collected since the last <see cref="ZeroGrad"/> (float32, flat), or null.</summary>
        public Tensor? Gradient => _collected ? _gradient : null;

        // The collected gradients' buffer, allocated once: reallocating it every step would, on the CPU, map fresh pages.
        private Tensor? _gradient;
        private bool _collected;

        public void ZeroGrad()
        {
            foreach (var s in Slots)
            {
                s.Parameter.grad = null;
                s.HasGradient = false;
            }
            _collected = false;
        }

        public void Collect()
        {
            if (Slots.All(s => s.Parameter.grad is null)) return;
            using var scope = NewDisposeScope();
            _gradient ??= empty([_master.numel()], ScalarType.Float32, _master.device).DetachFromDisposeScope();
            if (_model.device_type == DeviceType.CPU)
            {
                // One copy (or add) per parameter: cheap on the CPU, and no new buffer.
                foreach (var s in Slots)
                {
                    using var slot = _gradient.narrow(0, s.Offset, s.Count);
                    var g = s.Parameter.grad;
                    if (g is null) { if (!_collected) slot.zero_(); continue; }
                    s.HasGradient = true;
                    if (_collected) slot.add_(g.reshape(-1), TorchScalars.One);
                    else slot.copy_(g.reshape(-1));
                }
            }
            else
            {
                // On a GPU one concatenation instead of one kernel per parameter.
                var parts = Slots.Select(s =>
                {
                    var g = s.Parameter.grad;
                    if (g is null) return zeros([s.Count], _model.dtype, _model.device);
                    s.HasGradient = true;
                    return g.reshape(-1);
                }).ToList();
                var flat = cat(parts, 0);                                                     // (total,)
                if (_collected) _gradient.add_(flat, TorchScalars.One);
                else _gradient.copy_(flat);
            }
            _collected = true;
            foreach (var s in Slots) s.Parameter.grad = null;
        }

        public void Step(double lr, FlatAdamW o)
        {
            if (Gradient is null) return;
            // Runs of neighbouring parameters that have a gradient and the same step count share one set of kernels.
            int i = 0;
            while (i < Slots.Count)
            {
                if (!Slots[i].HasGradient) { i++; continue; }
                int j = i + 1;
                while (j < Slots.Count && Slots[j].HasGradient && Slots[j].Step == Slots[i].Step) j++;
                long start = Slots[i].Offset, length = Slots[j - 1].Offset + Slots[j - 1].Count - start;
                long step = Slots[i].Step + 1;
                for (int k = i; k < j; k++) Slots[k].Step = step;
                Update(start, length, step, lr, o);
                i = j;
            }
        }

        private void Update(long start, long length, long step, double lr, FlatAdamW o)
        {
            using var scope = NewDisposeScope();
            var p = _master.narrow(0, start, length);
            var g = Gradient!.narrow(0, start, length);
            var m = _expAvg.narrow(0, start, length);
            var v = _expAvgSq.narrow(0, start, length);
            if (_weightDecay != 0)
            {
                using var decay = (1 - lr * _weightDecay).ToScalar();
                p.mul_(decay);
            }
            m.mul_(o._beta1).add_(g, o._oneMinusBeta1);
            v.mul_(o._beta2).addcmul_(g, g, o._oneMinusBeta2);
            double biasCorrection1 = 1 - Math.Pow(o._beta1Value, step);
            double biasCorrection2 = 1 - Math.Pow(o._beta2Value, step);
            using var sqrtBiasCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            using var stepSize = (-lr / biasCorrection1).ToScalar();
            var denominator = v.sqrt().div_(sqrtBiasCorrection2).add_(o._epsilon, TorchScalars.One);
            p.addcdiv_(m, denominator, stepSize);
            if (!ReferenceEquals(_master, _model)) _model.narrow(0, start, length).copy_(p);
        }

        public void Dispose()
        {
            _gradient?.Dispose();
            foreach (var s in Slots)
            {
                s.Master.Dispose();
                s.ExpAvg.Dispose();
                s.ExpAvgSq.Dispose();
            }
            _expAvg.Dispose();
            _expAvgSq.Dispose();
            if (!ReferenceEquals(_master, _model)) _master.Dispose();
            _model.Dispose();
        }
    }
}

/// <summary>One parameter as <see cref="FlatAdamW"/> holds it.</summary>
/// <param name="Name">The state-dict name.</param>
/// <param name="Parameter">The network's parameter (a view of the optimizer's buffer).</param>
/// <param name="Master">Its float32 master weight (the parameter itself when it is float32).</param>
/// <param name="ExpAvg">The first moment.</param>
/// <param name="ExpAvgSq">The second moment.</param>
/// <param name="Offset">Where it starts in its buffer.</param>
/// <param name="Count">Its number of elements.</param>
internal sealed record OptimizedParameter(string Name, Parameter Parameter, Tensor Master, Tensor ExpAvg, Tensor ExpAvgSq, long Offset, long Count)
{
    /// <summary>AdamW steps this parameter has taken (PyTorch's per-parameter <c>step</c>).</summary>
    public long Step { get; set; }

    /// <summary>Whether it got a gradient since the last <see cref="FlatAdamW.ZeroGrad"/>.</summary>
    public bool HasGradient { get; set; }
}
