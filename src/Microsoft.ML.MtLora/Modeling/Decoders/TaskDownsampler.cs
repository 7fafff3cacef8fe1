using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Decoders;

/// <summary>
/// A task's 1×1 projections of the four stage outputs (reference <c>Downsampler</c>, keys <c>downsample_k.weight</c>):
/// tokens (B, res_k², dims_k) → map (B, dims_k, res_k, res_k) → Conv1×1 (no bias) → (B, ch_k, res_k, res_k).
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

    public Tensor[] Forward(IReadOnlyList<Tensor> tokens)
    {
        var maps = new Tensor[_convs.Length];
        for (int k = 0; k < _convs.Length; k++)
        {
            var t = tokens[k];
            long b = t.shape[0], c = t.shape[2];
            var map = t.view(b, _resolutions[k], _resolutions[k], c).permute(0, 3, 1, 2); // (B, C_k, r_k, r_k)
            maps[k] = _convs[k].forward(map);                             // (B, ch_k, r_k, r_k)
        }
        return maps;
    }
}
