using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>The block MLP: fc1 (C → rC), exact GELU, fc2 (rC → C), each site plain or MTLoRA (reference <c>Mlp</c>).</summary>
internal sealed class SwinMlp : nn.Module
{
    [ComponentName(Name = "fc1")]
    private readonly nn.Module _fc1;
    [ComponentName(Name = "fc2")]
    private readonly nn.Module _fc2;

    public SwinMlp(int dim, int hidden, bool taskLora, MtLoraNetworkOptions o, int stage, Device? device) : base(nameof(SwinMlp))
    {
        bool lora = o.UsesLora;
        _fc1 = TaskLinear.Create(dim, hidden, true, lora && o.LoraOn.Fc1, taskLora && o.LoraOn.Fc1, o, stage, device);
        _fc2 = TaskLinear.Create(hidden, dim, true, lora && o.LoraOn.Fc2, taskLora && o.LoraOn.Fc2, o, stage, device);
        register_module("fc1", _fc1);
        register_module("fc2", _fc2);
    }

    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x, IReadOnlyDictionary<string, Tensor>? xTasks)
    {
        var (h, hTasks) = TaskLinear.Apply(_fc1, x, xTasks);             // (B, L, rC)
        var g = nn.functional.gelu(h);
        var gTasks = hTasks?.ToDictionary(kv => kv.Key, kv => nn.functional.gelu(kv.Value));
        return TaskLinear.Apply(_fc2, g, gTasks);                         // (B, L, C)
    }
}
