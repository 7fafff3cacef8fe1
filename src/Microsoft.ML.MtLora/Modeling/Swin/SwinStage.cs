using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// One stage (reference <c>BasicLayer</c>, key <c>layers.i</c>): blocks in order on the shared stream, task outputs from the last
/// block, then the stage's patch merging applied to the shared stream and to each task stream with the same module.
/// </summary>
internal sealed class SwinStage : nn.Module
{
    [ComponentName(Name = "blocks")]
    private readonly ModuleList<SwinBlock> _blocks;
    [ComponentName(Name = "downsample")]
    private readonly PatchMerging? _downsample;

    public SwinStage(StageGeometry g, IReadOnlyList<double> dropPath, MtLoraNetworkOptions o, Device? device) : base(nameof(SwinStage))
    {
        Geometry = g;
        var blocks = new SwinBlock[g.Depth];
        for (int j = 0; j < g.Depth; j++)
        {
            int shift = j % 2 == 0 ? 0 : g.Shift;
            blocks[j] = new SwinBlock(g, shift, dropPath[j], o.UsesTaskLora && j == g.Depth - 1, o, device);
        }
        _blocks = nn.ModuleList(blocks);
        register_module("blocks", _blocks);
        if (g.HasMerging)
        {
            _downsample = new PatchMerging(g.Resolution, g.Dim, o, g.Index, device);
            register_module("downsample", _downsample);
        }
    }

    public StageGeometry Geometry { get; }

    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x)
    {
        Dictionary<string, Tensor>? tasks = null;
        foreach (var block in _blocks)
            (x, tasks) = block.Forward(x);
        if (_downsample is null) return (x, tasks);
        return (_downsample.Forward(x), tasks?.ToDictionary(kv => kv.Key, kv => _downsample.Forward(kv.Value)));
    }
}
