using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// Fits a Microsoft Swin-V1 ImageNet checkpoint (keys as in <c>swin_tiny_patch4_window7_224.pth</c>, unwrapped from
/// <c>"model"</c>) to an MTLoRA network before its keys are mapped: checks that the checkpoint's architecture is the
/// network's, and resizes the relative-position bias tables bicubically when the checkpoint's window is not the network's
/// (reference <c>utils.py::load_checkpoint</c> with <c>MODEL.UPDATE_RELATIVE_POSITION</c>, as microsoft/Swin-Transformer's
/// <c>utils.py::load_pretrained</c>). The derived buffers (<c>relative_position_index</c>, <c>attn_mask</c>) are left for the
/// mapping to drop: the network rebuilds them for its own window and resolution.
/// </summary>
public static class MicrosoftSwinCheckpoint
{
    private static readonly Regex BlockKey = new(@"^layers\.(\d+)\.blocks\.(\d+)\.", RegexOptions.CultureInvariant | RegexOptions.Compiled);
    private static readonly Regex TableKey = new(@"^layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$", RegexOptions.CultureInvariant | RegexOptions.Compiled);
    private const string PatchEmbedWeight = "patch_embed.proj.weight";

    /// <summary>
    /// Checks the checkpoint against the network and replaces every relative-position bias table whose window differs from
    /// the network's (per stage: the window the stage really uses, <see cref="StageGeometry.Window"/>) by its bicubic resize.
    /// </summary>
    /// <param name="msSwin">The checkpoint's tensors by Microsoft key; resized tables replace the originals, which are disposed.</param>
    /// <param name="options">The network the checkpoint is for.</param>
    /// <returns>The keys of the resized tables.</returns>
    /// <exception cref="ArgumentException">The checkpoint has a patch embedding and its embedding width, patch size, stage depths or heads are not the
    /// network's (the message names both and the preset that fits the checkpoint), or a table's length is not
    /// (2·window − 1)² for any window, so it cannot be interpolated.</exception>
    public static IReadOnlyList<string> FitToNetwork(IDictionary<string, Tensor> msSwin, MtLoraNetworkOptions options)
    {
        ArgumentNullException.ThrowIfNull(msSwin);
        ArgumentNullException.ThrowIfNull(options);
        var stages = options.Stages();
        CheckArchitecture(msSwin, options);

        var resized = new List<string>();
        foreach (var key in msSwin.Keys.Where(k => TableKey.IsMatch(k)).ToList())
        {
            var table = msSwin[key];
            int stage = int.Parse(TableKey.Match(key).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            int window = stages[stage].Window;
            long rows = table.shape[0], side = 2L * window - 1;
            if (rows == side * side) continue;
            if (WindowOf(rows) is null)
                throw new ArgumentException(
                    $"'{key}' has {rows} rows, which is not (2·window − 1)² for any window, so it cannot be interpolated to the network's window {window} " +
                    $"(expected {side * side} rows, or (2·w − 1)² rows of another window w to resize).");
            msSwin[key] = ResizeRelativePositionBiasTable(table, window);
            table.Dispose();
            resized.Add(key);
        }
        return resized;
    }

    /// <summary>
    /// Resizes a relative-position bias table from its window to another: the ((2w − 1)², nH) table is viewed as nH maps of
    /// (2w − 1)², resized bicubically to (2w' − 1)² (PyTorch's <c>F.interpolate(mode='bicubic', align_corners=False)</c>:
    /// cubic convolution with A = −0.75, border samples clamped), and viewed back (reference <c>utils.py::load_checkpoint</c>).
    /// </summary>
    /// <param name="table">The table, ((2w − 1)², nH), floating point.</param>
    /// <param name="window">The window w' to resize to.</param>
    /// <returns>A new tensor ((2w' − 1)², nH) of the table's type, on its device.</returns>
    /// <exception cref="ArgumentException">The table is not 2-D with (2w − 1)² rows for some window w, or the window is not positive.</exception>
    public static Tensor ResizeRelativePositionBiasTable(Tensor table, int window)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (window < 1) throw new ArgumentException($"window must be positive, got {window}.", nameof(window));
        if (table.dim() != 2 || WindowOf(table.shape[0]) is null)
            throw new ArgumentException($"a relative-position bias table must be ((2·window − 1)², heads); got ({string.Join(", ", table.shape)}).", nameof(table));
        using var scope = NewDisposeScope();
        long s1 = (long)Math.Round(Math.Sqrt(table.shape[0])), heads = table.shape[1], s2 = 2L * window - 1;
        var maps = table.to(float32).permute(1, 0).reshape(1, heads, s1, s1);                         // (1, nH, S1, S1)
        var resized = nn.functional.interpolate(maps, size: [s2, s2], mode: InterpolationMode.Bicubic, align_corners: false); // (1, nH, S2, S2)
        return resized.reshape(heads, s2 * s2).permute(1, 0).contiguous().to(table.dtype).MoveToOuterDisposeScope(); // (S2², nH)
    }

    /// <summary>The window w with (2w − 1)² = rows, or null.</summary>
    private static int? WindowOf(long rows)
    {
        long side = (long)Math.Round(Math.Sqrt(rows));
        return side * side == rows && side % 2 == 1 ? (int)((side + 1) / 2) : null;
    }

    private static void CheckArchitecture(IDictionary<string, Tensor> msSwin, MtLoraNetworkOptions o)
    {
        // Without a patch embedding there is no architecture to compare: the strict load names what is missing or misshapen.
        if (!msSwin.TryGetValue(PatchEmbedWeight, out var embed) || embed.dim() != 4) return;
        int embedDim = (int)embed.shape[0], patch = (int)embed.shape[2];
        var blocks = new SortedDictionary<int, int>();
        var heads = new SortedDictionary<int, int>();
        foreach (var (key, t) in msSwin)
        {
            var m = BlockKey.Match(key);
            if (!m.Success) continue;
            int stage = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            int block = int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            blocks[stage] = Math.Max(blocks.GetValueOrDefault(stage), block + 1);
            if (TableKey.IsMatch(key) && t.dim() == 2) heads[stage] = (int)t.shape[1];
        }
        var depths = blocks.Values.ToArray();
        var numHeads = heads.Values.ToArray();
        bool fits = embedDim == o.EmbedDim && patch == o.PatchSize && depths.SequenceEqual(o.Depths) && numHeads.SequenceEqual(o.NumHeads);
        if (fits) return;

        string Describe(int e, IReadOnlyList<int> d, IReadOnlyList<int> h, int p)
        {
            string variant = SwinBackbonePreset.VariantOf(e, d, h) is { } v ? $" ({v})" : "";
            return $"embed_dim {e}, depths [{string.Join(", ", d)}], num_heads [{string.Join(", ", h)}], patch_size {p}{variant}";
        }
        var matching = SwinBackbonePreset.All.Where(p => p.EmbedDim == embedDim && p.Depths.SequenceEqual(depths) && p.NumHeads.SequenceEqual(numHeads)).Select(p => p.Name).ToList();
        string hint = matching.Count > 0
            ? $"; use the backbone preset of the checkpoint ({string.Join(" or ", matching)}) or network options with its architecture"
            : "; use network options with the checkpoint's architecture";
        throw new ArgumentException(
            $"the Swin checkpoint has {Describe(embedDim, depths, numHeads, patch)}, but the network expects {Describe(o.EmbedDim, o.Depths, o.NumHeads, o.PatchSize)}{hint}.");
    }
}
