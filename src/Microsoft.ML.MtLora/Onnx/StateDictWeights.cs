using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// The exporter's view of a state dict: tensors fetched by reference name with their shape checked, every key that is
/// read or knowingly skipped remembered, so that <see cref="ThrowOnUnused"/> can refuse a key no part of the graph reads
/// (a module the exporter does not know) before anything is written.
/// </summary>
internal sealed class StateDictWeights
{
    private readonly IReadOnlyDictionary<string, Tensor> _stateDict;
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);

    public StateDictWeights(IReadOnlyDictionary<string, Tensor> stateDict) => _stateDict = stateDict;

    /// <summary>Whether the state dict holds <paramref name="key"/>.</summary>
    public bool Has(string key) => _stateDict.ContainsKey(key);

    /// <summary>Marks buffers the graph rebuilds rather than reads (attention masks, relative-position indices, BN step counts).</summary>
    public void Skip(string key) => _seen.Add(key);

    /// <summary>The tensor <paramref name="key"/> as float32 on the CPU (a new tensor: dispose it, or let a dispose scope do it).</summary>
    /// <exception cref="InvalidDataException">The key is missing or its shape differs; the message names the key and both shapes.</exception>
    public Tensor Get(string key, params long[] shape)
    {
        if (!_stateDict.TryGetValue(key, out var t))
            throw new InvalidDataException($"the state dict has no '{key}', which the network configuration needs (module '{Module(key)}').");
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidDataException($"'{key}' has shape [{string.Join(", ", t.shape)}]; the network configuration expects [{string.Join(", ", shape)}].");
        if (!t.is_floating_point())
            throw new InvalidDataException($"'{key}' holds {t.dtype} values; a floating-point tensor was expected.");
        _seen.Add(key);
        return t.to(ScalarType.Float32).cpu().contiguous().clone();
    }

    /// <summary>The tensor <paramref name="key"/> as a float array (row-major).</summary>
    public float[] Floats(string key, params long[] shape)
    {
        using var t = Get(key, shape);
        return ToArray(t);
    }

    /// <summary>A float32 CPU tensor's values, row-major.</summary>
    public static float[] ToArray(Tensor t)
    {
        using var c = t.to(ScalarType.Float32).cpu().contiguous();
        return c.data<float>().ToArray();
    }

    /// <summary>Refuses keys that no part of the graph read: modules the exporter does not support.</summary>
    /// <exception cref="NotSupportedException">Some keys were not read; the message names their modules.</exception>
    public void ThrowOnUnused()
    {
        var unused = _stateDict.Keys.Where(k => !_seen.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unused.Count == 0) return;
        var modules = unused.Select(Module).Distinct().ToList();
        throw new NotSupportedException(
            $"ONNX export does not support module{(modules.Count > 1 ? "s" : "")} {string.Join(", ", modules.Take(8).Select(m => $"'{m}'"))}" +
            $"{(modules.Count > 8 ? $" and {modules.Count - 8} more" : "")}: the state dict holds {unused.Count} tensor(s) the exported graph would not use " +
            $"(e.g. '{unused[0]}'), so the ONNX model would not compute what this network computes. Nothing was written.");
    }

    /// <summary>The module a key belongs to: the key without its last dotted part.</summary>
    public static string Module(string key)
    {
        int dot = key.LastIndexOf('.');
        return dot > 0 ? key[..dot] : key;
    }
}
