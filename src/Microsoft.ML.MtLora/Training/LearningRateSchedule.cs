namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The reference's learning-rate schedule as a pure function of the global iteration: a linear warmup from the warmup
/// rate to the base rate, then one cosine half-period down to the minimum rate (timm 0.9.2 <c>CosineLRScheduler</c>,
/// per iteration, <c>warmup_prefix=True</c>, <c>cycle_limit=1</c>; reference-spec §6).
/// </summary>
/// <remarks>
/// <para>With <c>W</c> warmup steps and <c>T</c> total steps, for the global iteration <c>t</c>:</para>
/// <list type="bullet">
/// <item><c>t &lt; W</c>: <c>lr = warmup + t·(base − warmup)/W</c>;</item>
/// <item><c>W ≤ t &lt; T</c>: with <c>τ = t − W</c>, <c>lr = min + ½·(base − min)·(1 + cos(π·τ/(T − W)))</c>;</item>
/// <item><c>t ≥ T</c>: <c>lr = min</c>.</item>
/// </list>
/// <para>
/// The reference calls <c>step_update(t)</c> after optimizer step <c>t</c>, so step 0 runs with the warmup rate set at
/// construction and step <c>k ≥ 1</c> runs with <c>lr(k − 1)</c>. <see cref="ForStep(long)"/> gives that rate directly.
/// </para>
/// </remarks>
public sealed class LearningRateSchedule
{
    /// <summary>The reference's base rate per 512 images (<c>TRAIN.BASE_LR</c>), scaled linearly with the batch size.</summary>
    public const double ReferenceBaseRatePer512 = 5e-4;

    /// <summary>The reference's warmup rate per 512 images (<c>TRAIN.WARMUP_LR</c>).</summary>
    public const double ReferenceWarmupRatePer512 = 5e-7;

    /// <summary>The reference's minimum rate per 512 images (<c>TRAIN.MIN_LR</c>).</summary>
    public const double ReferenceMinRatePer512 = 5e-6;

    /// <summary>Creates a schedule.</summary>
    /// <param name="baseRate">The rate reached at the end of the warmup.</param>
    /// <param name="warmupRate">The rate at iteration 0.</param>
    /// <param name="minRate">The rate at the end of the cosine and after it.</param>
    /// <param name="warmupSteps">Iterations of linear warmup (0 for none).</param>
    /// <param name="totalSteps">Iterations of warmup plus cosine; must exceed <paramref name="warmupSteps"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">A rate is negative or not finite, or the step counts are inconsistent.</exception>
    public LearningRateSchedule(double baseRate, double warmupRate, double minRate, long warmupSteps, long totalSteps)
    {
        CheckRate(baseRate, nameof(baseRate));
        CheckRate(warmupRate, nameof(warmupRate));
        CheckRate(minRate, nameof(minRate));
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "Warmup steps must be ≥ 0.");
        if (totalSteps <= warmupSteps)
            throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"Total steps must exceed the warmup steps ({warmupSteps}).");
        BaseRate = baseRate;
        WarmupRate = warmupRate;
        MinRate = minRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>The rate reached at the end of the warmup.</summary>
    public double BaseRate { get; }

    /// <summary>The rate at iteration 0.</summary>
    public double WarmupRate { get; }

    /// <summary>The floor of the cosine.</summary>
    public double MinRate { get; }

    /// <summary>Iterations of linear warmup.</summary>
    public long WarmupSteps { get; }

    /// <summary>Iterations of warmup plus cosine.</summary>
    public long TotalSteps { get; }

    /// <summary>
    /// The reference recipe for a batch size: base 5e-4·batch/512, warmup 5e-7·batch/512, min 5e-6·batch/512, warmup over
    /// <paramref name="warmupEpochs"/> epochs, cosine over the rest of <paramref name="epochs"/>. At batch 32 with 156 steps
    /// per epoch: 3.125e-5, 3.125e-8, 3.125e-7, 3,120 warmup steps, 46,800 steps in all.
    /// </summary>
    /// <param name="batchSize">Images per optimizer step (all devices together).</param>
    /// <param name="stepsPerEpoch">Optimizer steps per epoch.</param>
    /// <param name="epochs">Epochs of training (300 in the reference).</param>
    /// <param name="warmupEpochs">Epochs of warmup (20 in the reference).</param>
    /// <returns>The schedule.</returns>
    public static LearningRateSchedule Reference(int batchSize, long stepsPerEpoch, int epochs = 300, int warmupEpochs = 20)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be ≥ 1.");
        if (stepsPerEpoch <= 0) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "Steps per epoch must be ≥ 1.");
        double scale = batchSize / 512.0;
        return new LearningRateSchedule(ReferenceBaseRatePer512 * scale, ReferenceWarmupRatePer512 * scale, ReferenceMinRatePer512 * scale,
            (long)warmupEpochs * stepsPerEpoch, (long)epochs * stepsPerEpoch);
    }

    /// <summary>The rate after <c>step_update(t)</c>, i.e. timm's <c>_get_lr(t)</c>.</summary>
    /// <param name="t">The global iteration (≥ 0).</param>
    /// <returns>The learning rate.</returns>
    public double At(long t)
    {
        if (t < 0) throw new ArgumentOutOfRangeException(nameof(t), t, "The iteration must be ≥ 0.");
        if (t < WarmupSteps) return WarmupRate + t * ((BaseRate - WarmupRate) / WarmupSteps);
        long tau = t - WarmupSteps, cycle = TotalSteps - WarmupSteps;
        if (tau >= cycle) return MinRate;
        return MinRate + 0.5 * (BaseRate - MinRate) * (1 + Math.Cos(Math.PI * tau / cycle));
    }

    /// <summary>
    /// The rate the reference's optimizer actually uses for optimizer step <paramref name="step"/> (0-based): the
    /// scheduler is updated after each step, so step 0 uses <c>At(0)</c> and step k ≥ 1 uses <c>At(k − 1)</c>.
    /// </summary>
    /// <param name="step">The 0-based optimizer step.</param>
    /// <returns>The learning rate.</returns>
    public double ForStep(long step) => At(Math.Max(step - 1, 0));

    private static void CheckRate(double rate, string name)
    {
        if (!double.IsFinite(rate) || rate < 0) throw new ArgumentOutOfRangeException(name, rate, "A learning rate must be finite and ≥ 0.");
    }
}
