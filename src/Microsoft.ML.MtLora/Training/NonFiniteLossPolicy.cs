namespace Microsoft.ML.MtLora.Training;

/// <summary>What training does when a step's loss is NaN or infinite.</summary>
public enum NonFiniteLossPolicy
{
    /// <summary>
    /// Stop with <see cref="NonFiniteLossException"/>; that step moved no weight, and the BatchNorm running statistics its forward
    /// pass updated are put back, so the network is exactly as before it. With a checkpoint folder, a checkpoint
    /// of the weights before that step is written first (the last good one). The default in float32, where a non-finite loss
    /// means diverged training or bad labels.
    /// </summary>
    Stop,

    /// <summary>
    /// Skip the step and go on; the number of skipped steps is reported. No weight moves and the BatchNorm running statistics
    /// its forward pass updated are put back (PyTorch's GradScaler keeps those), so the network is exactly as before the step;
    /// the learning-rate schedule still advances, as the reference's fp16 GradScaler does when it finds infinite gradients.
    /// </summary>
    SkipStep,
}
