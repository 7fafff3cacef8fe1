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

    public PatchEmbed(int patch, int dim, Device? device) : base(nameof(PatchEmbed))
    {
        _proj = nn.Conv2d(3, dim, patch, stride: patch, bias: true, device: device);   // PyTorch default init (kaiming-uniform a=√5)
        _norm = SwinInit.LayerNorm(dim, device);
        register_module("proj", _proj);
        register_module("norm", _norm);
    }

    public Tensor Forward(Tensor images)
    {
        var y = _proj.forward(images);                                    // (B, C, H/p, W/p)
        y = y.flatten(2).transpose(1, 2);                                 // (B, L, C)
        return _norm.forward(y);
    }
}
