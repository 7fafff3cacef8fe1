using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora;

/// <summary>
/// Everything the MTLoRA trainer needs (<c>mlContext.MultiTask().Trainers.MtLora(options)</c>). The defaults (<see cref="TrainingRecipe.Paper"/>, <see cref="PaperMainSetting"/>) are the
/// paper's main setting and the reference's training recipe: Swin-T at 448 px, shared rank 64 and task rank 4, the
/// four PASCAL-Context tasks with loss weights 1/2/5/10, AdamW with weight decay 0.05, 300 epochs with 20 of warmup,
/// batch 32 with the reference's linearly scaled learning rate, gradient clipping at 5, the reference augmentation.
/// </summary>
public sealed class MtLoraOptions
{
    /// <summary>
    /// The network's architecture and adapter settings (tasks, Swin size, ranks, LoRA scale and dropout, MTLoRA+,
    /// decoder widths, drop path). Default: the paper's Swin-T 448, ranks 64/4, all four tasks.
    /// </summary>
    public MtLoraNetworkOptions Network = new();

    /// <summary>
    /// The weights to start from: a Microsoft Swin ImageNet checkpoint (e.g. <c>swin_tiny_patch4_window7_224.pth</c>, or
    /// the same as safetensors) whose backbone keys are mapped onto the MTLoRA backbone, or a reference MTLoRA checkpoint /
    /// state dict, loaded whole. Null: train from the random initialisation (only sensible for tests).
    /// </summary>
    public string? PretrainedWeightsPath;

    /// <summary>The image column (<c>MLImage</c>, any size). Default <c>Image</c>.</summary>
    public string ImageColumnName = MtLoraColumnNames.Image;

    /// <summary>The semantic segmentation label column (Vector of Byte, H·W, 255 = ignore). Default <c>SemsegLabel</c>.</summary>
    public string SemsegLabelColumnName = DenseTaskDescriptor.PascalSemanticSegmentation.LabelColumnName;

    /// <summary>The human parts label column (Vector of Byte, H·W, 255 = ignore). Default <c>HumanPartsLabel</c>.</summary>
    public string HumanPartsLabelColumnName = DenseTaskDescriptor.PascalHumanParts.LabelColumnName;

    /// <summary>The saliency label column (Vector of Byte, H·W, 0/1). Default <c>SaliencyLabel</c>.</summary>
    public string SaliencyLabelColumnName = DenseTaskDescriptor.PascalSaliency.LabelColumnName;

    /// <summary>The surface normals label column (Vector of Single, 3·H·W CHW, 255 = invalid). Default <c>NormalsLabel</c>.</summary>
    public string NormalsLabelColumnName = DenseTaskDescriptor.PascalSurfaceNormals.LabelColumnName;

    /// <summary>Training epochs (the schedule's length). Default 300, as the paper.</summary>
    public int Epochs = TrainingRecipe.Paper.Epochs;

    /// <summary>Stop after this many optimizer steps (the schedule still spans <see cref="Epochs"/>). Default null: no limit.</summary>
    public long? MaxSteps;

    /// <summary>Images per optimizer step. Default 32, as the paper.</summary>
    public int BatchSize = TrainingRecipe.Paper.BatchSize;

    /// <summary>
    /// Peak learning rate, in (0, <see cref="MaxLearningRate"/>]. Default null: the reference's linear scaling, 5e-4 × <see cref="BatchSize"/> / 512 (3.125e-5 at
    /// batch 32); the warmup start and the cosine floor are scaled the same way (5e-7 and 5e-6 per 512 images).
    /// </summary>
    public double? LearningRate;

    /// <summary>The largest <see cref="LearningRate"/> accepted: 1.</summary>
    public const double MaxLearningRate = 1.0;

    /// <summary>Epochs of linear warmup. Default 20.</summary>
    public int WarmupEpochs = TrainingRecipe.Paper.WarmupEpochs;

    /// <summary>AdamW weight decay, with the reference's parameter groups. Default 0.05.</summary>
    public double WeightDecay = TrainingRecipe.Paper.WeightDecay;

    /// <summary>
    /// Gradient accumulation (the reference's <c>TRAIN.ACCUMULATION_STEPS</c>): each batch of <see cref="BatchSize"/> images
    /// runs as this many equal micro-batches whose gradients are added up before one optimizer step, so a batch that does not
    /// fit in memory at once still trains as that batch (the learning rate stays the one for <see cref="BatchSize"/>, as the
    /// reference scales it). Must divide <see cref="BatchSize"/>. Default 1.
    /// </summary>
    public int AccumulationSteps = 1;

