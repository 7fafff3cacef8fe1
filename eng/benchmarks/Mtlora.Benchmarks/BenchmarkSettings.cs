using Microsoft.ML.MtLora.Modeling;

namespace MtLora.Benchmarks;

/// <summary>What to measure: training steps or inference batches.</summary>
internal enum BenchmarkMode
{
    /// <summary>Forward, task losses, backward, gradient clipping at 5, AdamW step.</summary>
    Train,

    /// <summary>Evaluation mode, LoRA merged, inference mode, batch forward.</summary>
    Infer,
}

/// <summary>The options of one benchmark run (one process measures one configuration).</summary>
internal sealed record BenchmarkSettings
{
    public BenchmarkMode Mode { get; init; } = BenchmarkMode.Train;

    /// <summary><c>tiny</c>, <c>small</c> or <c>swin-t</c> (see <see cref="BenchmarkConfigs"/>).</summary>
    public string Config { get; init; } = "tiny";

    public int Batch { get; init; } = 8;

    /// <summary>Input side; null keeps the configuration's own size.</summary>
    public int? ImageSize { get; init; }

    /// <summary>Timed steps (after the warm-up).</summary>
    public int Steps { get; init; } = 10;

    /// <summary>Untimed steps first (allocator growth, cuDNN algorithm choice, lazy initialisation).</summary>
    public int Warmup { get; init; } = 2;

    /// <summary><c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Compute precision: <c>float32</c> or <c>bfloat16</c>.</summary>
    public string DType { get; init; } = "float32";

    /// <summary>Train mode: micro-batches per optimizer step (<c>MultiTaskTrainerSettings.AccumulationSteps</c>).</summary>
    public int AccumulationSteps { get; init; } = 1;

    public int Seed { get; init; } = 1234;

    /// <summary>Inference engine: <c>torchsharp</c> (the library's TorchSharp forward) or <c>onnx</c> (the same network exported to ONNX, run by ONNX Runtime on the CPU).</summary>
    public string Engine { get; init; } = "torchsharp";

    /// <summary>Intra-op CPU threads; null leaves libtorch's default.</summary>
    public int? Threads { get; init; }

    /// <summary>Record the per-module timing table (<see cref="StepProfiler"/>); CPU only.</summary>
    public bool Profile { get; init; }

    /// <summary>Where to write the JSON result; null writes none.</summary>
    public string? JsonPath { get; init; }

    /// <summary>Whether the run computes in bfloat16.</summary>
    public bool IsBFloat16 => DType == "bfloat16";

    /// <summary>The network of this run: the named configuration with the image size applied, validated.</summary>
    public MtLoraNetworkOptions NetworkOptions()
    {
        var options = BenchmarkConfigs.Get(Config);
        if (ImageSize is int size) options.ImageSize = size;
        options.Validate();
        return options;
    }

    /// <summary>Checks the values; the message names the option at fault.</summary>
    public void Validate()
    {
        if (Batch < 1) throw new ArgumentException($"--batch must be at least 1, got {Batch}.");
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}.");
        if (Warmup < 0) throw new ArgumentException($"--warmup must be 0 or more, got {Warmup}.");
        if (DType is not ("float32" or "bfloat16")) throw new ArgumentException($"--dtype must be float32 or bfloat16, got '{DType}'.");
        if (IsBFloat16 && Device == "cpu")
            throw new ArgumentException("--dtype bfloat16 needs --device cuda: bfloat16 kernels on the CPU are slower than float32, so the library refuses bfloat16 there.");
        if (AccumulationSteps < 1 || Batch % AccumulationSteps != 0)
            throw new ArgumentException($"--accumulation-steps must be at least 1 and divide --batch ({Batch}) into equal micro-batches, got {AccumulationSteps}.");
        if (Profile && Device != "cpu") throw new ArgumentException("--profile measures CPU time per module and needs --device cpu (CUDA kernels run asynchronously).");
        if (Threads is < 1) throw new ArgumentException($"--threads must be at least 1, got {Threads}.");
        if (Engine is not ("torchsharp" or "onnx")) throw new ArgumentException($"--engine must be torchsharp or onnx, got '{Engine}'.");
        if (Engine == "onnx" && (Mode != BenchmarkMode.Infer || Device != "cpu" || IsBFloat16))
            throw new ArgumentException("--engine onnx measures float32 inference on the CPU: use it with --mode infer, --device cpu, --dtype float32.");
        if (!BenchmarkConfigs.Names.Contains(Config)) throw new ArgumentException($"--config must be one of {string.Join(", ", BenchmarkConfigs.Names)}, got '{Config}'.");
    }
}
