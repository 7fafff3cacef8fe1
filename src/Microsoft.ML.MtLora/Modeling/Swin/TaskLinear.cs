using Microsoft.ML.MtLora.Modeling.Adapters;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// Runs a block linear that is either a plain <see cref="Linear"/> (no LoRA at that site) or an <see cref="MtLoraLinear"/>,
/// on a shared input and optional task streams.
/// </summary>
internal static class TaskLinear
{
    /// <summary>
    /// Creates the module for one site: a plain linear (state-dict keys <c>weight</c>, <c>bias</c>) when the site has no LoRA,
    /// else an MTLoRA linear (keys <c>linear.*</c>, <c>lora_*</c>) with the ranks, scales and dropout of its stage (reference
    /// <c>R_PER_TASK_LIST[layer_idx]</c>, <c>SHARED_SCALE[layer_idx]</c>, <c>SCALE_PER_TASK_LIST[layer_idx]</c>, <c>DROPOUT[layer_idx]</c>).
    /// </summary>
    public static nn.Module Create(int inFeatures, int outFeatures, bool hasBias, bool lora, bool taskLora, MtLoraNetworkOptions o, int stage, Device? device)
    {
        if (!lora)
        {
            var plain = nn.Linear(inFeatures, outFeatures, hasBias, device: device);
            SwinInit.TruncNormalLinear(plain);
            return plain;
        }
        var tasks = taskLora ? o.Tasks.Select(t => new TaskAdapter(t.Name, o.TaskRankAt(stage, t), o.TaskScaleAt(stage, t))).ToArray() : null;
        return new MtLoraLinear(inFeatures, outFeatures, hasBias, o.SharedRankAt(stage), o.SharedScaleAt(stage), tasks, o.LoraDropoutAt(stage), device);
    }

    /// <summary>
    /// Applies the site. A plain linear (or a shared-only MTLoRA linear) maps each task stream like the shared one; an MTLoRA
    /// linear with tasks follows the reference (task streams feed only the task branches).
    /// </summary>
    public static (Tensor Shared, Dictionary<string, Tensor>? Tasks) Apply(nn.Module site, Tensor x, IReadOnlyDictionary<string, Tensor>? xTasks)
    {
        switch (site)
        {
            case MtLoraLinear lora:
                if (lora.Tasks.Count > 0 || xTasks is null) return lora.Forward(x, xTasks);
                var (s, _) = lora.Forward(x);
                return (s, xTasks.ToDictionary(kv => kv.Key, kv => lora.Forward(kv.Value).Shared));
            case Linear plain:
                return (plain.forward(x), xTasks?.ToDictionary(kv => kv.Key, kv => plain.forward(kv.Value)));
            default:
                throw new InvalidOperationException($"unexpected linear site type {site.GetType().Name}.");
        }
    }
}