    /// <summary>Global L2 gradient-norm clip. Default 5; null for none.</summary>
    public double? GradientClipNorm = TrainingRecipe.Paper.GradientClipNorm;

    /// <summary>Loss weight per task. Default null: the reference's semseg 1, human parts 2, saliency 5, normals 10.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, float>? TaskLossWeights;

    /// <summary>The reference's training augmentation (random horizontal flip, then a random rotation and scale drawn as <see cref="AugmentationDraws"/> says). Default true.</summary>
    public bool Augment = true;

    /// <summary>
    /// How the training augmentation draws each sample's rotation and scale (the flip is always drawn with probability 0.5).
    /// Default <see cref="Data.Preprocessing.AugmentationDraws.PascalContext"/>, the reference's PASCAL-Context draws
    /// (rotation uniform in ±20°, scale uniform in 0.75–1.25); <see cref="Data.Preprocessing.AugmentationDraws.Nyud"/> is the
    /// reference's NYUD-v2 draws (no rotation; scale 1.0, 1.2 or 1.5); <see cref="Data.Preprocessing.AugmentationDraws.Uniform"/>
    /// and <see cref="Data.Preprocessing.AugmentationDraws.Choice"/> give your own ranges or lists. Only used when
    /// <see cref="Augment"/> is true; both <see cref="AugmentationGeometry"/> modes apply the same draws.
    /// </summary>
    public Data.Preprocessing.AugmentationDraws AugmentationDraws = Data.Preprocessing.AugmentationDraws.PascalContext;

    /// <summary>Shuffle the training rows every epoch (needs a shuffleable view, e.g. after <c>mlContext.Data.Cache</c>). Default true.</summary>
    public bool Shuffle = true;

    /// <summary>
    /// Loader worker threads that decode and augment the training images while the network trains. Default: one per core
    /// but one, at least 1 and at most 32 (<see cref="Data.Preprocessing.DenseBatchReaderOptions.DefaultDegreeOfParallelism"/>).
    /// </summary>
    /// <remarks>
    /// The batches are bit-identical for every value: each sample's order, augmentation and result depend only on the seed,
    /// the epoch and its position, never on the thread that made it. The workers run no TorchSharp code (decoding,
    /// augmentation and resizing are managed code and SkiaSharp; the batch tensors are made on the training thread), so
    /// TorchSharp 0.107's finalizer-freed <c>Scalar</c>s cannot be lost on them (see <see cref="Data.Preprocessing.DenseBatchReader"/>).
    /// With 1 and <see cref="DataLoaderPrefetchBatches"/> = 0 the images are read on the training thread.
    /// </remarks>
    public int DataLoaderParallelism = Data.Preprocessing.DenseBatchReaderOptions.DefaultDegreeOfParallelism;

    /// <summary>
    /// Batches the loader workers prepare ahead while the network trains on the current one (0: none, the training thread
    /// waits for each batch). Default 2. Each costs B·S²·27 bytes of buffers (173 MB at batch 32 and 448 px).
    /// </summary>
    public int DataLoaderPrefetchBatches = Data.Preprocessing.DenseBatchReaderOptions.DefaultPrefetchBatches;

    /// <summary>
    /// How the training augmentation's flip, rotation, scale and final resize to S×S are computed. Default
    /// <see cref="Data.Preprocessing.AugmentationGeometry.SinglePass"/> (one composed warp per sample, about twice as fast);
    /// <see cref="Data.Preprocessing.AugmentationGeometry.ReferenceTwoStep"/> is exactly the reference's two steps
    /// (data/custom_transforms.py: warp at the original size, then resize). The README's "Data loading" section gives the
    /// measured distance between the two. Only used when <see cref="Augment"/> is true.
    /// </summary>
    public Data.Preprocessing.AugmentationGeometry AugmentationGeometry = Data.Preprocessing.AugmentationGeometry.SinglePass;

    /// <summary>
    /// Held-out data evaluated with the reference's metrics during and after training; logged to the ML.NET log. It needs
    /// the columns this estimator sees: the image column and the label columns (when the estimator follows <c>LoadImages</c>
    /// in a pipeline, give it decoded images, e.g. <c>LoadPascalContext(root, "val")</c>). Default null.
    /// </summary>
    public IDataView? ValidationSet;

    /// <summary>
    /// Evaluate <see cref="ValidationSet"/> every this many epochs, and at the end (0: only at the end). Default 5, the
    /// reference's EVAL_FREQ. The live network is validated in evaluation mode, without a copy of its weights.
    /// </summary>
    public int ValidationEveryEpochs = TrainingRecipe.Paper.ValidationEveryEpochs;

