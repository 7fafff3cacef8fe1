namespace Microsoft.ML.MtLora.Modeling;

/// <summary>What the network trains and which adapters it builds (reference issue §3.1–3.2).</summary>
public enum NetworkMode
{
    /// <summary>
    /// MTLoRA (the paper's method): frozen Swin linears with a shared LoRA in every qkv/proj/fc1/fc2 and task-specific LoRA
    /// in proj/fc1/fc2 of the last block of each stage. Patch embedding, LayerNorms, relative-position tables, patch-merging
    /// reductions (unless frozen), downsamplers and heads train too.
    /// </summary>
    MtLora,

    /// <summary>Everything trains; plain Swin linears without LoRA. With one task this is the single-task baseline.</summary>
    FullFineTune,

    /// <summary>The plain Swin backbone is frozen; only the per-task downsamplers and heads train.</summary>
    DecodersOnly,

    /// <summary>
    /// Shared (task-agnostic) LoRA everywhere, no task-specific LoRA: every task decodes the shared stage outputs.
    /// Same freezing as <see cref="MtLora"/>.
    /// </summary>
    TaskAgnosticOnly,
}
