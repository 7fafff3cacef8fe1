using System.Buffers.Binary;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>Loads a state dict (name → tensor) from a weights file, choosing the reader by content.</summary>
public static class StateDictFile
{
    /// <summary>The prefix <c>torch.nn.DataParallel</c> / <c>DistributedDataParallel</c> adds to every key.</summary>
    public const string DataParallelPrefix = "module.";

    /// <summary>
    /// Loads every tensor of a weights file onto the CPU: a <c>torch.save</c> checkpoint (zip, recognised by its
    /// <c>PK</c> signature) read by <see cref="PyTorchCheckpoint"/>, or a safetensors file. A <c>{"model": state_dict, ...}</c>
    /// wrapper is unwrapped (other entries such as <c>epoch</c>, <c>optimizer</c> or <c>config</c> are ignored), and a
    /// <c>module.</c> prefix on every key is removed (<see cref="RemoveDataParallelPrefix"/>).
    /// </summary>
    /// <remarks>
    /// PyTorch checkpoints are read with <see cref="CheckpointReadOptions.ReferenceTraining"/>: as strict as
    /// <c>torch.load(weights_only=True)</c>, except that the <c>yacs.config.CfgNode</c> the reference MTLoRA training
    /// script stores under <c>"config"</c> is read as inert data, so its checkpoints load. Use the overload with options to
    /// be stricter.
    /// </remarks>
    /// <param name="path">A <c>.pth</c>/<c>.pt</c> checkpoint or a <c>.safetensors</c> file (the extension is not used).</param>
    /// <returns>The tensors by name, in file order. The caller owns (and disposes) them; they are not registered in any dispose scope.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is neither format, it is truncated or corrupt, or its pickle asks for
    /// something a weights-only load refuses; the message names the file (and the refused global).</exception>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, CheckpointReadOptions.ReferenceTraining);

    /// <summary>Loads a state dict as <see cref="Load(string)"/> does, reading PyTorch checkpoints with the given options.</summary>
    /// <param name="path">A <c>.pth</c>/<c>.pt</c> checkpoint or a <c>.safetensors</c> file.</param>
    /// <param name="options">What the pickle reader accepts beyond the weights-only allow-list.</param>
    /// <returns>The tensors by name, in file order. The caller owns them.</returns>
    public static Dictionary<string, Tensor> Load(string path, CheckpointReadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        var format = Detect(path);
        Dictionary<string, Tensor> raw;
        if (format == WeightsFormat.PyTorch)
        {
            using var ckpt = PyTorchCheckpoint.Load(path, options);
            raw = ckpt.TakeStateDict();
        }
        else
        {
            raw = SafeTensors.Load(path);
        }
        try
        {
            return RemoveDataParallelPrefix(raw, path);
        }
        catch
        {
            foreach (var t in raw.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Removes the <c>module.</c> prefix that (Distributed)DataParallel puts on every key, when every key has it;
    /// otherwise returns the keys unchanged. The tensors are the same objects (not copies).
    /// </summary>
    /// <param name="stateDict">The state dict.</param>
    /// <param name="source">A name for error messages (the file).</param>
    /// <returns>A new dictionary in the same order.</returns>
    /// <exception cref="InvalidDataException">Stripping would make two keys equal.</exception>
    public static Dictionary<string, Tensor> RemoveDataParallelPrefix(IReadOnlyDictionary<string, Tensor> stateDict, string source = "state dict")
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        bool strip = stateDict.Count > 0 && stateDict.Keys.All(k => k.StartsWith(DataParallelPrefix, StringComparison.Ordinal));
        var result = new Dictionary<string, Tensor>(stateDict.Count, StringComparer.Ordinal);
        foreach (var (k, v) in stateDict)
        {
            string key = strip ? k[DataParallelPrefix.Length..] : k;
            if (!result.TryAdd(key, v)) throw new InvalidDataException($"'{source}': key '{k}' becomes '{key}' without its '{DataParallelPrefix}' prefix, which another key already is.");
        }
        return result;
    }

    /// <summary>The two weights formats this library reads.</summary>
    internal enum WeightsFormat { PyTorch, SafeTensors }

    /// <summary>Decides the format from the first bytes of the file.</summary>
    internal static WeightsFormat Detect(string path)
    {
        Span<byte> head = stackalloc byte[9];
        int n;
        using (var s = File.OpenRead(path)) n = s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n >= 2 && head[0] == (byte)'P' && head[1] == (byte)'K') return WeightsFormat.PyTorch;
        // Raw pickles (legacy torch.save, plain pickle.dump) start with PROTO; PyTorchCheckpoint explains why they are refused.
        if (n >= 1 && head[0] == 0x80) return WeightsFormat.PyTorch;
        // safetensors: an 8-byte little-endian header length, then the JSON header.
        if (n == 9 && head[8] == (byte)'{' && BinaryPrimitives.ReadInt64LittleEndian(head) > 1) return WeightsFormat.SafeTensors;
        throw new InvalidDataException($"'{path}' is neither a torch.save checkpoint (zip) nor a safetensors file.");
    }
}
