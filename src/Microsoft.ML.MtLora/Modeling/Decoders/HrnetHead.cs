using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Decoders;

/// <summary>
/// The HRNet-style head (reference <c>HighResolutionHead</c>): upsample inputs 1..3 bilinearly (align_corners=false) to input 0,
/// concatenate, then <c>last_layer</c> = Conv1×1(Σch → 4Σch, bias) · BN · ReLU · Conv1×1(4Σch → n_out, bias).
/// </summary>
/// <remarks>
/// The maps are kept channels-last, (B, H, W, C), so each 1×1 convolution is one GEMM over the pixels (<c>linear</c> with the
/// convolution's weight viewed as (out, in)) and the batch norm normalises the channels of a (B·H·W, C) matrix, which
/// gives the same statistics, output and running-average update as BatchNorm2d on (B, C, H, W); in evaluation mode the
/// BatchNorm is folded into the first convolution. The modules and their state-dict names are the reference's.
/// </remarks>
internal sealed class HrnetHead : nn.Module
{
    [ComponentName(Name = "last_layer")]
    private readonly Sequential _lastLayer;
    // The members of last_layer, held outside Module-typed fields so that TorchSharp's reflection does not register them twice.
    private readonly Layers _layers;

    public HrnetHead(IReadOnlyList<int> channels, int outputs, Device? device) : base(nameof(HrnetHead))
    {
        int sum = channels.Sum();
        int mid = 4 * sum;                                                 // 270 → 1080 for HRNet-W18 channels
        _layers = new Layers(
            nn.Conv2d(sum, mid, 1, bias: true, device: device),
            new SafeBatchNorm2d(mid, eps: 1e-5, momentum: 0.1, device: device),
            nn.Conv2d(mid, outputs, 1, bias: true, device: device));
        _lastLayer = nn.Sequential(("0", _layers.Fuse), ("1", _layers.Norm), ("2", nn.ReLU()), ("3", _layers.Classifier));
        register_module("last_layer", _lastLayer);
    }

    /// <summary>Runs the head on channels-last maps.</summary>
    /// <param name="maps">(B, r_k, r_k, ch_k) per scale, r_0 the largest.</param>
    /// <returns>(B, n_out, r0, r0), contiguous.</returns>
    public Tensor Forward(IReadOnlyList<Tensor> maps)
    {
        long h = maps[0].shape[1], w = maps[0].shape[2];
        var parts = new Tensor[maps.Count];
        parts[0] = ProfileRegions.Enter("decoders.head", maps[0]);
        for (int k = 1; k < maps.Count; k++)
        {
            // Bilinear on the (B, C, H, W) view of channels-last memory keeps the output channels-last.
            var up = nn.functional.interpolate(maps[k].permute(0, 3, 1, 2), new long[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false);
            parts[k] = up.permute(0, 2, 3, 1);                            // (B, r0, r0, ch_k)
        }
        var x = cat(parts, -1);                                           // (B, r0, r0, Σch)
        Tensor y;
        if (training)
        {
            y = nn.functional.linear(x, _layers.Fuse.weight.flatten(1), _layers.Fuse.bias);            // (B, r0, r0, 4Σch)
            y = Normalize(y.view(-1, y.shape[^1])).relu_().view(y.shape);
        }
        else
        {
            // Evaluation: BN is an affine map with the running statistics, folded into the 1×1 convolution's weight and bias.
            var (weight, bias) = FoldedFuse();
            y = nn.functional.linear(x, weight, bias).relu_();          // (B, r0, r0, 4Σch)
        }
        y = nn.functional.linear(y, _layers.Classifier.weight.flatten(1), _layers.Classifier.bias);    // (B, r0, r0, n_out)
        return y.permute(0, 3, 1, 2).contiguous();                        // (B, n_out, r0, r0)
    }

    /// <summary>BatchNorm2d's forward on (pixels, channels) (momentum 0.1).</summary>
    private Tensor Normalize(Tensor x)
    {
        var norm = _layers.Norm;
        // With the bfloat16 policy the statistics and affine parameters stay float32: normalise in float32.
        var type = norm.weight.dtype;
        var y = norm.Normalize(x.dtype == type ? x : x.to(type));
        return y.dtype == x.dtype ? y : y.to(x.dtype);
    }

    /// <summary>
    /// The first 1×1 convolution followed by the evaluation-mode BN as one affine map: with s = γ / √(var + ε),
    /// W' = diag(s)·W and b' = (b − mean)·s + β, in the convolution's element type.
    /// </summary>
    private (Tensor Weight, Tensor Bias) FoldedFuse()
    {
        var norm = _layers.Norm;
        var fuse = _layers.Fuse;
        using var eps = norm.eps.ToScalar();
        var scale = norm.running_var!.add(eps, TorchScalars.One).rsqrt().mul(norm.weight);              // (4Σch,) float32
        var weight = fuse.weight.flatten(1).mul(scale.unsqueeze(1).to(fuse.weight.dtype));              // (4Σch, Σch)
        var bias = (fuse.bias!.to(scale.dtype) - norm.running_mean!).mul(scale).add(norm.bias!, TorchScalars.One).to(fuse.weight.dtype);
        return (weight, bias);
    }

    private sealed record Layers(Conv2d Fuse, SafeBatchNorm2d Norm, Conv2d Classifier);
}
