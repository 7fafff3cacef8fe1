using Microsoft.ML.MtLora.Data.Synthetic;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>A small synthetic PASCAL_MT folder shared by the tests that train (4 train, 3 val images of 72×56).</summary>
public sealed class TinyPascal : IDisposable
{
    private readonly TempDir _dir = Fixture.TempDir();

    public TinyPascal()
    {
        Root = Path.Combine(_dir.Path, "data");
        SyntheticPascal.Generate(Root, new SyntheticPascalOptions { TrainCount = 4, ValCount = 3, Width = 72, Height = 56, Seed = 2 });
    }

    public string Root { get; }

    public void Dispose() => _dir.Dispose();

    /// <summary>A tiny4 training command line on this data (batch 2, so 2 steps per epoch), plus <paramref name="more"/>.</summary>
    public string[] Train(string outPath, params string[] more) =>
        ["train", "--data", Root, "--config", Fixture.Path("tiny4", "config.json"), "--batch-size", "2", "--lr", "1e-3",
         "--device", "cpu", "--seed", "3", "--out", outPath, "--json", .. more];
}
