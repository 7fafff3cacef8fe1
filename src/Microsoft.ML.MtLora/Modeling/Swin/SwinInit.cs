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

    /// <summary>
    /// timm's trunc_normal_(std=0.02, a=-2, b=2), by the same inverse-CDF method: the bounds are absolute, i.e. ±100 std,
    /// so this is a normal(0, 0.02) in practice.
    /// </summary>
    public static void TruncNormal(Tensor t, double mean = 0.0, double std = Std, double a = -2.0, double b = 2.0)
    {
        if (t.device_type == DeviceType.META) return;
        using var _ = no_grad();
        static double NormCdf(double x) => (1.0 + Erf(x / Math.Sqrt(2.0))) / 2.0;
        double l = NormCdf((a - mean) / std), u = NormCdf((b - mean) / std);
        using var scale = (std * Math.Sqrt(2.0)).ToScalar();
        using var shift = mean.ToScalar();
        using var low = a.ToScalar();
        using var high = b.ToScalar();
        t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(scale).add_(shift, TorchScalars.One).clamp_(low, high);
    }

    // .NET has no erf; take the exact value from libtorch.
    private static double Erf(double x)
    {
        using var v = tensor(x, ScalarType.Float64);
        using var e = v.erf();
        return e.item<double>();
    }

    public static LayerNorm LayerNorm(long dim, Device? device) => nn.LayerNorm(dim, 1e-5, device: device);

    /// <summary>
    /// Applies a LayerNorm; when its parameters are float32 and the input is not (the trainer's bfloat16 policy keeps the
    /// normalisation layers in float32), it normalises in float32 and returns the input's type, which needs no mixed-type
    /// kernel on any device.
    /// </summary>
    public static Tensor Normalize(LayerNorm norm, Tensor x)
    {
        var type = norm.weight?.dtype ?? x.dtype;
        return x.dtype == type ? norm.forward(x) : norm.forward(x.to(type)).to(x.dtype);
    }
}
