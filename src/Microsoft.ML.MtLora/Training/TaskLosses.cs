using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The per-task losses of the MTLoRA reference and their weighted sum (reference-spec §5).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>semseg</c>, <c>human_parts</c>: log-softmax over the channels, then the negative log-likelihood of the label
/// (channel 0 of the <c>(B, 1, H, W)</c> float target, as a class id), averaged over the pixels whose label is not 255.</item>
/// <item><c>sal</c>: balanced binary cross-entropy with logits. With <c>y = target ≥ 0.5</c> and <c>w</c> the share of
/// negatives in the whole batch tensor, the loss is <c>[w·Σ_pos ℓ + (1−w)·Σ_neg ℓ] / (B·1·H·W)</c>.</item>
/// <item><c>normals</c>: each predicted vector is divided by its L2 norm + 1e-12; the loss is the sum of the absolute
/// differences over the label elements that are not 255, divided by max(number of such elements, 1e-6).</item>
/// </list>
/// <para>
/// One deliberate deviation: when a classification task has no valid pixel in the batch (human parts on images without
/// people), the reference computes 0/0 = NaN and its AMP scaler then skips the whole step. Here that task's loss is a zero
/// that carries no gradient (its parameters get no gradient from it and are left alone by AdamW), the other tasks still
/// train, and the task is listed in <see cref="TaskLossResult.TasksWithoutLabels"/>.
/// </para>
/// </remarks>
public static class TaskLosses
{
    /// <summary>The epsilon added to the L2 norm of a predicted normal before dividing (reference value).</summary>
    public const double NormalsEpsilon = 1e-12;

