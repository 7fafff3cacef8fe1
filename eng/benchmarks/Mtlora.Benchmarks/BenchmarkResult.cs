using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace MtLora.Benchmarks;

/// <summary>One measurement, written as JSON with snake_case keys.</summary>
internal sealed record BenchmarkResult
{
    public required string Mode { get; init; }
    public required string Config { get; init; }

    /// <summary>What ran the network: <c>torchsharp</c>, or <c>onnxruntime &lt;version&gt;</c> on the exported graph.</summary>
    public string Engine { get; init; } = "torchsharp";
    public int ImageSize { get; init; }
    public int Batch { get; init; }
    public int Steps { get; init; }
    public int Warmup { get; init; }
    public required string Device { get; init; }

    [JsonPropertyName("dtype")]
    public required string DType { get; init; }

    /// <summary>Train mode: micro-batches per optimizer step.</summary>
    public int AccumulationSteps { get; init; } = 1;

    public JsonObject? Network { get; init; }
    public long TotalParameters { get; init; }
    public long TrainableParameters { get; init; }

    /// <summary>Wall time of the timed steps (CUDA synchronised at both ends).</summary>
    public double Seconds { get; init; }

    /// <summary>batch × steps / seconds: the headline number.</summary>
    public double ImagesPerSecond { get; init; }

    /// <summary>Median of the per-step times; on a loaded CPU machine less noisy than the mean.</summary>
    public double MedianStepSeconds { get; init; }

    public double MedianImagesPerSecond { get; init; }

    /// <summary>Per-step wall times, sorted. On CUDA a step ends when its work is queued, not done (except for the host
    /// synchronisations inside the losses), so only the total is exact there.</summary>
    public double[] StepSecondsSorted { get; init; } = [];

    /// <summary>CPU time (user + system, all threads) the process used during the timed steps. On a shared, loaded machine
    /// images per CPU-second (<c>batch × steps / process_cpu_seconds</c>) varies less than images per wall-clock second.</summary>
    public double ProcessCpuSeconds { get; init; }

    /// <summary>Peak resident set of the process (VmHWM).</summary>
    public long HostPeakWorkingSetBytes { get; init; }

    /// <summary>Whether the host peak was reset after the warm-up (so it covers the timed steps only).</summary>
    public bool HostPeakCoversTimedStepsOnly { get; init; }

    public long? GpuPeakUsedBytes { get; init; }
    public long? GpuBaselineUsedBytes { get; init; }
    public string? GpuMemoryNote { get; init; }
    public int TorchThreads { get; init; }
    public int ProcessorCount { get; init; }
    public required string Machine { get; init; }
    /// <summary>The libtorch folder bound through MTLORA_LIBTORCH, or the TorchSharp backend package.</summary>
    [JsonPropertyName("libtorch")]
    public required string LibTorch { get; init; }
    public required string TimestampUtc { get; init; }

    /// <summary>With <c>--profile</c>: per-step thread CPU time by region (see <see cref="StepProfiler"/>).</summary>
    public IReadOnlyList<ProfileRow>? Profile { get; init; }

    /// <summary>The result as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    });

    /// <summary>One human-readable line.</summary>
    public override string ToString()
    {
        static string GiB(long bytes) => $"{bytes / (double)(1L << 30):F2} GiB";
        var memory = $"host peak {GiB(HostPeakWorkingSetBytes)}";
        if (GpuPeakUsedBytes is long peak)
            memory += $", GPU peak used {GiB(peak)} (baseline {GiB(GpuBaselineUsedBytes ?? 0)})";
        return $"{Mode} {Config} {ImageSize}px batch {Batch} {Device} {Engine} {DType}" +
               $"{(AccumulationSteps > 1 ? $" ({AccumulationSteps} micro-batches per step)" : "")}: " +
               $"{ImagesPerSecond:F2} images/s over {Steps} steps ({Seconds:F2} s; median step {MedianStepSeconds * 1000:F0} ms = {MedianImagesPerSecond:F2} images/s; " +
               $"process CPU {ProcessCpuSeconds:F1} s = {Batch * (double)Steps / ProcessCpuSeconds:F2} images per CPU-second); {memory}";
    }
}
