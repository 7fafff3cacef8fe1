namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The training recipe in one place: its values (<see cref="Paper"/>: the paper's main setting, the reference's recipe
/// for PASCAL-Context, docs/mtlora-reference.md §6) and the rules every value must follow. <see cref="MtLoraOptions"/> takes
/// its defaults from <see cref="Paper"/>, and it and the trainer's settings check their values with the same rules, so the
/// two can neither drift apart nor disagree on what is valid.
/// </summary>
public sealed record TrainingRecipe
{
    /// <summary>
    /// The paper's main setting (scale-lab/MTLoRA configs/mtlora/tiny_448, main.py, config.py): 300 epochs with 20 of linear
    /// warmup, batch 32 with the learning rate 5e-4 × batch / 512, AdamW (β 0.9/0.999, ε 1e-8, weight decay 0.05), gradient
    /// clipping at 5, validation every 5 epochs (EVAL_FREQ).
    /// </summary>
    public static TrainingRecipe Paper { get; } = new();

    /// <summary>Training epochs (300).</summary>
    public int Epochs { get; init; } = 300;

    /// <summary>Epochs of linear warmup (20).</summary>
    public int WarmupEpochs { get; init; } = 20;

    /// <summary>Images per optimizer step (32).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>AdamW weight decay of the decayed parameter group (0.05).</summary>
    public double WeightDecay { get; init; } = 0.05;

    /// <summary>AdamW β1 (0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW β2 (0.999).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>AdamW ε (1e-8).</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Global L2 gradient-norm clip (5); null for none.</summary>
    public double? GradientClipNorm { get; init; } = 5.0;

    /// <summary>Validate every this many epochs, and at the end (5, the reference's EVAL_FREQ).</summary>
    public int ValidationEveryEpochs { get; init; } = 5;

    /// <summary>The reference's peak learning rate for a batch: 5e-4 × <paramref name="batchSize"/> / 512.</summary>
    /// <param name="batchSize">Images per optimizer step.</param>
    /// <returns>The learning rate.</returns>
    public static double PeakLearningRate(int batchSize) => LearningRateSchedule.ReferenceBaseRatePer512 * batchSize / 512;

    /// <summary>The reference's warmup start for a batch: 5e-7 × <paramref name="batchSize"/> / 512.</summary>
    /// <param name="batchSize">Images per optimizer step.</param>
    /// <returns>The learning rate at step 0.</returns>
    public static double WarmupLearningRate(int batchSize) => LearningRateSchedule.ReferenceWarmupRatePer512 * batchSize / 512;

    /// <summary>The reference's cosine floor for a batch: 5e-6 × <paramref name="batchSize"/> / 512.</summary>
    /// <param name="batchSize">Images per optimizer step.</param>
    /// <returns>The last learning rate.</returns>
    public static double MinLearningRate(int batchSize) => LearningRateSchedule.ReferenceMinRatePer512 * batchSize / 512;

    // The rules: each returns null when the value is valid, else what is expected ("it must ..."), for the caller to word
    // with its own option name (MtLoraOptions.X, the trainer's settings, the CLI's --x).

    internal static string? CheckEpochs(int epochs) => epochs >= 1 ? null : "it must be at least 1.";

    internal static string? CheckMaxSteps(long? maxSteps) => maxSteps is null or >= 1 ? null : "it must be at least 1 when set.";

    internal static string? CheckWarmupEpochs(int warmupEpochs, int epochs) =>
        warmupEpochs >= 0 && warmupEpochs < epochs ? null : $"it must be in 0..{epochs - 1} (shorter than Epochs = {epochs}).";

    internal static string? CheckWeightDecay(double weightDecay) => weightDecay >= 0 && double.IsFinite(weightDecay) ? null : "it must be ≥ 0.";

    internal static string? CheckAccumulationSteps(int accumulationSteps) => accumulationSteps >= 1 ? null : "it must be at least 1.";

    internal static string? CheckValidationEveryEpochs(int every) => every >= 0 ? null : "it must be ≥ 0.";

    internal static string? CheckCheckpointEverySteps(int every) => every >= 0 ? null : "it must be ≥ 0.";

    internal static string? CheckKeepCheckpoints(int keep) => keep >= 1 ? null : "it must be at least 1.";

    internal static string? CheckProgressEverySteps(int every) => every >= 1 ? null : "it must be at least 1.";
}
