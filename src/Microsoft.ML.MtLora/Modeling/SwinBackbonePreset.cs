namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// A named Swin-V1 backbone with its Microsoft ImageNet checkpoint, in the manner of timm's variants
/// (<c>swin_base_patch4_window12_384.ms_in22k</c>): the architecture (embedding width, depths, heads) and what the checkpoint
/// was pretrained with (window, image size, ImageNet-1k or -22k). The MTLoRA network keeps its own window and input size
/// (7 and 448 by default): a checkpoint pretrained with another window has its relative-position bias tables resized
/// bicubically when it is loaded (reference <c>utils.py::load_checkpoint</c> with <c>MODEL.UPDATE_RELATIVE_POSITION</c>).
/// </summary>
/// <remarks>
/// The names are Microsoft's checkpoint file names without <c>.pth</c> (microsoft/Swin-Transformer README); timm's names
/// (<c>swin_tiny_patch4_window7_224.ms_in1k</c>, <c>….ms_in22k</c>) are accepted too. The paper's main setting is
/// <c>swin_tiny_patch4_window7_224</c>; its Figure 5 uses Swin-B pretrained on ImageNet-22k at 448 px, i.e.
/// <c>swin_base_patch4_window7_224_22k</c> (or <c>swin_base_patch4_window12_384_22k</c>, its window 12 resized to 7).
/// </remarks>
public sealed class SwinBackbonePreset
{
    private const string Storage = "https://github.com/SwinTransformer/storage/releases/download/";

    private SwinBackbonePreset(string variant, int embedDim, int[] depths, int[] heads, int window, int imageSize, bool imageNet22k, string release)
    {
        Variant = variant;
        EmbedDim = embedDim;
        Depths = depths;
        NumHeads = heads;
        PretrainWindowSize = window;
        PretrainImageSize = imageSize;
        IsImageNet22k = imageNet22k;
        string size = variant switch { "Swin-T" => "tiny", "Swin-S" => "small", _ => "base" };
        Name = $"swin_{size}_patch4_window{window}_{imageSize}{(imageNet22k ? "_22k" : "")}";
        TimmName = $"swin_{size}_patch4_window{window}_{imageSize}.{(imageNet22k ? "ms_in22k" : "ms_in1k")}";
        CheckpointUrl = new Uri($"{Storage}{release}/{Name}.pth");
    }

    /// <summary>The presets: Swin-T and Swin-S (window 7 at 224), Swin-B (window 7 at 224, window 12 at 384), each pretrained on ImageNet-1k and on ImageNet-22k.</summary>
    public static IReadOnlyList<SwinBackbonePreset> All { get; } =
    [
        new("Swin-T", 96, [2, 2, 6, 2], [3, 6, 12, 24], 7, 224, false, "v1.0.0"),
        new("Swin-T", 96, [2, 2, 6, 2], [3, 6, 12, 24], 7, 224, true, "v1.0.8"),
        new("Swin-S", 96, [2, 2, 18, 2], [3, 6, 12, 24], 7, 224, false, "v1.0.0"),
        new("Swin-S", 96, [2, 2, 18, 2], [3, 6, 12, 24], 7, 224, true, "v1.0.8"),
        new("Swin-B", 128, [2, 2, 18, 2], [4, 8, 16, 32], 7, 224, false, "v1.0.0"),
        new("Swin-B", 128, [2, 2, 18, 2], [4, 8, 16, 32], 7, 224, true, "v1.0.0"),
        new("Swin-B", 128, [2, 2, 18, 2], [4, 8, 16, 32], 12, 384, false, "v1.0.0"),
        new("Swin-B", 128, [2, 2, 18, 2], [4, 8, 16, 32], 12, 384, true, "v1.0.0"),
    ];

    /// <summary>The preset's name: Microsoft's checkpoint file name without <c>.pth</c>, e.g. <c>swin_base_patch4_window12_384_22k</c>.</summary>
    public string Name { get; }

    /// <summary>timm's name of the same weights, e.g. <c>swin_base_patch4_window12_384.ms_in22k</c>.</summary>
    public string TimmName { get; }

    /// <summary>The architecture's short name: <c>Swin-T</c>, <c>Swin-S</c> or <c>Swin-B</c>.</summary>
    public string Variant { get; }

