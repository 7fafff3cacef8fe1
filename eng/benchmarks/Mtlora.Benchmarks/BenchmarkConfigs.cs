using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Modeling;

namespace MtLora.Benchmarks;

/// <summary>The named network configurations the benchmark measures. All four PASCAL-Context tasks, MTLoRA mode.</summary>
internal static class BenchmarkConfigs
{
    /// <summary>The configuration names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["tiny", "small", "swin-t"];

    /// <summary>A fresh copy of a named configuration.</summary>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    public static MtLoraNetworkOptions Get(string name) => name switch
    {
        // The tiny4 fixture's network (test/Fixtures/reference/tiny4/config.json), 128 px.
        "tiny" => new MtLoraNetworkOptions
        {
            Tasks = DenseTaskDescriptor.Pascal.ToArray(),
            EmbedDim = 16, Depths = [2, 2, 2, 2], NumHeads = [1, 2, 2, 4], WindowSize = 4, ImageSize = 128,
            SharedRank = 8, TaskRank = 4, LoraScale = 4, DecoderChannels = [8, 8, 16, 16],
        },
        // Half of Swin-T's width with 2-2-2-2 blocks at 224 px: the real window (7) and heads, CPU-sized.
        "small" => new MtLoraNetworkOptions
        {
            Tasks = DenseTaskDescriptor.Pascal.ToArray(),
            EmbedDim = 48, Depths = [2, 2, 2, 2], NumHeads = [3, 6, 12, 24], WindowSize = 7, ImageSize = 224,
            SharedRank = 16, TaskRank = 4, LoraScale = 4,
        },
        // The paper's main setting: every default (Swin-T, 448 px, MTLoRA shared rank 64, task rank 4, scale 4, HRNet-W18 heads).
        "swin-t" => new MtLoraNetworkOptions(),
        _ => throw new ArgumentException($"Unknown configuration '{name}'; expected one of {string.Join(", ", Names)}."),
    };
}
