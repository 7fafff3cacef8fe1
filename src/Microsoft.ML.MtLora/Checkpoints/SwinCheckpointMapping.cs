using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// Which linear layers of the MTLoRA Swin backbone are LoRA-wrapped, i.e. hold their frozen weight as
/// <c>&lt;layer&gt;.linear.weight</c> (reference <c>MTLoRALinear</c>) rather than <c>&lt;layer&gt;.weight</c>,
/// and the prefix of the backbone in the model's state dict.
/// </summary>
public sealed class SwinLoraLayout
{
    /// <summary>MTLoRA: LoRA on <c>attn.qkv</c>, <c>attn.proj</c>, <c>mlp.fc1</c>, <c>mlp.fc2</c>; plain patch-merging reduction.</summary>
    public static SwinLoraLayout MtLora { get; } = new() { Qkv = true, Proj = true, Fc1 = true, Fc2 = true };

    /// <summary>MTLoRA+: as <see cref="MtLora"/>, and LoRA on the patch-merging <c>downsample.reduction</c> too.</summary>
    public static SwinLoraLayout MtLoraPlus { get; } = new() { Qkv = true, Proj = true, Fc1 = true, Fc2 = true, Reduction = true };

    /// <summary>No LoRA anywhere (full fine-tuning, decoders only): the plain Swin names under the prefix.</summary>
    public static SwinLoraLayout Plain { get; } = new();

    /// <summary>Whether <c>attn.qkv</c> is LoRA-wrapped (reference <c>MTLORA.QKV_ENABLED</c>).</summary>
    public bool Qkv { get; init; }

    /// <summary>Whether <c>attn.proj</c> is LoRA-wrapped (reference <c>MTLORA.PROJ_ENABLED</c>).</summary>
    public bool Proj { get; init; }

    /// <summary>Whether <c>mlp.fc1</c> is LoRA-wrapped (reference <c>MTLORA.FC1_ENABLED</c>).</summary>
    public bool Fc1 { get; init; }

    /// <summary>Whether <c>mlp.fc2</c> is LoRA-wrapped (reference <c>MTLORA.FC2_ENABLED</c>).</summary>
    public bool Fc2 { get; init; }

    /// <summary>Whether the patch-merging <c>downsample.reduction</c> is LoRA-wrapped (MTLoRA+, reference <c>MTLORA.DOWNSAMPLER_ENABLED</c>).</summary>
    public bool Reduction { get; init; }

    /// <summary>The prefix of the backbone's keys in the model's state dict (<c>backbone.</c>, as in the reference).</summary>
    public string Prefix { get; init; } = "backbone.";
}

/// <summary>The backbone tensors renamed from a Microsoft Swin checkpoint, and the keys left out.</summary>
public sealed class SwinCheckpointMappingResult
{
    internal SwinCheckpointMappingResult(Dictionary<string, Tensor> tensors, IReadOnlyList<string> ignored)
    {
        Tensors = tensors;
        IgnoredKeys = ignored;
    }

    /// <summary>
    /// The tensors under their MTLoRA names, in checkpoint order. They are the input's tensor objects, not copies: whoever
    /// owns the input dictionary owns them.
    /// </summary>
    public Dictionary<string, Tensor> Tensors { get; }

    /// <summary>
    /// Checkpoint keys not carried over: the classifier (<c>head.*</c>) and final norm (<c>norm.*</c>), which MTLoRA does not
    /// have, and the derived buffers <c>*attn_mask</c> and <c>*relative_position_index</c>, which the model rebuilds for its
    /// own resolution rather than trusting the file.
    /// </summary>
    public IReadOnlyList<string> IgnoredKeys { get; }
}

/// <summary>
/// Maps checkpoint keys onto the MTLoRA model's state-dict names (reference <c>utils.py::load_checkpoint</c> with
/// <c>backbone=True</c> and <c>models/lora.py::map_old_state_dict_weights</c>; spec §1.4).
/// </summary>
public static class SwinCheckpointMapping
{
    // The top-level modules of the reference MTLoRA model (models/swin_mtl.py): Swin backbone, per-task downsamplers, decoders.
    private static readonly string[] MtLoraModules = ["backbone.", "downsampler.", "decoders."];

    private static readonly Regex Kept = new(
        @"^(patch_embed\.(proj|norm)\.(weight|bias)"
        + @"|layers\.\d+\.blocks\.\d+\.(norm1|norm2)\.(weight|bias)"
        + @"|layers\.\d+\.blocks\.\d+\.attn\.relative_position_bias_table"
        + @"|layers\.\d+\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)"
        + @"|layers\.\d+\.downsample\.norm\.(weight|bias)"
        + @"|layers\.\d+\.downsample\.reduction\.weight)$",
        RegexOptions.CultureInvariant | RegexOptions.Compiled);

    private static readonly Regex Ignored = new(
        @"^(head\.(weight|bias)|norm\.(weight|bias)|layers\.\d+\.blocks\.\d+\.attn_mask|layers\.\d+\.blocks\.\d+\.attn\.relative_position_index)$",
        RegexOptions.CultureInvariant | RegexOptions.Compiled);

