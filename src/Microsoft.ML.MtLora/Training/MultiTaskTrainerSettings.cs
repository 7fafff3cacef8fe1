using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// Everything <see cref="MultiTaskTrainer"/> needs besides the network and the data. The defaults and the rules come from
/// <see cref="TrainingRecipe"/> (the paper's recipe at batch 32, reference-spec §6); the ML.NET options class maps onto this record.
/// </summary>
internal sealed record MultiTaskTrainerSettings
{
    /// <summary>Epochs to train; with the batch source's batches per epoch it sets the schedule's length (300).</summary>
    public int Epochs { get; init; } = TrainingRecipe.Paper.Epochs;

    /// <summary>Stop after this many global steps (null: train all epochs). The schedule still spans all epochs, so a run
    /// stopped at step k and resumed continues the same curve.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>Peak learning rate after warmup (5e-4·32/512 = 3.125e-5).</summary>
    public double BaseLearningRate { get; init; } = TrainingRecipe.PeakLearningRate(TrainingRecipe.Paper.BatchSize);

    /// <summary>Learning rate at step 0 (5e-7·32/512 = 3.125e-8).</summary>
    public double WarmupLearningRate { get; init; } = TrainingRecipe.WarmupLearningRate(TrainingRecipe.Paper.BatchSize);

    /// <summary>Floor of the cosine (5e-6·32/512 = 3.125e-7).</summary>
    public double MinLearningRate { get; init; } = TrainingRecipe.MinLearningRate(TrainingRecipe.Paper.BatchSize);

    /// <summary>Warmup length in epochs (20), used when <see cref="WarmupSteps"/> is null.</summary>
    public int WarmupEpochs { get; init; } = TrainingRecipe.Paper.WarmupEpochs;

    /// <summary>Warmup length in steps; overrides <see cref="WarmupEpochs"/>.</summary>
    public long? WarmupSteps { get; init; }

    /// <summary>AdamW weight decay of the decayed group (0.05).</summary>
    public double WeightDecay { get; init; } = TrainingRecipe.Paper.WeightDecay;

    /// <summary>AdamW β1 (0.9).</summary>
    public double Beta1 { get; init; } = TrainingRecipe.Paper.Beta1;

    /// <summary>AdamW β2 (0.999).</summary>
    public double Beta2 { get; init; } = TrainingRecipe.Paper.Beta2;

    /// <summary>AdamW ε (1e-8).</summary>
    public double Epsilon { get; init; } = TrainingRecipe.Paper.Epsilon;

    /// <summary>
    /// Micro-batches per optimizer step (1): each batch of the source is split into this many equal parts, their gradients
    /// are added up (each loss divided by the count) and one AdamW step follows; the learning rate stays the one for the
    /// whole batch, as the reference scales it (see <see cref="MultiTaskTrainer"/>). The batch size must be a multiple.
    /// </summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Global L2 gradient-norm clip (5.0); null or ≤ 0 disables clipping.</summary>
    public double? ClipGradientNorm { get; init; } = TrainingRecipe.Paper.GradientClipNorm;

    /// <summary>Loss weights by task name; missing tasks take the reference's 1/2/5/10.</summary>
    public IReadOnlyDictionary<string, float>? LossWeights { get; init; }

    /// <summary>The descriptors of the network's tasks (their kinds choose the losses); null: the outputs are PASCAL tasks, by name.</summary>
    public IReadOnlyList<DenseTaskDescriptor>? Tasks { get; init; }

    /// <summary>The device to train on (CPU by default). The model is moved there.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// Run the forward and backward passes in bfloat16 with float32 master weights (CUDA only). Refused on CPU, where
    /// bfloat16 kernels are slower than float32.
    /// </summary>
    public bool UseBFloat16 { get; init; }

    /// <summary>Seed of the per-step random state (dropout, drop-path): step k runs with a seed derived from (Seed, k).</summary>
    public int Seed { get; init; }

    /// <summary>Folder for checkpoints (null: none are written).</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many global steps (0: only at the end and on cancellation).</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>How many of the most recent checkpoints to keep in <see cref="CheckpointDirectory"/> (2).</summary>
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Write a checkpoint when training is cancelled (true).</summary>
    public bool CheckpointOnCancel { get; init; } = true;

    /// <summary>Resume from this checkpoint: a checkpoint folder, or a checkpoint root whose latest checkpoint is used.</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>
    /// The settings that decide what the run's data and steps look like (tasks, image size, batch size, seed, augmentation…;
    /// <see cref="Training.RunSettings.Of"/>): recorded in every checkpoint, and compared on resume, where a change that would
    /// not continue the same run is refused and a legitimate one is a <see cref="Warning"/>. Null: none are recorded or
    /// compared (the seed and the batches per epoch are checked in any case).
    /// </summary>
    public IReadOnlyList<RunSetting>? RunSettings { get; init; }

    /// <summary>Send a progress report every this many steps (10), and after the last step.</summary>
    public int ProgressEverySteps { get; init; } = 10;