    /// <summary>
    /// How the validation scores (<see cref="EvaluationProtocol"/>). Default <see cref="EvaluationProtocol.Reference"/>: the
    /// protocol of the paper's numbers and of the Δm baselines.
    /// </summary>
    public EvaluationProtocol ValidationProtocol = EvaluationProtocol.Reference;

    /// <summary>
    /// The task whose metric picks the best validation (its paper metric: mIoU, or the normals' mean angle, lower is better).
    /// Default null: Δm.
    /// </summary>
    public DenseTaskDescriptor? BestEpochTask;

    /// <summary>
    /// The single-task baselines of the validations' Δm, which picks the best validation when <see cref="BestEpochTask"/> is
    /// null. Default <see cref="SingleTaskBaselines.Paper"/> (the paper's, measured on real PASCAL-Context under the
    /// reference protocol). A validation without Δm (no baseline for its tasks) is never the best by Δm.
    /// </summary>
    public SingleTaskBaselines ValidationBaselines = SingleTaskBaselines.Paper;

    /// <summary>Which weights <c>Fit</c> returns: <see cref="MtLoraKeep.Last"/> (default) or <see cref="MtLoraKeep.Best"/> (needs <see cref="ValidationSet"/>).</summary>
    public MtLoraKeep Keep = MtLoraKeep.Last;

    /// <summary>
    /// What a NaN or infinite loss does. Default <see cref="NonFiniteLossPolicy.Stop"/> (float32: the loss of a healthy run is
    /// finite); <see cref="NonFiniteLossPolicy.SkipStep"/> skips such steps and counts them in <see cref="MtLoraTransformer.TrainingReport"/>.
    /// </summary>
    public NonFiniteLossPolicy NonFiniteLoss = NonFiniteLossPolicy.Stop;

    /// <summary>Receives each validation result. Default null.</summary>
    public IProgress<MtLoraValidationReport>? ValidationProgress;

    /// <summary>
    /// A folder for resumable training checkpoints (weights, optimizer state, position). Default null: none. A checkpoint
    /// that cannot be written (full disk) is a warning in the ML.NET log and training goes on; a sample that cannot be read
    /// mid-run stops training after a checkpoint of the steps done is written.
    /// </summary>
    public string? CheckpointDirectory;

    /// <summary>Write a checkpoint every this many steps (0: only when cancelled). Needs <see cref="CheckpointDirectory"/>. Default 0.</summary>
    public int CheckpointEverySteps;

    /// <summary>How many checkpoints to keep (oldest removed first). Default 2.</summary>
    public int KeepCheckpoints = 2;

    /// <summary>A checkpoint folder written by an earlier run to continue from, bit for bit. Default null.</summary>
    public string? ResumeFrom;

    /// <summary>Where to train and predict: <c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c> (CUDA when available). Default <c>auto</c>.</summary>
    public string Device = "auto";

    /// <summary>When CUDA is asked for but missing, use the CPU instead of failing. Default true.</summary>
    public bool FallbackToCpu = true;

    /// <summary>
    /// Compute in bfloat16 on CUDA: training keeps float32 master weights, moments and frozen-weight originals (the saved
    /// model holds float32 weights), and the trained transformer predicts in bfloat16 too. CUDA only. Default false.
    /// </summary>
    public bool UseBFloat16;

    /// <summary>The random seed (initialisation, shuffling, augmentation, dropout). Default null: the MLContext's seed, else 0.</summary>
    public int? Seed;

    /// <summary>Rows per forward pass when the trained transformer scores a data view. Default 8.</summary>
    public int InferenceBatchSize = 8;

    /// <summary>Send a progress report (and a log line) every this many steps. Default 10.</summary>
    public int ProgressEverySteps = 10;

    /// <summary>Receives training progress (epoch, step, per-task losses, learning rate, throughput). Default null.</summary>
    public IProgress<TrainingProgress>? Progress;

    /// <summary>Stops training between steps; <c>Fit</c> then throws <see cref="OperationCanceledException"/> (after writing a checkpoint when a folder is set).</summary>
    public CancellationToken CancellationToken;

    /// <summary>
    /// How resume messages name an option (a member such as <c>BatchSize</c> or <c>Network.ImageSize</c>; null: as
    /// <c>MtLoraOptions.Member</c>): <c>mtlora train</c> names its command-line options (<c>Training.RunSettings</c>).
    /// </summary>
    internal Func<string, string?>? OptionName;