    /// <summary>
    /// Renames the keys of a Microsoft Swin-V1 ImageNet checkpoint (<c>swin_tiny_patch4_window7_224.pth</c> layout, already
    /// unwrapped from <c>"model"</c>, e.g. by <see cref="StateDictFile.Load(string)"/>) to the MTLoRA backbone's names: the
    /// layout's prefix is added, and <c>.linear</c> is inserted before the last part for the LoRA-wrapped layers
    /// (<c>layers.0.blocks.0.attn.qkv.weight</c> → <c>backbone.layers.0.blocks.0.attn.qkv.linear.weight</c>). A pure function:
    /// shapes are checked when the model loads the result.
    /// </summary>
    /// <param name="msSwin">The checkpoint's tensors by name.</param>
    /// <param name="layout">Which layers are LoRA-wrapped, and the backbone prefix.</param>
    /// <returns>The renamed tensors and the ignored keys.</returns>
    /// <exception cref="ArgumentException">A key is not part of the Swin-V1 layout (for example a checkpoint already in the
    /// MTLoRA layout, or a Swin-V2 one); the message lists the first such keys.</exception>
    public static SwinCheckpointMappingResult MicrosoftSwinToBackbone(IReadOnlyDictionary<string, Tensor> msSwin, SwinLoraLayout layout)
    {
        ArgumentNullException.ThrowIfNull(msSwin);
        ArgumentNullException.ThrowIfNull(layout);
        var tensors = new Dictionary<string, Tensor>(msSwin.Count, StringComparer.Ordinal);
        var ignored = new List<string>();
        var unknown = new List<string>();
        foreach (var (key, t) in msSwin)
        {
            if (Ignored.IsMatch(key)) { ignored.Add(key); continue; }
            if (!Kept.IsMatch(key)) { unknown.Add(key); continue; }
            tensors[layout.Prefix + Rename(key, layout)] = t;
        }
        if (unknown.Count > 0)
        {
            string hint = unknown.Any(k => k.StartsWith(layout.Prefix, StringComparison.Ordinal) || k.Contains(".lora_", StringComparison.Ordinal))
                ? " It looks like an MTLoRA checkpoint already; load it with NormalizeMtLoraCheckpoint instead."
                : "";
            throw new ArgumentException(
                $"{unknown.Count} key(s) are not part of a Microsoft Swin-V1 checkpoint: {string.Join(", ", unknown.Take(5).Select(k => $"'{k}'"))}{(unknown.Count > 5 ? ", ..." : "")}.{hint}");
        }
        return new SwinCheckpointMappingResult(tensors, ignored);
    }

    /// <summary>
    /// Normalises the keys of a checkpoint of the reference MTLoRA model (already unwrapped from <c>"model"</c>, as
    /// <see cref="StateDictFile.Load(string)"/> does) so the model can load it strictly: the DataParallel <c>module.</c>
    /// prefix is removed. The names are otherwise exactly the reference's (<c>backbone.*</c>, <c>downsampler.*</c>, <c>decoders.*</c>).
    /// </summary>
    /// <param name="stateDict">The checkpoint's tensors.</param>
    /// <returns>A new dictionary holding the same tensor objects.</returns>
    /// <exception cref="ArgumentException">A key is outside the MTLoRA model (<c>backbone.</c>, <c>downsampler.</c>, <c>decoders.</c>),
    /// for example a plain Swin checkpoint, which needs <see cref="MicrosoftSwinToBackbone"/>.</exception>
    public static Dictionary<string, Tensor> NormalizeMtLoraCheckpoint(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var result = StateDictFile.RemoveDataParallelPrefix(stateDict);
        var foreign = result.Keys.Where(k => !MtLoraModules.Any(m => k.StartsWith(m, StringComparison.Ordinal))).Take(5).ToList();
        if (foreign.Count > 0)
            throw new ArgumentException(
                $"Not an MTLoRA checkpoint: key(s) {string.Join(", ", foreign.Select(k => $"'{k}'"))} are outside the MTLoRA model's modules ({string.Join(", ", MtLoraModules.Select(m => $"'{m}'"))}). A Microsoft Swin checkpoint needs MicrosoftSwinToBackbone.");
        return result;
    }

    private static string Rename(string key, SwinLoraLayout layout)
    {
        int lastDot = key.LastIndexOf('.');
        string module = key[..lastDot], leaf = key[(lastDot + 1)..];
        bool wrapped =
            (layout.Qkv && module.EndsWith(".attn.qkv", StringComparison.Ordinal))
            || (layout.Proj && module.EndsWith(".attn.proj", StringComparison.Ordinal))
            || (layout.Fc1 && module.EndsWith(".mlp.fc1", StringComparison.Ordinal))
            || (layout.Fc2 && module.EndsWith(".mlp.fc2", StringComparison.Ordinal))
            || (layout.Reduction && module.EndsWith(".downsample.reduction", StringComparison.Ordinal));
        return wrapped ? $"{module}.linear.{leaf}" : key;
    }
}
