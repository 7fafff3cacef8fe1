using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>Patch embedding: Conv p×p / p (3 → C, with bias), flatten row-major, LayerNorm (reference <c>PatchEmbed</c>).</summary>
internal sealed class PatchEmbed : nn.Module
{
    [ComponentName(Name = "proj")]
    private readonly Conv2d _proj;
    [ComponentName(Name = "norm")]
    private readonly LayerNorm _norm;

    private readonly int _patch;

    public PatchEmbed(int patch, int dim, Device? device) : base(nameof(PatchEmbed))
    {
        _patch = patch;
        _proj = nn.Conv2d(3, dim, patch, stride: patch, bias: true, device: device);   // PyTorch default init (kaiming-uniform a=√5)
        _norm = SwinInit.LayerNorm(dim, device);
        register_module("proj", _proj);
        register_module("norm", _norm);
    }

    /// <summary>Embeds (B, 3, H, W) images as (B, L, C) tokens, L = (H/p)·(W/p) row-major.</summary>
    /// <remarks>
    /// A p×p convolution with stride p sees each p×p patch once, so it is one GEMM of the flattened patches with the
    /// convolution's weight viewed as (C, 3·p·p): the same sums as <c>conv2d</c> without its dispatch (and without the
    /// NNPACK probe libtorch makes, and fails, on this CPU at every call).
    /// </remarks>
    public Tensor Forward(Tensor images)
    {
        images = ProfileRegions.Enter("patch_embed", images);
        long b = images.shape[0], ch = images.shape[1], h = images.shape[2] / _patch, w = images.shape[3] / _patch;
        var patches = images.view(b, ch, h, _patch, w, _patch).permute(0, 2, 4, 1, 3, 5)
            .reshape(b, h * w, ch * _patch * _patch);                     // (B, L, 3·p·p), (channel, row, column) order
        var y = nn.functional.linear(patches, _proj.weight.flatten(1), _proj.bias);   // (B, L, C)
        return SwinInit.Normalize(_norm, y);
    }
}
