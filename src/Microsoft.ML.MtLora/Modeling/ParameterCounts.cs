namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// Parameter counts as the reference's <c>main.py</c> prints them (§3.3). Buffers (relative-position indices, attention masks,
/// BatchNorm statistics) are never counted.
/// </summary>
/// <param name="Trainable">Elements of every parameter with <c>requires_grad</c> (what the optimizer updates; the paper's "trainable parameters").</param>
/// <param name="Lora">Elements of the trainable parameters whose name contains <c>lora</c>.</param>
/// <param name="Decoder">Elements of every parameter whose name lacks <c>backbone</c> (downsamplers and heads), trainable or not.</param>
/// <param name="Total">Elements of all parameters.</param>
public sealed record ParameterCounts(long Trainable, long Lora, long Decoder, long Total)
{
    /// <summary>Trainable parameters that are neither LoRA nor decoder (patch embedding, norms, bias tables, merging reductions).</summary>
    public long Extra => Trainable - Lora - Decoder;
}
