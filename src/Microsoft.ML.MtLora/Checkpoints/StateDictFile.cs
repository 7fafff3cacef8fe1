using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>Loads a state dict (name → tensor) from a weights file, choosing the reader by content.</summary>
public static class StateDictFile
{
    /// <summary>Loads every tensor of a weights file onto the CPU.</summary>
    /// <param name="path">A <c>.safetensors</c> file.</param>
    /// <returns>The tensors by name. The caller owns them.</returns>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return SafeTensors.Load(path);
        throw new NotSupportedException($"'{path}': only .safetensors weights can be read so far.");
    }
}
