namespace Microsoft.ML.MtLora.Modeling.Adapters;

/// <summary>One task's LoRA in an <see cref="MtLoraLinear"/>.</summary>
/// <param name="Name">The task's reference name (the key under <c>lora_tasks_A</c> / <c>lora_tasks_B</c>).</param>
/// <param name="Rank">Its rank (0: the task gets no LoRA in this layer).</param>
/// <param name="Scale">Multiplier of its delta (reference <c>lora_task_scale[task]</c>).</param>
public sealed record TaskAdapter(string Name, int Rank, double Scale);
