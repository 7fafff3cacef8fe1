namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// Backbone parts that MTLoRA would otherwise train and can be frozen instead (reference <c>TRAIN.FREEZE_*</c>, all false in
/// the paper's configs). Only used by the LoRA modes (<see cref="NetworkMode.MtLora"/>, <see cref="NetworkMode.TaskAgnosticOnly"/>).
/// </summary>
public sealed class FrozenParts
{
    /// <summary>Freeze the patch embedding (convolution and its LayerNorm). Default false.</summary>
    public bool PatchEmbed { get; set; }

    /// <summary>Freeze every LayerNorm of the backbone (a parameter whose name contains <c>norm</c>). Default false.</summary>
    public bool Norm { get; set; }

    /// <summary>Freeze the relative-position bias tables. Default false.</summary>
    public bool RelativePositionBias { get; set; }

    /// <summary>Freeze the patch-merging reductions (always frozen with MTLoRA+, which gives them a LoRA). Default false.</summary>
    public bool PatchMerging { get; set; }

    internal FrozenParts Clone() => new() { PatchEmbed = PatchEmbed, Norm = Norm, RelativePositionBias = RelativePositionBias, PatchMerging = PatchMerging };
}
