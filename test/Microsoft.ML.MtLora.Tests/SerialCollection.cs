namespace Microsoft.ML.MtLora.Tests;

/// <summary>
/// Tests that touch process-wide state belong here: torch's global generator (torch.manual_seed, randn without a
/// generator, dropout) or Console.Out/Error. xunit runs this collection alone, after the parallel ones, so no other test
/// moves the generator between a seed and the draws that depend on it, or writes into a redirected console.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "serial: global torch random state, console";
}
