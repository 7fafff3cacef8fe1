using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>The batch checks and copies that the one-channel meters scored on the CPU (<see cref="DepthMeter"/>,
/// <see cref="EdgeMeter"/>) share.</summary>
internal static class SingleChannelBatch
{
    /// <summary>Checks outputs of shape (B, 1, H, W) and a target with B·H·W values; returns B and H·W.</summary>
    /// <exception cref="ArgumentException">The shapes disagree (the message says what was expected).</exception>
    public static (long Batch, long Pixels) Check(Tensor output, Tensor target, string what, string outputParameter)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(target);
        if (output.dim() != 4 || output.size(1) != 1)
            throw new ArgumentException($"Expected {what} of shape (B, 1, H, W) but got ({string.Join(", ", output.shape)}).", outputParameter);
        long b = output.size(0), n = output.size(2) * output.size(3);
        if (target.numel() != b * n || target.size(0) != b)
            throw new ArgumentException($"The target of shape ({string.Join(", ", target.shape)}) does not match the outputs ({string.Join(", ", output.shape)}).", nameof(target));
        return (b, n);
    }

    /// <summary>The values of a tensor as float32, row-major, on the CPU (call inside a dispose scope).</summary>
    public static float[] ToFloats(Tensor t) => t.to(ScalarType.Float32).reshape(-1).cpu().data<float>().ToArray();
}
