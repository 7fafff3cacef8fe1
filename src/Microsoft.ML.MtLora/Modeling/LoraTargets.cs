namespace Microsoft.ML.MtLora.Modeling;

/// <summary>Which linear layers of each Swin block carry LoRA (reference <c>MODEL.MTLORA.{QKV,PROJ,FC1,FC2}_ENABLED</c>).</summary>
/// <remarks>A layer without LoRA is a plain linear whose state-dict keys are <c>…qkv.weight</c> instead of <c>…qkv.linear.weight</c>.</remarks>
public sealed class LoraTargets
{
    /// <summary>LoRA on the attention's qkv projection (shared LoRA only, never task-specific). Default true.</summary>
    public bool Qkv { get; set; } = true;

    /// <summary>LoRA on the attention's output projection. Default true.</summary>
    public bool Proj { get; set; } = true;

    /// <summary>LoRA on the MLP's first linear. Default true.</summary>
    public bool Fc1 { get; set; } = true;

    /// <summary>LoRA on the MLP's second linear. Default true.</summary>
    public bool Fc2 { get; set; } = true;

    internal LoraTargets Clone() => new() { Qkv = Qkv, Proj = Proj, Fc1 = Fc1, Fc2 = Fc2 };
}
