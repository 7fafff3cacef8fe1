using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>The bfloat16 compute policy shared by training (<c>MultiTaskTrainer</c>), inference and the benchmark.</summary>
internal static class Precision
{
    /// <summary>
    /// Casts a network to bfloat16 except its normalisation layers: LayerNorm, BatchNorm and GroupNorm keep float32
    /// parameters and statistics, and the network's modules normalise in float32 (<c>SwinInit.Normalize</c>, the decoder
    /// heads), so matmuls, convolutions, attention, GELU and the LoRA deltas run in bfloat16 and nothing needs a
    /// mixed-type kernel. Replaces the parameter objects of the cast modules.
    /// </summary>
    public static void CastForBFloat16(nn.Module model)
    {
        model.to(ScalarType.BFloat16);
        foreach (var (_, module) in model.named_modules())
            if (module is LayerNorm or NormBase or GroupNorm) // NormBase: BatchNorm (SafeBatchNorm2d) and InstanceNorm
                module.to(ScalarType.Float32);
    }

    /// <summary>The element type a network takes its images in: that of its first floating-point parameter.</summary>
    public static ScalarType InputType(nn.Module model) =>
        model.parameters().Select(p => p.dtype).FirstOrDefault(t => t is ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64, ScalarType.Float32);
}
