namespace Microsoft.ML.MtLora.Training;

/// <summary>What training does when a step's loss is NaN or infinite.</summary>
public enum NonFiniteLossPolicy
{
    /// <summary>
    /// Stop with <see cref="NonFiniteLossException"/>; no weight was moved by that step. With a checkpoint folder, a checkpoint
    /// of the weights before that step is written first (the last good one). The default in float32, where a non-finite loss
    /// means diverged training or bad labels.
    /// </summary>
    Stop,

    /// <summary>
    /// Skip the step (no weight moves; the learning-rate schedule still advances, as the reference's fp16 GradScaler does when
    /// it finds infinite gradients) and go on; the number of skipped steps is reported.
    /// </summary>
    SkipStep,
}
