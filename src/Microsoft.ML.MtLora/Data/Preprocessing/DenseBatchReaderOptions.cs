namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>Options of <see cref="DenseBatchReader"/>. Defaults follow the reference's evaluation loader; see <see cref="ForTraining"/>.</summary>
public sealed class DenseBatchReaderOptions
{
    /// <summary>The tasks to produce targets for; null for every task whose label column is in the data.</summary>
    public IReadOnlyList<DenseTask>? Tasks { get; set; }

    /// <summary>Samples per batch (reference: 32). Default 32.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>The square network input size S (reference: 448). Default 448.</summary>
    public int ImageSize { get; set; } = DenseImagePreprocessing.DefaultImageSize;

    /// <summary>Apply the reference's training augmentation (random horizontal flip, then random rotation ±20° and scale 0.75–1.25). Default false.</summary>
    public bool Augment { get; set; }

    /// <summary>Visit the rows in a random order, a permutation drawn from (<see cref="Seed"/>, epoch). Default false.</summary>
    public bool Shuffle { get; set; }

    /// <summary>Leave out a last, incomplete batch (the reference trains with drop_last). Default false.</summary>
    public bool DropLast { get; set; }

    /// <summary>Seed of the shuffle order and of the augmentation draws. Default 0 (the reference's SEED).</summary>
    public int Seed { get; set; }

    /// <summary>
    /// Keep the labels at each image's original resolution (no resize; only the ignore rules) in
    /// <see cref="DenseBatch.OriginalTargets"/>, for evaluation at the original resolution. Images are still resized to S.
    /// Incompatible with <see cref="Augment"/>. Default false (the reference evaluates on S×S resized labels).
    /// </summary>
    public bool KeepOriginalLabelResolution { get; set; }

    /// <summary>
    /// Threads that pre-process the samples of a batch in parallel (decoding stays on the cursor's thread). Default 1.
    /// Values above 1 run TorchSharp operations on several threads at once; with TorchSharp 0.107 that risks its implicit
    /// <c>Scalar</c> temporaries being finalized during a native call on another thread ("Unknown scalar type"), so it is opt-in.
    /// </summary>
    public int DegreeOfParallelism { get; set; } = 1;

    /// <summary>
    /// Batches decoded and pre-processed ahead on a background task while the caller works on the current one (0: read on
    /// the caller's thread). Default 0, for the reason given on <see cref="DegreeOfParallelism"/>. The data's cursor is then
    /// used from that task only.
    /// </summary>
    public int PrefetchBatches { get; set; }

    /// <summary>The image column (ImageDataViewType / MLImage). Default <c>Image</c>.</summary>
    public string ImageColumnName { get; set; } = MtLoraColumnNames.Image;

    /// <summary>The id column (text); optional. Default <c>Id</c>.</summary>
    public string IdColumnName { get; set; } = MtLoraColumnNames.Id;

    /// <summary>The Int32 label-height column; optional (the image height is used without it). Default <c>Height</c>.</summary>
    public string HeightColumnName { get; set; } = MtLoraColumnNames.Height;

    /// <summary>The Int32 label-width column; optional. Default <c>Width</c>.</summary>
    public string WidthColumnName { get; set; } = MtLoraColumnNames.Width;

    /// <summary>Label column names by task, overriding <see cref="DenseTasks.LabelColumnName"/>.</summary>
    public IReadOnlyDictionary<DenseTask, string>? LabelColumnNames { get; set; }

    /// <summary>The reference's training loader: augmentation, shuffling, drop-last, batch 32 at 448.</summary>
    public static DenseBatchReaderOptions ForTraining(int seed = 0) => new() { Augment = true, Shuffle = true, DropLast = true, Seed = seed };

    internal string LabelColumn(DenseTask task) =>
        LabelColumnNames is not null && LabelColumnNames.TryGetValue(task, out var name) ? name : task.LabelColumnName();
}
