using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>The reference Swin initialisation (§1.3.10): trunc-normal(0.02) linear weights with zero bias, LayerNorm 1/0.</summary>
internal static class SwinInit
{
    public const double Std = 0.02;

    public static void TruncNormalLinear(Linear linear)
    {
        if (linear.weight!.device_type == DeviceType.META) return;
        using var _ = no_grad();
        TruncNormal(linear.weight!);
        if (linear.bias is not null) nn.init.zeros_(linear.bias);
    }

    /// <summary>timm's trunc_normal_(std=0.02, a=-2, b=2): the bounds are absolute, i.e. ±100 std.</summary>
    public static void TruncNormal(Tensor t)
    {
        if (t.device_type == DeviceType.META) return;
        using var _ = no_grad();
        nn.init.trunc_normal_(t, 0.0, Std, -2.0, 2.0);
    }

    public static LayerNorm LayerNorm(long dim, Device? device) => nn.LayerNorm(dim, 1e-5, device: device);
}
