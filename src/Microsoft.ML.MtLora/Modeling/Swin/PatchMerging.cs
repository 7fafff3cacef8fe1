using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// Patch merging (reference <c>PatchMerging</c>): concatenate the 2×2 neighbours in the order (even row, even col),
/// (odd, even), (even, odd), (odd, odd), LayerNorm(4C), then reduction Linear(4C → 2C, no bias) — a plain linear, or a
/// shared-only MTLoRA linear in MTLoRA+.
/// </summary>
internal sealed class PatchMerging : nn.Module
{
    [ComponentName(Name = "norm")]
    private readonly LayerNorm _norm;
    [ComponentName(Name = "reduction")]
    private readonly nn.Module _reduction;
    private readonly int _resolution;

    public PatchMerging(int resolution, int dim, MtLoraNetworkOptions o, int stage, Device? device) : base(nameof(PatchMerging))
    {
        _resolution = resolution;
        _norm = SwinInit.LayerNorm(4 * dim, device);
        _reduction = TaskLinear.Create(4 * dim, 2 * dim, false, o.MtLoraPlus && o.UsesLora, false, o, stage, device);
        register_module("norm", _norm);
        register_module("reduction", _reduction);
    }

    public Tensor Forward(Tensor x)
    {
        x = ProfileRegions.Enter("patch_merging", x);
        long b = x.shape[0], c = x.shape[2];
        long h2 = _resolution / 2;
        // view (B, H/2, row parity, W/2, col parity, C); channel block index = col parity·2 + row parity gives x0, x1, x2, x3.
        var y = x.view(b, h2, 2, h2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h2 * h2, 4 * c); // (B, L/4, 4C)
        y = SwinInit.Normalize(_norm, y);
        return TaskLinear.Apply(_reduction, y, null).Shared;             // (B, L/4, 2C)
    }
}