    /// <summary>
    /// The paper's main setting as options: Swin-T at 448 px, shared rank 64 and task rank 4, the four PASCAL-Context tasks,
    /// and <see cref="TrainingRecipe.Paper"/> (what a new <see cref="MtLoraOptions"/> holds; named here so that code says so).
    /// </summary>
    /// <param name="pretrainedWeightsPath">The Microsoft Swin-T ImageNet checkpoint to start from (swin_tiny_patch4_window7_224.pth), or null.</param>
    /// <returns>New options.</returns>
    public static MtLoraOptions PaperMainSetting(string? pretrainedWeightsPath = null) => new()
    {
        Network = new MtLoraNetworkOptions(),
        PretrainedWeightsPath = pretrainedWeightsPath,
    };

    /// <summary>The label column of a task under these options.</summary>
    /// <param name="task">The task.</param>
    /// <returns>The column name.</returns>
    public string LabelColumnName(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" => SemsegLabelColumnName,
        "human_parts" => HumanPartsLabelColumnName,
        "sal" => SaliencyLabelColumnName,
        "normals" => NormalsLabelColumnName,
        _ => task.LabelColumnName,
    };

    /// <summary>The peak learning rate in effect: <see cref="LearningRate"/> or the reference's scaling for <see cref="BatchSize"/>.</summary>
    public double EffectiveLearningRate => LearningRate ?? TrainingRecipe.PeakLearningRate(BatchSize);

