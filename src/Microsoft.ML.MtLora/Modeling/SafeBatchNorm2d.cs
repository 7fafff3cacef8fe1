using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// <c>torch.nn.BatchNorm2d</c> (affine, tracking running statistics) without TorchSharp's implicit Scalar: TorchSharp 0.107's
/// <c>BatchNorm.forward</c> increments <c>num_batches_tracked</c> with <c>add_(1)</c> in training mode, an implicit Scalar
/// freed by the finalizer (a race with any thread that triggers a GC; <c>Runtime/TorchScalars.cs</c>, eng/ScalarAudit/README.md).
/// TorchSharp's BatchNorm types and factories are banned (eng/BannedSymbols.txt); use this one.
/// </summary>
/// <remarks>
/// It derives from TorchSharp's <see cref="NormBase"/>, so the parameters and buffers, their state-dict names (<c>weight</c>,
/// <c>bias</c>, <c>running_mean</c>, <c>running_var</c>, <c>num_batches_tracked</c>), their initial values and the dtype and
/// device conversions are TorchSharp's BatchNorm2d's. The forward is PyTorch's <c>_BatchNorm.forward</c>: in training mode
/// count the batch and normalise with the batch statistics, updating the running averages with <c>momentum</c>; in
/// evaluation mode normalise with the running statistics. PyTorch's cumulative average (momentum None) is not offered: its
/// factor 1 / num_batches_tracked would be a host read in every training step (Training/StepSyncTests).
/// </remarks>
internal sealed class SafeBatchNorm2d : NormBase
{
    /// <summary>Creates the layer: γ = 1, β = 0, running mean 0, running variance 1, no batches counted.</summary>
    /// <param name="features">The number of channels C.</param>
    /// <param name="eps">Added to the variance (PyTorch's default 1e-5).</param>
    /// <param name="momentum">The running-average factor (PyTorch's default 0.1).</param>
    /// <param name="device">Where the parameters and buffers live.</param>
    /// <param name="dtype">Their element type (float32 when null).</param>
    public SafeBatchNorm2d(long features, double eps = 1e-5, double momentum = 0.1, Device? device = null, ScalarType? dtype = null)
        : base(features, eps, momentum, affine: true, track_running_stats: true, device, dtype, "BatchNorm2d")
    {
    }

    /// <summary>Normalises a (N, C, H, W) batch.</summary>
    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);
        return Normalize(input);
    }

    /// <summary>The forward on any (N, C, *) input, for callers that keep the channels last in a (N·H·W, C) matrix.</summary>
    public Tensor Normalize(Tensor input)
    {
        double factor = momentum ?? throw new InvalidOperationException("SafeBatchNorm2d needs a momentum: the cumulative average (null) is not supported.");
        if (training && num_batches_tracked is { } tracked)
        {
            using (no_grad())
                tracked.add_(TorchScalars.One, TorchScalars.One);
        }
        return nn.functional.batch_norm(input, running_mean, running_var, weight, bias, training, factor, eps);
    }

    /// <inheritdoc/>
    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.ndim != 4)
            throw new ArgumentException($"expected a 4D input (N, C, H, W), got {input.ndim}D");
    }
}
