using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Decoders;

/// <summary>
/// The HRNet-style head (reference <c>HighResolutionHead</c>): upsample inputs 1..3 bilinearly (align_corners=false) to input 0,
/// concatenate, then <c>last_layer</c> = Conv1×1(Σch → 4Σch, bias) · BN · ReLU · Conv1×1(4Σch → n_out, bias).
/// </summary>
internal sealed class HrnetHead : nn.Module
{
    [ComponentName(Name = "last_layer")]
    private readonly Sequential _lastLayer;

    public HrnetHead(IReadOnlyList<int> channels, int outputs, Device? device) : base(nameof(HrnetHead))
    {
        int sum = channels.Sum();
        int mid = 4 * sum;                                                 // 270 → 1080 for HRNet-W18 channels
        _lastLayer = nn.Sequential(
            ("0", nn.Conv2d(sum, mid, 1, bias: true, device: device)),
            ("1", nn.BatchNorm2d(mid, eps: 1e-5, momentum: 0.1, device: device)),
            ("2", nn.ReLU()),
            ("3", nn.Conv2d(mid, outputs, 1, bias: true, device: device)));
        register_module("last_layer", _lastLayer);
    }

    public Tensor Forward(IReadOnlyList<Tensor> maps)
    {
        long h = maps[0].shape[2], w = maps[0].shape[3];
        var parts = new Tensor[maps.Count];
        parts[0] = maps[0];
        for (int k = 1; k < maps.Count; k++)
            parts[k] = nn.functional.interpolate(maps[k], new long[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false);
        var x = cat(parts, 1);                                            // (B, Σch, r0, r0)
        return _lastLayer.forward(x);                                     // (B, n_out, r0, r0)
    }
}
