using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

/// <summary>
/// Reads a weights file to start from or to rebuild on: a Microsoft Swin ImageNet checkpoint (checked against the network's
/// architecture, bias tables resized to its window, keys renamed to the MTLoRA backbone) or a reference MTLoRA checkpoint /
/// state dict (keys kept), told apart by their keys.
/// </summary>
internal static class PretrainedWeights
{
    private static readonly string[] MtLoraModules = ["backbone.", "downsampler.", "decoders."];

    /// <summary>The file's tensors under the network's names; <paramref name="isMtLoraCheckpoint"/> says which kind it was.</summary>
    /// <param name="path">A .pth/.pt or .safetensors file.</param>
    /// <param name="options">The network the tensors are for (which layers are LoRA-wrapped).</param>
    /// <param name="isMtLoraCheckpoint">True for a full MTLoRA state dict, false for a Swin backbone checkpoint.</param>
    /// <returns>Tensors the caller owns.</returns>
    public static Dictionary<string, Tensor> Load(string path, MtLoraNetworkOptions options, out bool isMtLoraCheckpoint)
    {
        var raw = StateDictFile.Load(path);
        try
        {
            var keys = raw.Keys.Select(k => k.StartsWith(StateDictFile.DataParallelPrefix, StringComparison.Ordinal) ? k[StateDictFile.DataParallelPrefix.Length..] : k);
            isMtLoraCheckpoint = keys.Any(k => MtLoraModules.Any(m => k.StartsWith(m, StringComparison.Ordinal)));
            if (isMtLoraCheckpoint)
                return SwinCheckpointMapping.NormalizeMtLoraCheckpoint(raw);
            bool lora = options.UsesLora;
            var layout = new SwinLoraLayout
            {
                Qkv = lora && options.LoraOn.Qkv,
                Proj = lora && options.LoraOn.Proj,
                Fc1 = lora && options.LoraOn.Fc1,
                Fc2 = lora && options.LoraOn.Fc2,
                Reduction = lora && options.MtLoraPlus,
            };
            // Keys outside the Swin-V1 layout are refused first; then the architecture is checked and the bias tables resized
            // to the network's window in place, before the keys are renamed.
            SwinCheckpointMapping.MicrosoftSwinToBackbone(raw, layout);
            MicrosoftSwinCheckpoint.FitToNetwork(raw, options);
            var mapped = SwinCheckpointMapping.MicrosoftSwinToBackbone(raw, layout);
            foreach (var k in mapped.IgnoredKeys) raw[k].Dispose();
            return mapped.Tensors;
        }
        catch (ArgumentException e)
        {
            foreach (var t in raw.Values) t.Dispose();
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }
}
