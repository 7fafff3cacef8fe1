using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// The Swin backbone as MTLoRA uses it (reference <c>SwinTransformerMTLoRA</c>, key <c>backbone</c>): patch embedding and four
/// stages; no absolute position embedding, no final LayerNorm, no head.
/// </summary>
internal sealed class SwinBackbone : nn.Module
{
    [ComponentName(Name = "patch_embed")]
    private readonly PatchEmbed _patchEmbed;
    [ComponentName(Name = "layers")]
    private readonly ModuleList<SwinStage> _layers;

    public SwinBackbone(MtLoraNetworkOptions o, Device? device) : base(nameof(SwinBackbone))
    {
        Stages = o.Stages();
        _patchEmbed = new PatchEmbed(o.PatchSize, o.EmbedDim, device);
        int total = o.Depths.Sum();
        // Stochastic depth: linspace(0, rate, total) consumed in block order.
        var dpr = Enumerable.Range(0, total).Select(i => total == 1 ? 0.0 : o.DropPathRate * i / (total - 1)).ToArray();
        var stages = new SwinStage[Stages.Count];
        int k = 0;
        for (int i = 0; i < Stages.Count; i++)
        {
            stages[i] = new SwinStage(Stages[i], dpr.Skip(k).Take(Stages[i].Depth).ToArray(), o, device);
            k += Stages[i].Depth;
        }
        _layers = nn.ModuleList(stages);
        register_module("patch_embed", _patchEmbed);
        register_module("layers", _layers);
    }

    public IReadOnlyList<StageGeometry> Stages { get; }

    /// <summary>Per stage: the shared output and the task outputs (null when the stage emits none), tokens (B, L_i, C_i) after merging.</summary>
    public List<(Tensor Shared, Dictionary<string, Tensor>? Tasks)> Forward(Tensor images)
    {
        var x = _patchEmbed.Forward(images);                             // (B, L0, C0)
        var outs = new List<(Tensor, Dictionary<string, Tensor>?)>(_layers.Count);
        foreach (var stage in _layers)
        {
            var (shared, tasks) = stage.Forward(x);
            outs.Add((shared, tasks));
            x = shared;
        }
        return outs;
    }
}
