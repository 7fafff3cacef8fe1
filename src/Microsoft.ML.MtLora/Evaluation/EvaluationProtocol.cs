namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// How predictions are compared with labels. The paper's single-task baselines (<see cref="SingleTaskBaselines.Paper"/>)
/// were measured with <see cref="Reference"/>, so Δm against them is only meaningful under that protocol.
/// </summary>
public enum EvaluationProtocol
{
    /// <summary>
    /// The reference's test transforms and evaluation (scale-lab/MTLoRA data/mtl_ds.py::get_transformations, main.py::validate;
    /// docs/mtlora-reference.md §6.1, §7): every label is resized to the network's input size S×S with its FixedResize
    /// interpolation (nearest for the class maps and saliency; bicubic for normals, then renormalised as n/(‖n‖ + eps) with
    /// eps = float64 machine epsilon), then AddIgnoreRegions (normals with ‖n‖ = 0 and all-zero human-parts maps become 255);
    /// the network's S×S outputs are scored against those labels, without resizing them back.
    /// </summary>
    Reference,

    /// <summary>
    /// Each image at its own size: the network's outputs are resized (bilinearly) to the image's H×W and scored against the
    /// original labels after AddIgnoreRegions (as under <see cref="Reference"/>: all-zero human-parts maps, depth 0 and normals
    /// with ‖n‖ = 0 are ignored); normals labels are renormalised to unit length first.
    /// </summary>
    Native,
}

/// <summary>Names of <see cref="EvaluationProtocol"/> values as the CLI and the JSON reports write them.</summary>
public static class EvaluationProtocols
{
    /// <summary>The lower-case name: <c>reference</c> or <c>native</c>.</summary>
    /// <param name="protocol">The protocol.</param>
    /// <returns>Its name.</returns>
    public static string Name(this EvaluationProtocol protocol) => protocol == EvaluationProtocol.Native ? "native" : "reference";

    /// <summary>Parses <c>reference</c> or <c>native</c> (any case, surrounding blanks ignored).</summary>
    /// <param name="text">The text.</param>
    /// <param name="protocol">The protocol, when the text names one.</param>
    /// <returns>Whether the text names a protocol.</returns>
    public static bool TryParse(string? text, out EvaluationProtocol protocol)
    {
        protocol = EvaluationProtocol.Reference;
        var t = text?.Trim();
        if (string.Equals(t, "reference", StringComparison.OrdinalIgnoreCase)) return true;
        if (!string.Equals(t, "native", StringComparison.OrdinalIgnoreCase)) return false;
        protocol = EvaluationProtocol.Native;
        return true;
    }
}
