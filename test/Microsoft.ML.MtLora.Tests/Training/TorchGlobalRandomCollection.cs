namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// Tests that seed or draw from torch's global generator (torch.manual_seed, randn without a generator, dropout) belong
/// here: xunit runs this collection alone, after the parallel ones, so no other test moves the generator between a seed
/// and the draws that depend on it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalRandomCollection
{
    public const string Name = "torch global random state";
}
