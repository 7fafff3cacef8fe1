namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>How the training augmentation's geometry (flip, rotation, scale) and the final resize to S×S are computed.</summary>
public enum AugmentationGeometry
{
    /// <summary>
    /// Flip, rotation, scale and the final resize composed into one map per sample and applied once at S×S (bicubic for the
    /// image and the normals, nearest for class maps). Class maps are identical to <see cref="ReferenceTwoStep"/>; the image
    /// and the normals are interpolated once instead of twice, so they differ slightly (README, "Data loading"). About twice
    /// as fast. The default.
    /// </summary>
    SinglePass,

    /// <summary>
    /// Exactly the reference's steps (data/custom_transforms.py): flip, <c>cv2.warpAffine</c> at the original size, then
    /// <c>cv2.resize</c> to S×S, with OpenCV's sampling rules.
    /// </summary>
    ReferenceTwoStep,
}

/// <summary>Options of <see cref="DenseBatchReader"/>. Defaults follow the reference's evaluation loader; see <see cref="ForTraining"/>.</summary>
public sealed class DenseBatchReaderOptions
{
    /// <summary>
    /// The default number of loader workers: one per core but one (left for the thread that consumes the batches), at least
    /// 1 and at most 32. A GPU training step needs the host mainly to launch kernels, so the other cores can decode; on a CPU
    /// run the workers only fill the prefetch window and then wait.
    /// </summary>
    public static int DefaultDegreeOfParallelism => Math.Clamp(Environment.ProcessorCount - 1, 1, 32);

    /// <summary>The default prefetch depth: 2 batches prepared ahead while the current one is used.</summary>
    public const int DefaultPrefetchBatches = 2;

    /// <summary>The tasks to produce targets for; null for every task whose label column is in the data.</summary>
    public IReadOnlyList<DenseTaskDescriptor>? Tasks { get; set; }

    /// <summary>Samples per batch (reference: 32). Default 32.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>The square network input size S (reference: 448). Default 448.</summary>
    public int ImageSize { get; set; } = DenseImagePreprocessing.DefaultImageSize;

    /// <summary>Apply the reference's training augmentation (random horizontal flip, then a random rotation and scale drawn as <see cref="Draws"/> says). Default false.</summary>
    public bool Augment { get; set; }

    /// <summary>
    /// How <see cref="Augment"/> draws each sample's rotation and scale. Default <see cref="AugmentationDraws.PascalContext"/>
    /// (rotation ±20°, scale 0.75–1.25); <see cref="AugmentationDraws.Nyud"/> for NYUD-v2 (no rotation, scale 1.0, 1.2 or 1.5).
    /// </summary>
    public AugmentationDraws Draws { get; set; } = AugmentationDraws.PascalContext;

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
    /// Loader worker threads that decode and pre-process samples in parallel. Default
    /// <see cref="DefaultDegreeOfParallelism"/> (cores − 1). The batches are the same, bit for bit, for every value: each sample's
    /// result depends only on (seed, epoch, its position in the epoch). With 1 and <see cref="PrefetchBatches"/> = 0 everything
    /// runs on the thread that enumerates the batches.
    /// </summary>
    /// <remarks>
    /// For the PASCAL-Context view (<c>LoadPascalContext</c>), each worker decodes its own samples (image and label files).
    /// For other data the rows are read through one cursor, one row at a time, by whichever worker is free (the cursor's
    /// getters decode), and the resize and augmentation run in parallel.
    /// </remarks>
    public int DegreeOfParallelism { get; set; } = DefaultDegreeOfParallelism;

    /// <summary>
    /// Batches the workers prepare ahead while the caller works on the current one (0: only the batch asked for). Default
    /// <see cref="DefaultPrefetchBatches"/>. Each prepared batch holds B·S²·(4·6 + 3) bytes of buffers (173 MB at B = 32, S = 448).
    /// </summary>
    public int PrefetchBatches { get; set; } = DefaultPrefetchBatches;

    /// <summary>
    /// The geometry of the training augmentation (see <see cref="AugmentationGeometry"/>). Default
    /// <see cref="AugmentationGeometry.SinglePass"/>; <see cref="AugmentationGeometry.ReferenceTwoStep"/> reproduces the
    /// reference's two interpolations exactly. Evaluation (no augmentation) is the same resize in both.
    /// </summary>
    public AugmentationGeometry Geometry { get; set; } = AugmentationGeometry.SinglePass;

    /// <summary>The image column (ImageDataViewType / MLImage). Default <c>Image</c>.</summary>
    public string ImageColumnName { get; set; } = MtLoraColumnNames.Image;

    /// <summary>The id column (text); optional. Default <c>Id</c>.</summary>
    public string IdColumnName { get; set; } = MtLoraColumnNames.Id;

    /// <summary>The Int32 label-height column; optional (the image height is used without it). Default <c>Height</c>.</summary>
    public string HeightColumnName { get; set; } = MtLoraColumnNames.Height;

    /// <summary>The Int32 label-width column; optional. Default <c>Width</c>.</summary>
    public string WidthColumnName { get; set; } = MtLoraColumnNames.Width;

    /// <summary>Label column names by task, overriding <see cref="DenseTasks.LabelColumnName"/>.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, string>? LabelColumnNames { get; set; }

    /// <summary>The reference's training loader: augmentation, shuffling, drop-last, batch 32 at 448.</summary>
    public static DenseBatchReaderOptions ForTraining(int seed = 0) => new() { Augment = true, Shuffle = true, DropLast = true, Seed = seed };

    internal string LabelColumn(DenseTaskDescriptor task) =>
        LabelColumnNames is not null && LabelColumnNames.TryGetValue(task, out var name) ? name : task.LabelColumnName;
}
