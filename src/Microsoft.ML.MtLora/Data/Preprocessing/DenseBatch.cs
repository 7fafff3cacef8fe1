using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// One batch for the trainer or the evaluator, in the reference's layout: normalised images and per-task targets, as
/// float32 CPU tensors. Disposing the batch disposes every tensor in it.
/// </summary>
public sealed class DenseBatch : IDisposable
{
    internal DenseBatch(int epoch, int index, Tensor images, IReadOnlyDictionary<DenseTaskDescriptor, Tensor> targets,
        IReadOnlyList<IReadOnlyDictionary<DenseTaskDescriptor, Tensor>>? originalTargets, IReadOnlyList<string> ids,
        IReadOnlyList<(int Height, int Width)> originalSizes)
    {
        Epoch = epoch;
        Index = index;
        Images = images;
        Targets = targets;
        OriginalTargets = originalTargets;
        Ids = ids;
        OriginalSizes = originalSizes;
    }

    /// <summary>The epoch the batch belongs to.</summary>
    public int Epoch { get; }

    /// <summary>The batch's index within its epoch (0-based, counting skipped batches).</summary>
    public int Index { get; }

    /// <summary>The number of samples B.</summary>
    public int Count => Ids.Count;

    /// <summary>(B, 3, S, S) float32: RGB, scaled to [0, 1], minus the ImageNet mean, divided by the ImageNet std.</summary>
    public Tensor Images { get; }

    /// <summary>
    /// Per-task targets at S×S, float32: semseg and human parts (B, 1, S, S) class ids with 255 = ignore; saliency
    /// (B, 1, S, S) in {0, 1}; normals (B, 3, S, S) unit vectors with 255 in all channels = ignore. Empty when the labels
    /// are kept at their original resolution (see <see cref="OriginalTargets"/>).
    /// </summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, Tensor> Targets { get; }

    /// <summary>
    /// With <see cref="DenseBatchReaderOptions.KeepOriginalLabelResolution"/>: per sample, the targets at the image's
    /// original size, (1, H, W) or (3, H, W) with the same encodings as <see cref="Targets"/>; otherwise null.
    /// </summary>
    public IReadOnlyList<IReadOnlyDictionary<DenseTaskDescriptor, Tensor>>? OriginalTargets { get; }

    /// <summary>The sample ids (or row numbers as text when the data has no id column), in batch order.</summary>
    public IReadOnlyList<string> Ids { get; }

    /// <summary>The size of each sample's image before any resize.</summary>
    public IReadOnlyList<(int Height, int Width)> OriginalSizes { get; }

    /// <summary>Disposes every tensor of the batch.</summary>
    public void Dispose()
    {
        Images.Dispose();
        foreach (var t in Targets.Values) t.Dispose();
        if (OriginalTargets is not null)
            foreach (var sample in OriginalTargets)
                foreach (var t in sample.Values) t.Dispose();
    }
}