    /// <summary>Receives progress reports (on the training thread).</summary>
    public IProgress<TrainingProgress>? Progress { get; init; }

    /// <summary>Called between steps; the ML.NET host's <c>CheckAlive</c>, which throws when the host is shutting down.</summary>
    public Action? CheckAlive { get; init; }

    /// <summary>
    /// Receives warnings: a checkpoint that could not be written (full disk, no permission; training goes on then, so an
    /// output failure never costs the model being trained), and what a resume found of the best validation before it
    /// (none, one measured by another criterion, or one written by an older version that does not record its criterion).
    /// </summary>
    public Action<string>? Warning { get; init; }

    /// <summary>
    /// Called in evaluation mode (the live network, no copy) after every <see cref="ValidateEveryEpochs"/>-th completed epoch
    /// and once at the end of the run; receives (epochs completed, global step) and returns a score where higher is better
    /// (null or NaN: not comparable). The trainer keeps the best-scoring weights (<see cref="KeepBest"/>, <c>best/</c> under
    /// <see cref="CheckpointDirectory"/>). Null: no validation.
    /// </summary>
    public Func<int, long, double?>? Validation { get; init; }

    /// <summary>
    /// How <see cref="Validation"/> computes its score, in words that change whenever the score would (e.g. "Δm; protocol
    /// Reference; tasks …; baselines …"). It is stored with the best weights (<c>best/model.safetensors</c>), and a resumed
    /// run compares its scores with the stored best only when the two criteria are the same text (null counts as empty).
    /// </summary>
    public string? ValidationCriterion { get; init; }

    /// <summary>Validate every this many epochs (the reference's EVAL_FREQ, 5), and at the end; 0: only at the end.</summary>
    public int ValidateEveryEpochs { get; init; } = TrainingRecipe.Paper.ValidationEveryEpochs;

    /// <summary>Keep a copy of the best-scoring weights in memory (<see cref="MultiTaskTrainer.TakeBestState"/>).</summary>
    public bool KeepBest { get; init; }

    /// <summary>What a NaN or infinite loss does (<see cref="NonFiniteLossPolicy.Stop"/>).</summary>
    public NonFiniteLossPolicy NonFiniteLoss { get; init; } = NonFiniteLossPolicy.Stop;

    /// <summary>Checks the values and says which one is wrong.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the message names the setting.</exception>
    public void Validate()
    {
        static ArgumentOutOfRangeException Bad(string name, object? value, string problem) => new(name, value, $"{name} is {value}; {problem}");
        if (TrainingRecipe.CheckEpochs(Epochs) is { } epochs) throw Bad(nameof(Epochs), Epochs, epochs);
        if (TrainingRecipe.CheckMaxSteps(MaxSteps) is { } maxSteps) throw Bad(nameof(MaxSteps), MaxSteps, maxSteps);
        if (TrainingRecipe.CheckWarmupEpochs(WarmupEpochs, Epochs) is { } warmup) throw Bad(nameof(WarmupEpochs), WarmupEpochs, warmup);
        if (WarmupSteps is < 0) throw new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must be ≥ 0.");
        if (TrainingRecipe.CheckWeightDecay(WeightDecay) is { } decay) throw Bad(nameof(WeightDecay), WeightDecay, decay);
        if (!(Beta1 is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "Beta1 must be in [0, 1).");
        if (!(Beta2 is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "Beta2 must be in [0, 1).");
        if (!(Epsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be ≥ 0.");
        if (TrainingRecipe.CheckAccumulationSteps(AccumulationSteps) is { } accumulation) throw Bad(nameof(AccumulationSteps), AccumulationSteps, accumulation);
        if (TrainingRecipe.CheckCheckpointEverySteps(CheckpointEverySteps) is { } checkpointEvery) throw Bad(nameof(CheckpointEverySteps), CheckpointEverySteps, checkpointEvery);
        if (TrainingRecipe.CheckKeepCheckpoints(KeepCheckpoints) is { } keep) throw Bad(nameof(KeepCheckpoints), KeepCheckpoints, keep);
        if (TrainingRecipe.CheckProgressEverySteps(ProgressEverySteps) is { } progress) throw Bad(nameof(ProgressEverySteps), ProgressEverySteps, progress);
        if (TrainingRecipe.CheckValidationEveryEpochs(ValidateEveryEpochs) is { } every) throw Bad(nameof(ValidateEveryEpochs), ValidateEveryEpochs, every);
        if (!Enum.IsDefined(NonFiniteLoss)) throw new ArgumentOutOfRangeException(nameof(NonFiniteLoss), NonFiniteLoss, "NonFiniteLoss must be Stop or SkipStep.");
        if (CheckpointEverySteps > 0 && CheckpointDirectory is null)
            throw new ArgumentException($"CheckpointEverySteps is {CheckpointEverySteps} but no CheckpointDirectory is set.", nameof(CheckpointDirectory));
    }
}