    /// <summary>Checks every option and says which one is wrong.</summary>
    /// <exception cref="ArgumentException">An option is missing, out of range or inconsistent; the message names it (<c>MtLoraOptions.X</c>).</exception>
    public void Validate()
    {
        static ArgumentException Bad(string option, string message) => new($"MtLoraOptions.{option}: {message}", option);
        if (Network is null) throw Bad(nameof(Network), "must be set (the network settings).");
        try { Network.Validate(); }
        catch (ArgumentException e) { throw Bad(nameof(Network), e.Message); }
        if (Network.Tasks.Count == 0) throw Bad(nameof(Network), "no task to train (Network.Tasks is empty).");
        foreach (var (name, value) in new[] { (nameof(ImageColumnName), ImageColumnName), (nameof(SemsegLabelColumnName), SemsegLabelColumnName),
            (nameof(HumanPartsLabelColumnName), HumanPartsLabelColumnName), (nameof(SaliencyLabelColumnName), SaliencyLabelColumnName),
            (nameof(NormalsLabelColumnName), NormalsLabelColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw Bad(name, "a column name is required.");
        if (PretrainedWeightsPath is not null && !File.Exists(PretrainedWeightsPath))
            throw Bad(nameof(PretrainedWeightsPath), $"file '{PretrainedWeightsPath}' does not exist (expected a Swin .pth/.safetensors checkpoint or an MTLoRA checkpoint).");
        if (TrainingRecipe.CheckEpochs(Epochs) is { } epochs) throw Bad(nameof(Epochs), $"is {Epochs}; {epochs}");
        if (TrainingRecipe.CheckMaxSteps(MaxSteps) is { } maxSteps) throw Bad(nameof(MaxSteps), $"is {MaxSteps}; {maxSteps}");
        if (BatchSize < 1) throw Bad(nameof(BatchSize), $"is {BatchSize}; it must be at least 1.");
        if (TrainingRecipe.CheckAccumulationSteps(AccumulationSteps) is { } accumulation) throw Bad(nameof(AccumulationSteps), $"is {AccumulationSteps}; {accumulation}");
        if (BatchSize % AccumulationSteps != 0)
            throw Bad(nameof(AccumulationSteps), $"is {AccumulationSteps}; it must divide BatchSize ({BatchSize}) into equal micro-batches.");
        if (LearningRate is { } lr && !(lr > 0 && lr <= MaxLearningRate))
            throw Bad(nameof(LearningRate), $"is {lr}; it must be in (0, {MaxLearningRate}]: AdamW moves every weight by about the learning rate per step, so a larger one destroys the pretrained weights at once (the paper's is 3.1e-5 at batch 32).");
        if (TrainingRecipe.CheckWarmupEpochs(WarmupEpochs, Epochs) is { } warmup) throw Bad(nameof(WarmupEpochs), $"is {WarmupEpochs}; {warmup}");
        if (TrainingRecipe.CheckWeightDecay(WeightDecay) is { } decay) throw Bad(nameof(WeightDecay), $"is {WeightDecay}; {decay}");
        if (GradientClipNorm is { } clip && !(clip > 0)) throw Bad(nameof(GradientClipNorm), $"is {clip}; it must be positive (or null for no clipping).");
        if (TaskLossWeights is not null)
            foreach (var (task, w) in TaskLossWeights)
                if (!(w >= 0 && float.IsFinite(w))) throw Bad(nameof(TaskLossWeights), $"the weight of {task.Name} is {w}; weights must be ≥ 0.");
        if (DataLoaderParallelism < 1) throw Bad(nameof(DataLoaderParallelism), $"is {DataLoaderParallelism}; it must be at least 1.");
        if (DataLoaderPrefetchBatches < 0) throw Bad(nameof(DataLoaderPrefetchBatches), $"is {DataLoaderPrefetchBatches}; it must be 0 or more.");
        if (TrainingRecipe.CheckValidationEveryEpochs(ValidationEveryEpochs) is { } every) throw Bad(nameof(ValidationEveryEpochs), $"is {ValidationEveryEpochs}; {every}");
        if (!Enum.IsDefined(ValidationProtocol)) throw Bad(nameof(ValidationProtocol), $"is {(int)ValidationProtocol}; expected Reference or Native.");
        if (!Enum.IsDefined(Keep)) throw Bad(nameof(Keep), $"is {(int)Keep}; expected Last or Best.");
        if (Keep == MtLoraKeep.Best && ValidationSet is null) throw Bad(nameof(Keep), "is Best, but no ValidationSet is set: the best epoch is chosen on the validation set (set one, or keep Last).");
        if (BestEpochTask is { } best && !Network.Tasks.Contains(best))
            throw Bad(nameof(BestEpochTask), $"is {best.Name}, which is not one of the trained tasks ({string.Join(", ", Network.Tasks.Select(t => t.Name))}).");
        if (!Enum.IsDefined(NonFiniteLoss)) throw Bad(nameof(NonFiniteLoss), $"is {(int)NonFiniteLoss}; expected Stop or SkipStep.");
        if (ValidationBaselines is null) throw Bad(nameof(ValidationBaselines), $"is null; use {nameof(SingleTaskBaselines)}.{nameof(SingleTaskBaselines.None)} for no Δm.");
        if (AugmentationDraws is null) throw Bad(nameof(AugmentationDraws), "is null; use AugmentationDraws.PascalContext (the default), AugmentationDraws.Nyud, Uniform(...) or Choice(...).");
        if (!Enum.IsDefined(AugmentationGeometry)) throw Bad(nameof(AugmentationGeometry), $"is {(int)AugmentationGeometry}; expected SinglePass or ReferenceTwoStep.");
        if (TrainingRecipe.CheckCheckpointEverySteps(CheckpointEverySteps) is { } checkpointEvery) throw Bad(nameof(CheckpointEverySteps), $"is {CheckpointEverySteps}; {checkpointEvery}");
        if (CheckpointEverySteps > 0 && string.IsNullOrWhiteSpace(CheckpointDirectory)) throw Bad(nameof(CheckpointEverySteps), $"is {CheckpointEverySteps} but no CheckpointDirectory is set.");
        if (TrainingRecipe.CheckKeepCheckpoints(KeepCheckpoints) is { } keep) throw Bad(nameof(KeepCheckpoints), $"is {KeepCheckpoints}; {keep}");
        if (ResumeFrom is not null && !Directory.Exists(ResumeFrom)) throw Bad(nameof(ResumeFrom), $"folder '{ResumeFrom}' does not exist.");
        var device = (Device ?? "").Trim().ToLowerInvariant();
        if (!(device is "cpu" or "cuda" or "auto" || (device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device[5..], out int n) && n >= 0)))
            throw Bad(nameof(Device), $"is '{Device}'; expected cpu, cuda, cuda:N or auto.");
        if (UseBFloat16 && device == "cpu") throw Bad(nameof(UseBFloat16), "bfloat16 needs a CUDA device, but Device is 'cpu'.");
        if (InferenceBatchSize < 1) throw Bad(nameof(InferenceBatchSize), $"is {InferenceBatchSize}; it must be at least 1.");
        if (TrainingRecipe.CheckProgressEverySteps(ProgressEverySteps) is { } progress) throw Bad(nameof(ProgressEverySteps), $"is {ProgressEverySteps}; {progress}");
    }
}

/// <summary>A validation result reported during or after MTLoRA training.</summary>
/// <param name="Epoch">Epochs completed when the validation ran.</param>
/// <param name="Step">Optimizer steps completed.</param>
/// <param name="Metrics">The reference's metrics on <see cref="MtLoraOptions.ValidationSet"/>, and Δm.</param>
public sealed record MtLoraValidationReport(int Epoch, long Step, MultiTaskMetrics Metrics);
