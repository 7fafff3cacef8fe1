using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// Builds the reference's AdamW over the trainable parameters, in two groups (reference-spec §6, Swin's
/// <c>optimizer.py::set_weight_decay</c> with no skip list and no skip keywords).
/// </summary>
/// <remarks>
/// A parameter gets no weight decay when it is 1-D or its name ends with <c>.bias</c>; every other one (2-D and up,
/// and 0-D scalars) is decayed. <c>MultiTaskSwin</c> defines no <c>no_weight_decay_keywords</c>, so the
/// relative-position bias tables, the LoRA matrices, the patch-embedding and merging weights and the decoder convs are
/// all decayed; LayerNorm and BatchNorm affine parameters and biases are not. Frozen parameters are left out: the
/// reference builds its optimizer before freezing, but frozen tensors never get a gradient and AdamW skips them, so the
/// result is the same (§3.1).
/// </remarks>
internal static class OptimizerFactory
{
    /// <summary>Whether the reference decays a parameter: not 1-D and not named <c>*.bias</c>.</summary>
    public static bool IsDecayed(string name, Tensor parameter) => parameter.dim() != 1 && !name.EndsWith(".bias", StringComparison.Ordinal);

    /// <summary>The trainable parameters (<c>requires_grad</c>) of a module, by name, in module order.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> TrainableParameters(nn.Module module) =>
        module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    /// <summary>
    /// Splits the parameters into the decayed group and the undecayed group, in that order (the reference's order).
    /// </summary>
    public static (IReadOnlyList<(string Name, Parameter Parameter)> Decayed, IReadOnlyList<(string Name, Parameter Parameter)> NotDecayed)
        Group(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        var decayed = new List<(string, Parameter)>();
        var notDecayed = new List<(string, Parameter)>();
        foreach (var (name, p) in parameters)
            (IsDecayed(name, p) ? decayed : notDecayed).Add((name, p));
        return (decayed, notDecayed);
    }

    /// <summary>
    /// Creates the reference's AdamW (<see cref="FlatAdamW"/>) with the two groups, decayed first. The parameters are
    /// re-pointed into the optimizer's buffers; <see cref="FlatAdamW.Parameters"/> lists them in state order, with the
    /// names the checkpoint uses for each parameter's moments.
    /// </summary>
    /// <param name="parameters">The trainable parameters by name.</param>
    /// <param name="weightDecay">The decay of the decayed group (0.05 in the reference).</param>
    /// <param name="beta1">First-moment coefficient (0.9).</param>
    /// <param name="beta2">Second-moment coefficient (0.999).</param>
    /// <param name="epsilon">Denominator epsilon (1e-8).</param>
    /// <param name="initialMasters">float32 starting values of parameters that are not float32 (see <see cref="FlatAdamW"/>).</param>
    public static FlatAdamW CreateAdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double weightDecay,
        double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, IReadOnlyDictionary<string, Tensor>? initialMasters = null)
    {
        var (decayed, notDecayed) = Group(parameters);
        if (decayed.Count + notDecayed.Count == 0)
            throw new ArgumentException("The model has no trainable parameter (every parameter has requires_grad = false).", nameof(parameters));
        var groups = new List<(IReadOnlyList<(string Name, Parameter Parameter)>, double)>();
        if (decayed.Count > 0) groups.Add((decayed, weightDecay));
        if (notDecayed.Count > 0) groups.Add((notDecayed, 0.0));
        return new FlatAdamW(groups, beta1, beta2, epsilon, initialMasters);
    }
}