    /// <summary>Channels of the patch embedding (96 for Swin-T/S, 128 for Swin-B).</summary>
    public int EmbedDim { get; }

    /// <summary>Blocks per stage.</summary>
    public IReadOnlyList<int> Depths { get; }

    /// <summary>Attention heads per stage (head width 32 throughout).</summary>
    public IReadOnlyList<int> NumHeads { get; }

    /// <summary>The attention window the checkpoint was trained with (7 or 12).</summary>
    public int PretrainWindowSize { get; }

    /// <summary>The image size the checkpoint was trained at (224 or 384).</summary>
    public int PretrainImageSize { get; }

    /// <summary>Whether the checkpoint was pretrained on ImageNet-22k (its classifier has 21,841 classes), else ImageNet-1k.</summary>
    public bool IsImageNet22k { get; }

    /// <summary>The checkpoint's file name, e.g. <c>swin_base_patch4_window12_384_22k.pth</c>.</summary>
    public string CheckpointFileName => Name + ".pth";

    /// <summary>Where Microsoft publishes the checkpoint (microsoft/Swin-Transformer README).</summary>
    public Uri CheckpointUrl { get; }

    /// <summary>
    /// Network options with this backbone: a copy of <paramref name="baseOptions"/> (default: the paper's MTLoRA setting at
    /// 448 px, window 7) with the preset's <c>embed_dim</c>, <c>depths</c> and <c>num_heads</c>; the window and input size stay.
    /// </summary>
    /// <param name="baseOptions">The other options (tasks, mode, ranks, window, input size, ...); not modified.</param>
    /// <returns>New options.</returns>
    public MtLoraNetworkOptions ToNetworkOptions(MtLoraNetworkOptions? baseOptions = null)
    {
        var o = baseOptions?.Clone() ?? new MtLoraNetworkOptions();
        o.EmbedDim = EmbedDim;
        o.Depths = Depths.ToArray();
        o.NumHeads = NumHeads.ToArray();
        return o;
    }

    /// <summary>Whether a network has this preset's architecture (embedding width, depths and heads).</summary>
    /// <param name="options">The network options.</param>
    public bool Fits(MtLoraNetworkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.EmbedDim == EmbedDim && options.Depths.SequenceEqual(Depths) && options.NumHeads.SequenceEqual(NumHeads);
    }

    /// <summary>Finds a preset by name: its <see cref="Name"/>, its <see cref="TimmName"/> or its checkpoint file name, case-insensitive.</summary>
    /// <param name="name">The name.</param>
    /// <param name="preset">The preset, when found.</param>
    /// <returns>Whether the name is known.</returns>
    public static bool TryGet(string? name, out SwinBackbonePreset preset)
    {
        preset = null!;
        if (string.IsNullOrWhiteSpace(name)) return false;
        string n = name.Trim();
        if (n.EndsWith(".pth", StringComparison.OrdinalIgnoreCase)) n = n[..^4];
        foreach (var p in All)
        {
            if (string.Equals(n, p.Name, StringComparison.OrdinalIgnoreCase) || string.Equals(n, p.TimmName, StringComparison.OrdinalIgnoreCase))
            {
                preset = p;
                return true;
            }
        }
        return false;
    }

    /// <summary>Finds a preset by name (see <see cref="TryGet"/>).</summary>
    /// <param name="name">The name.</param>
    /// <returns>The preset.</returns>
    /// <exception cref="ArgumentException">The name is unknown; the message lists the known names.</exception>
    public static SwinBackbonePreset Get(string name)
    {
        if (TryGet(name, out var preset)) return preset;
        throw new ArgumentException($"unknown backbone preset '{name}'; expected one of {string.Join(", ", All.Select(p => p.Name))} (or timm's names, e.g. {All[^1].TimmName}).", nameof(name));
    }

    /// <summary>The architecture's short name (<c>Swin-B</c>, ...) for an embedding width, depths and heads, or null when no preset has them.</summary>
    internal static string? VariantOf(int embedDim, IReadOnlyList<int> depths, IReadOnlyList<int> heads)
        => All.FirstOrDefault(p => p.EmbedDim == embedDim && p.Depths.SequenceEqual(depths) && p.NumHeads.SequenceEqual(heads))?.Variant;

    /// <inheritdoc/>
    public override string ToString() => Name;
}
