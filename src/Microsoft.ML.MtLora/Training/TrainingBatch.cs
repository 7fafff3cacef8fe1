using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>One training batch: normalised images and the per-task targets.</summary>
/// <param name="Images">(B, 3, H, W) float32, ImageNet-normalised.</param>
/// <param name="Targets">Targets by reference task name, in the layouts <see cref="TaskLosses.Compute(IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, Tensor}, IReadOnlyDictionary{string, float}?)"/> expects.</param>
/// <remarks>The trainer takes ownership: it moves the tensors to its device and disposes them after the step.</remarks>
internal readonly record struct TrainingBatch(Tensor Images, IReadOnlyDictionary<string, Tensor> Targets)
{
    public void Dispose()
    {
        Images?.Dispose();
        if (Targets is null) return;
        foreach (var t in Targets.Values) t?.Dispose();
    }
}

/// <summary>
/// Where the trainer gets its batches. A source must be a pure function of (epoch, position): the same epoch gives the
/// same batches in the same order, which is what makes a resumed run continue exactly where the interrupted one stopped.
/// </summary>
internal interface ITrainingBatchSource
{
    /// <summary>Batches in one epoch (with the reference's <c>drop_last</c>: ⌊images / batch size⌋).</summary>
    int BatchesPerEpoch { get; }

    /// <summary>
    /// The batches of an epoch from position <paramref name="skipBatches"/> on. The order must depend only on the epoch
    /// (and the source's own seed), never on the global torch random state, which the trainer reseeds at every step.
    /// </summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="skipBatches">How many batches at the start of the epoch to leave out (0 except when resuming).</param>
    /// <returns>The batches; the trainer disposes each one after its step.</returns>
    IEnumerable<TrainingBatch> GetBatches(int epoch, int skipBatches);
}

/// <summary>An <see cref="ITrainingBatchSource"/> over a delegate.</summary>
/// <param name="batchesPerEpoch">Batches in one epoch.</param>
/// <param name="getBatches">(epoch, skipBatches) → the batches of that epoch from that position on.</param>
internal sealed class DelegateBatchSource(int batchesPerEpoch, Func<int, int, IEnumerable<TrainingBatch>> getBatches) : ITrainingBatchSource
{
    private readonly Func<int, int, IEnumerable<TrainingBatch>> _getBatches = getBatches ?? throw new ArgumentNullException(nameof(getBatches));

    /// <inheritdoc/>
    public int BatchesPerEpoch { get; } = batchesPerEpoch > 0
        ? batchesPerEpoch
        : throw new ArgumentOutOfRangeException(nameof(batchesPerEpoch), batchesPerEpoch, "An epoch must hold at least one batch.");

    /// <inheritdoc/>
    public IEnumerable<TrainingBatch> GetBatches(int epoch, int skipBatches) => _getBatches(epoch, skipBatches);
}
