namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>Options for reading pickled PyTorch checkpoints (<see cref="PyTorchCheckpoint.Load(string, CheckpointReadOptions?)"/>).</summary>
public sealed class CheckpointReadOptions
{
    /// <summary>
    /// The strict default: like <c>torch.load(weights_only=True)</c>, only tensor and storage rebuilds, <c>OrderedDict</c>,
    /// <c>torch.Size</c> and plain containers and scalars are accepted.
    /// </summary>
    public static CheckpointReadOptions Default { get; } = new();

    /// <summary>
    /// For the reference MTLoRA training checkpoints (<c>utils.py::save_checkpoint</c>), which store the run's
    /// <c>yacs.config.CfgNode</c> under <c>"config"</c> beside the weights: that class is read as an inert
    /// <see cref="Pickle.PickleObject"/>. Everything else is as strict as <see cref="Default"/>.
    /// </summary>
    public static CheckpointReadOptions ReferenceTraining { get; } = new() { InertGlobals = new HashSet<string>(StringComparer.Ordinal) { "yacs.config.CfgNode" } };

    /// <summary>
    /// Python classes (<c>module.name</c>) that may appear as plain data: their instances become
    /// <see cref="Pickle.PickleObject"/>s that record the constructor arguments, state and items. No code of the class runs
    /// (this reader never executes anything), so this is the analogue of <c>torch.serialization.add_safe_globals</c>
    /// without its risk. Empty by default.
    /// </summary>
    public IReadOnlySet<string> InertGlobals { get; init; } = new HashSet<string>();
}
