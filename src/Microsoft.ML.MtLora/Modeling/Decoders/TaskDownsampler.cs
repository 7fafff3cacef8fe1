using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Decoders;

/// <summary>
/// A task's 1×1 projections of the four stage outputs (reference <c>Downsampler</c>, keys <c>downsample_k.weight</c>):
/// tokens (B, res_k², dims_k) → map (B, dims_k, res_k, res_k) → Conv1×1 (no bias) → (B, ch_k, res_k, res_k), computed channels-last.
/// This per-task projection is the code's "task-specific multi-scale fusion".
/// </summary>
internal sealed class TaskDownsampler : nn.Module
{
    private readonly Conv2d[] _convs;
    private readonly int[] _resolutions;

    public TaskDownsampler(IReadOnlyList<StageGeometry> stages, IReadOnlyList<int> channels, Device? device) : base(nameof(TaskDownsampler))
    {
        _convs = new Conv2d[stages.Count];
        _resolutions = stages.Select(s => s.OutputResolution).ToArray();
        for (int k = 0; k < stages.Count; k++)
        {
            _convs[k] = nn.Conv2d(stages[k].OutputDim, channels[k], 1, bias: false, device: device);
            register_module($"downsample_{k}", _convs[k]);
        }
    }

    /// <summary>Projects each stage's tokens.</summary>
    /// <param name="tokens">(B, res_k², dims_k) per stage.</param>
    /// <returns>Channels-last maps (B, res_k, res_k, ch_k): the 1×1 convolution is a GEMM over the tokens, no permute needed.</returns>
    public Tensor[] Forward(IReadOnlyList<Tensor> tokens)
    {
        var maps = new Tensor[_convs.Length];
        for (int k = 0; k < _convs.Length; k++)
        {
            var t = k == 0 ? ProfileRegions.Enter("decoders.downsampler", tokens[k]) : tokens[k];
            long b = t.shape[0];
            var y = nn.functional.linear(t, _convs[k].weight.flatten(1));   // (B, r_k², ch_k)
            maps[k] = y.view(b, _resolutions[k], _resolutions[k], y.shape[^1]); // (B, r_k, r_k, ch_k)
        }
        return maps;
    }
}