    /// <summary>
    /// Computes each task's loss and the weighted total. Every tensor stays on its device; the totals are float32.
    /// </summary>
    /// <param name="outputs">The network outputs by reference task name (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>,
    /// <c>normals</c>), each <c>(B, C, H, W)</c> with C = 21, 7, 1, 3. Only the tasks present here are computed.</param>
    /// <param name="targets">The targets by the same names: <c>(B, 1, H, W)</c> class ids as floats (255 = ignore) for
    /// semseg and human_parts, <c>(B, 1, H, W)</c> 0/1 for sal, <c>(B, 3, H, W)</c> unit vectors (255 = ignore) for normals.</param>
    /// <param name="weights">Loss weights by task name; tasks not listed (or a <see langword="null"/> dictionary) take
    /// <see cref="DenseTaskDescriptor.DefaultLossWeight"/> (1, 2, 5, 10).</param>
    /// <returns>The per-task losses (scalar tensors) and the weighted total. The caller owns the tensors.</returns>
    /// <exception cref="ArgumentException">A task name is unknown, a target is missing, shapes disagree, or a class label
    /// is outside 0..C−1 (other than 255); the message names the task.</exception>
    /// <remarks>The label checks read the targets' class ids on the host; with targets on a GPU that is a synchronisation.
    /// The trainer checks its batch on the CPU before moving it (<see cref="CheckLabels"/>) and computes the losses without
    /// any device-to-host read.</remarks>
    public static TaskLossResult Compute(
        IReadOnlyDictionary<string, Tensor> outputs,
        IReadOnlyDictionary<string, Tensor> targets,
        IReadOnlyDictionary<string, float>? weights = null)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(targets);
        return Compute(outputs, targets, weights, CheckLabels(outputs, targets));
    }

    /// <summary>
    /// Computes each task's loss and the weighted total for any tasks: the loss follows each descriptor's
    /// <see cref="DenseTaskDescriptor.Kind"/> (segmentation NLL, balanced BCE with the task's positive weight, normals L1,
    /// depth L1 over the pixels whose label is not the ignore value), the weight its <see cref="DenseTaskDescriptor.DefaultLossWeight"/>
    /// unless <paramref name="weights"/> names it.
    /// </summary>
    /// <param name="outputs">The network outputs by task name, each <c>(B, C, H, W)</c>.</param>
    /// <param name="targets">The targets by the same names: <c>(B, 1, H, W)</c> (class ids as floats, 0/1 maps, depths) or
    /// <c>(B, 3, H, W)</c> for normals.</param>
    /// <param name="weights">Loss weights by task name, or null.</param>
    /// <param name="tasks">The descriptors of the tasks named in <paramref name="outputs"/>.</param>
    /// <returns>The per-task losses and the weighted total. The caller owns the tensors.</returns>
    /// <exception cref="ArgumentException">An output names no task of <paramref name="tasks"/>, a target is missing, shapes
    /// disagree, or a class label is outside 0..C−1 (other than 255); the message names the task.</exception>
    public static TaskLossResult Compute(
        IReadOnlyDictionary<string, Tensor> outputs,
        IReadOnlyDictionary<string, Tensor> targets,
        IReadOnlyDictionary<string, float>? weights,
        IReadOnlyList<DenseTaskDescriptor> tasks)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(tasks);
        return Compute(outputs, targets, weights, CheckLabels(outputs, targets, tasks), tasks);
    }

    /// <summary>The descriptor of a task name: from <paramref name="tasks"/> when given, else a PASCAL built-in.</summary>
    private static bool TryResolve(string name, IReadOnlyList<DenseTaskDescriptor>? tasks, out DenseTaskDescriptor task)
    {
        if (tasks is null)
        {
            bool known = DenseTasks.TryParse(name, out var pascal);
            task = known ? pascal.ToDescriptor() : null!;
            return known;
        }
        task = tasks.FirstOrDefault(t => t.Name == name)!;
        return task is not null;
    }

    private static string Known(IReadOnlyList<DenseTaskDescriptor>? tasks) =>
        string.Join(", ", (tasks ?? DenseTaskDescriptor.Pascal).Select(t => t.Name));

    /// <summary>
    /// Checks the classification targets against the outputs' class counts and counts their valid (not 255) pixels; a
    /// host-side read of the targets, meant for the CPU copy of a batch.
    /// </summary>
    /// <param name="outputs">The network outputs (only their shapes are used, so they may live on any device).</param>
    /// <param name="targets">The targets, by task name (normally on the CPU).</param>
    /// <param name="tasks">The tasks' descriptors; null: the PASCAL built-ins, by name.</param>
    /// <returns>The valid pixel count of each classification task present in <paramref name="outputs"/>.</returns>
    /// <exception cref="ArgumentException">A target is missing, or holds a class id outside 0..C−1 other than 255; the message
    /// names the task.</exception>
    internal static IReadOnlyDictionary<string, long> CheckLabels(IReadOnlyDictionary<string, Tensor> outputs, IReadOnlyDictionary<string, Tensor> targets,
        IReadOnlyList<DenseTaskDescriptor>? tasks = null)
    {
        var counts = new Dictionary<string, long>();
        foreach (var (name, output) in outputs)
        {
            if (!TryResolve(name, tasks, out var task) || !task.IsClassification || output.dim() != 4) continue;
            if (!targets.TryGetValue(name, out var target))
                throw new ArgumentException($"No target was given for task '{name}'. Targets present: {string.Join(", ", targets.Keys)}.", nameof(targets));
            if (target.dim() != 4) continue;   // Compute reports the shape
            using var scope = torch.NewDisposeScope();
            long classes = output.shape[1];
            var labels = target.select(1, 0).to(ScalarType.Int64);                      // (B, H, W)
            using var classCount = classes.ToScalar();
            var valid = labels.ne(TorchScalars.Ignore);
            var outOfRange = valid.logical_and(labels.lt(TorchScalars.Zero).logical_or(labels.ge(classCount)));
            using var both = torch.stack([valid.sum(), outOfRange.sum()]).cpu();
            long nValid = both[0].item<long>(), nBad = both[1].item<long>();
            if (nBad > 0)
                throw new ArgumentException($"Task '{name}': {nBad} target pixel(s) hold a class id outside 0..{classes - 1} that is not the ignore label 255.");
            counts[name] = nValid;
        }
        return counts;
    }

    /// <summary>
    /// <see cref="Compute(IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, float}?)"/>
    /// without any device-to-host read: the classification losses divide by the valid pixel counts given here (from
    /// <see cref="CheckLabels"/> on the host copy of the targets). Null counts: the targets are trusted and counted on the
    /// device, and a task without valid pixels then gives a zero loss with a zero gradient instead of no gradient.
    /// </summary>
    internal static TaskLossResult Compute(
        IReadOnlyDictionary<string, Tensor> outputs,
        IReadOnlyDictionary<string, Tensor> targets,
        IReadOnlyDictionary<string, float>? weights,
        IReadOnlyDictionary<string, long>? validPixels,
        IReadOnlyList<DenseTaskDescriptor>? tasks = null)
    {
        if (outputs.Count == 0) throw new ArgumentException("No task outputs were given.", nameof(outputs));
        if (weights != null)
        {
            foreach (var (name, w) in weights)
            {
                if (!TryResolve(name, tasks, out _))
                    throw new ArgumentException($"Loss weight given for unknown task '{name}'. Known tasks: {Known(tasks)}.", nameof(weights));
                if (!float.IsFinite(w) || w < 0)
                    throw new ArgumentException($"Loss weight of task '{name}' is {w}; it must be a finite number ≥ 0.", nameof(weights));
            }
        }

        using var scope = torch.NewDisposeScope();
        var perTask = new Dictionary<string, Tensor>();
        var appliedWeights = new Dictionary<string, float>();
        var withoutLabels = new List<string>();
        Tensor? total = null;
        foreach (var (name, output) in outputs)
        {
            if (!TryResolve(name, tasks, out var task))
                throw new ArgumentException($"Output '{name}' is not a known task. Known tasks: {Known(tasks)}.", nameof(outputs));
            if (!targets.TryGetValue(name, out var target))
                throw new ArgumentException($"No target was given for task '{name}'. Targets present: {string.Join(", ", targets.Keys)}.", nameof(targets));
            CheckShapes(task, name, output, target);

            Tensor loss;
            switch (task.Kind)
            {
                case DenseTaskKind.Segmentation:
                    long? valid = validPixels is not null && validPixels.TryGetValue(name, out var v) ? v : null;
                    loss = ClassificationLoss(output, target, valid);
                    if (valid == 0) withoutLabels.Add(name);
                    break;
                case DenseTaskKind.BinaryMap:
                    loss = BalancedBinaryCrossEntropy(output, target, task.PositiveWeight);
                    break;
                case DenseTaskKind.Depth:
                    loss = DepthL1(output, target, task.IgnoreValue ?? DenseTaskDescriptor.DefaultIgnoreLabel);
                    break;
                default:
                    loss = NormalsL1(output, target);
                    break;
            }

            float weight = weights?.FirstOrDefault(kv => TryResolve(kv.Key, tasks, out var t) && t == task) is { Key: not null } given
                ? given.Value : task.DefaultLossWeight;
            appliedWeights[name] = weight;
            perTask[name] = loss;
            using var weightScalar = weight.ToScalar();
            var weighted = loss.mul(weightScalar);
            total = total is null ? weighted : total.add(weighted, TorchScalars.One);
        }

        foreach (var t in perTask.Values) t.MoveToOuterDisposeScope();
        total!.MoveToOuterDisposeScope();
        return new TaskLossResult(perTask, total, appliedWeights, withoutLabels);
    }

    /// <summary>Semseg / human parts: log-softmax + NLL with ignore label 255, mean over the valid pixels.</summary>
    /// <param name="logits">(B, C, H, W) logits.</param>
    /// <param name="target">(B, 1, H, W) class ids as floats, 255 = ignore; every other id must be in 0..C−1.</param>
    /// <param name="validPixels">The number of valid pixels when known on the host: 0 gives a zero loss without gradient.
    /// Null: the mean is taken over the valid pixels counted on the device (libtorch's <c>ignore_index</c>).</param>
    internal static Tensor ClassificationLoss(Tensor logits, Tensor target, long? validPixels)
    {
        using var scope = torch.NewDisposeScope();
        if (validPixels == 0)
            return torch.zeros([], ScalarType.Float32, logits.device).MoveToOuterDisposeScope();
        var labels = target.select(1, 0).to(ScalarType.Int64);                           // (B, H, W)
        // cross_entropy = log_softmax + nll_loss; with ignore_index the pixels labelled 255 add nothing.
        var sum = torch.nn.functional.cross_entropy(logits.to(ScalarType.Float32), labels, ignore_index: (long)DenseTasks.IgnoreLabel,
            reduction: nn.Reduction.Sum);
        if (validPixels is long n)
        {
            using var count = ((double)n).ToScalar();
            return sum.div(count).MoveToOuterDisposeScope();
        }
        var counted = labels.ne(TorchScalars.Ignore).sum().to(ScalarType.Float32).clamp_min(TorchScalars.OneF);
        return sum.div(counted).MoveToOuterDisposeScope();
    }

    /// <summary>Saliency, edges: balanced BCE with logits, normalised by the number of elements
    /// (<c>mtl_loss_schemes.py::BalancedCrossEntropyLoss</c>, <c>size_average=True</c>).</summary>
    /// <param name="logits">(B, 1, H, W) logits.</param>
    /// <param name="target">(B, 1, H, W) values; ≥ 0.5 is positive.</param>
    /// <param name="positiveWeight">The weight w of the positives' sum (the negatives' is 1 − w): fixed (edges 0.95), or
    /// null for the share of negatives in the batch tensor (saliency).</param>
    internal static Tensor BalancedBinaryCrossEntropy(Tensor logits, Tensor target, float? positiveWeight = null)
    {
        if (positiveWeight is { } fixedWeight) return FixedWeightBinaryCrossEntropy(logits, target, fixedWeight);
        using var scope = torch.NewDisposeScope();
        var x = logits.to(ScalarType.Float32);
        var y = target.ge(TorchScalars.Half).to(ScalarType.Float32);                      // (B, 1, H, W)
        using var numel = ((double)y.numel()).ToScalar();
        var notY = y.neg().add_(TorchScalars.OneF, TorchScalars.One);                                        // 1 − y
        var w = notY.sum().div(numel);                                                    // share of negatives, no gradient
        // Stable per-pixel BCE with logits: log(1 + e^{-x}) for y = 1, log(1 + e^{x}) for y = 0.
        var perPixel = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction: nn.Reduction.None);
        var pos = (perPixel * y).sum();
        var neg = (perPixel * notY).sum();
        var loss = (w * pos).add(w.neg().add(TorchScalars.OneF, TorchScalars.One) * neg, TorchScalars.One).div(numel);
        return loss.MoveToOuterDisposeScope();
    }

    private static Tensor FixedWeightBinaryCrossEntropy(Tensor logits, Tensor target, float positiveWeight)
    {
        using var scope = torch.NewDisposeScope();
        var x = logits.to(ScalarType.Float32);
        var y = target.ge(TorchScalars.Half).to(ScalarType.Float32);                      // (B, 1, H, W)
        using var numel = ((double)y.numel()).ToScalar();
        using var wPos = ((double)positiveWeight).ToScalar();
        using var wNeg = (1.0 - positiveWeight).ToScalar();
        var notY = y.neg().add_(TorchScalars.OneF, TorchScalars.One);                                        // 1 − y
        var perPixel = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction: nn.Reduction.None);
        var pos = (perPixel * y).sum().mul(wPos);
        var neg = (perPixel * notY).sum().mul(wNeg);
        return pos.add(neg, TorchScalars.One).div(numel).MoveToOuterDisposeScope();
    }

    /// <summary>Depth: L1 over the pixels whose label is not <paramref name="ignoreValue"/>, mean over them
    /// (<c>mtl_loss_schemes.py::DepthLoss</c>: <c>L1Loss(masked_select(out, label != 255), masked_select(label, ...))</c>).</summary>
    /// <param name="prediction">(B, 1, H, W) predicted depths.</param>
    /// <param name="target">(B, 1, H, W) depths, <paramref name="ignoreValue"/> = invalid.</param>
    /// <param name="ignoreValue">The invalid-pixel label (255 as the reference).</param>
    /// <remarks>One deviation: a batch without any valid pixel gives 0 with a zero gradient (the reference's mean of an empty
    /// selection is NaN). The count stays on the device: no host synchronisation.</remarks>
    internal static Tensor DepthL1(Tensor prediction, Tensor target, float ignoreValue)
    {
        using var scope = torch.NewDisposeScope();
        var p = prediction.to(ScalarType.Float32);
        var t = target.to(ScalarType.Float32);
        using var ignore = ignoreValue.ToScalar();
        var invalid = t.eq(ignore);                                                       // (B, 1, H, W)
        var sum = (p - t).abs().masked_fill(invalid, TorchScalars.ZeroF).sum();
        var count = invalid.logical_not().sum().to(ScalarType.Float32).clamp_min(TorchScalars.OneF);
        return (sum / count).MoveToOuterDisposeScope();
    }

    /// <summary>Normals: L1 between the per-pixel L2-normalised prediction and the label over the valid elements.</summary>
    /// <param name="prediction">(B, 3, H, W) unnormalised vectors.</param>
    /// <param name="target">(B, 3, H, W) unit vectors, 255 = ignore (element-wise).</param>
    internal static Tensor NormalsL1(Tensor prediction, Tensor target)
    {
        using var scope = torch.NewDisposeScope();
        var p = prediction.to(ScalarType.Float32);
        var t = target.to(ScalarType.Float32);
        using var eps = NormalsEpsilon.ToScalar();
        var norm = p.norm(1, keepdim: true, p: 2).add(eps, TorchScalars.One);                              // (B, 1, H, W)
        var unit = p / norm;                                                              // (B, 3, H, W)
        var invalid = t.eq(TorchScalars.Ignore);                                          // (B, 3, H, W), element-wise
        var sum = (unit - t).abs().masked_fill(invalid, TorchScalars.ZeroF).sum();         // no data-dependent shape: no sync
        var valid = invalid.logical_not();
        // max(n_valid, 1e-6) as the reference: an all-ignored batch gives 0 with a zero gradient, not NaN.
        using var minCount = 1e-6.ToScalar();
        var denominator = valid.sum().to(ScalarType.Float32).clamp_min(minCount);
        return (sum / denominator).MoveToOuterDisposeScope();
    }

    private static void CheckShapes(DenseTaskDescriptor task, string name, Tensor output, Tensor target)
    {
        long expectedTargetChannels = task.LabelChannels;
        if (output.dim() != 4)
            throw new ArgumentException($"Output of task '{name}' must be (B, C, H, W); it has shape [{string.Join(", ", output.shape)}].");
        if (target.dim() != 4 || target.shape[1] != expectedTargetChannels)
            throw new ArgumentException($"Target of task '{name}' must be (B, {expectedTargetChannels}, H, W); it has shape [{string.Join(", ", target.shape)}].");
        if (output.shape[0] != target.shape[0] || output.shape[2] != target.shape[2] || output.shape[3] != target.shape[3])
            throw new ArgumentException($"Task '{name}': output [{string.Join(", ", output.shape)}] and target [{string.Join(", ", target.shape)}] disagree in batch size or spatial size.");
        if (!task.IsClassification && output.shape[1] != task.OutputChannels)
            throw new ArgumentException($"Output of task '{name}' must have {task.OutputChannels} channel(s); it has {output.shape[1]}.");
        if (task.IsClassification && output.shape[1] < 2)
            throw new ArgumentException($"Output of task '{name}' must have at least 2 class channels; it has {output.shape[1]}.");
        if (output.device_type != target.device_type)
            throw new ArgumentException($"Task '{name}': output is on {output.device} but target is on {target.device}.");
    }
}

/// <summary>The result of <see cref="TaskLosses.Compute(IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, float}?)"/>: per-task losses and their weighted total.</summary>
/// <param name="PerTask">Each task's loss, a float32 scalar tensor, by reference task name.</param>
/// <param name="Total">Σ weight·loss over the tasks, a float32 scalar tensor (the one to back-propagate).</param>
/// <param name="Weights">The weight applied to each task.</param>
/// <param name="TasksWithoutLabels">Classification tasks whose batch held no valid label pixel: their loss is a zero
/// without gradient (the reference would have produced NaN and skipped the step).</param>
public sealed record TaskLossResult(
    IReadOnlyDictionary<string, Tensor> PerTask,
    Tensor Total,
    IReadOnlyDictionary<string, float> Weights,
    IReadOnlyList<string> TasksWithoutLabels) : IDisposable
{
    /// <summary>Disposes the loss tensors.</summary>
    public void Dispose()
    {
        foreach (var t in PerTask.Values) t.Dispose();
        Total.Dispose();
    }
}
