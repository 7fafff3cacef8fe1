using System.CommandLine;
using Microsoft.ML.MtLora.Data.Formats;

namespace MtLora.Benchmarks;

/// <summary>
/// <c>Mtlora.Benchmarks --mode train|infer --config tiny|small|swin-t ...</c> (or <c>--mode data</c>, see <see cref="DataBenchmark"/>): training or inference throughput (images/s)
/// and peak memory of the MTLoRA network. One human-readable line on stdout, progress on stderr, the full result as JSON
/// with <c>--json</c>. See eng/benchmarks/README.md.
/// </summary>
public static class Program
{
    /// <summary>Entry point. Bad options print one line on stderr and exit with 2.</summary>
    public static int Main(string[] args)
    {
        if (DataBenchmark.IsRequested(args)) return DataBenchmark.Run(args);  // --mode data: the training input path (DataBenchmark.cs)
        var mode = new Option<string>("--mode") { Description = "train (forward, losses, backward, clip, AdamW) or infer (eval, LoRA merged, forward).", DefaultValueFactory = _ => "train" };
        mode.AcceptOnlyFromAmong("train", "infer");
        var config = new Option<string>("--config") { Description = "Network: tiny (tiny4 fixture, 128 px), small (embed 48, 2-2-2-2, 224 px), swin-t (the paper's Swin-T, 448 px, r=64).", DefaultValueFactory = _ => "tiny" };
        config.AcceptOnlyFromAmong([.. BenchmarkConfigs.Names]);
        var batch = new Option<int>("--batch") { Description = "Images per step.", DefaultValueFactory = _ => 8 };
        var imageSize = new Option<int?>("--image-size") { Description = "Input side in pixels (default: the configuration's)." };
        var steps = new Option<int>("--steps") { Description = "Timed steps.", DefaultValueFactory = _ => 10 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps before the timed ones.", DefaultValueFactory = _ => 2 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (CUDA on Linux: set MTLORA_LIBTORCH to a PyTorch install's torch/lib).", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "float32, or bfloat16 on CUDA (the trainer's policy: network in bfloat16 except the normalisation layers; losses, gradients and AdamW master weights in float32).", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "bfloat16");
        var accumulation = new Option<int>("--accumulation-steps") { Description = "train: micro-batches per optimizer step (the batch must be a multiple).", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Seed of the weights and the random batch.", DefaultValueFactory = _ => 1234 };
        var engine = new Option<string>("--engine") { Description = "With --mode infer on the CPU: torchsharp (the library's forward, LoRA merged) or onnx (the network exported to ONNX, run by ONNX Runtime).", DefaultValueFactory = _ => "torchsharp" };
        engine.AcceptOnlyFromAmong("torchsharp", "onnx");
        var threads = new Option<int?>("--threads") { Description = "CPU intra-op threads (default: libtorch's choice)." };
        var json = new Option<FileInfo?>("--json") { Description = "Write the result as JSON to this file." };
        var profile = new Option<bool>("--profile") { Description = "Per-module timing: thread CPU time per region of the step (forward and backward), as a table (CPU only)." };

        var root = new RootCommand("Training / inference throughput (images/s) and peak memory of the MTLoRA multi-task Swin network.");
        foreach (var o in new Option[] { mode, config, batch, imageSize, steps, warmup, device, dtype, accumulation, seed, threads, json, engine, profile })
            root.Options.Add(o);
        root.SetAction(parseResult =>
        {
            var settings = new BenchmarkSettings
            {
                Mode = parseResult.GetValue(mode) == "infer" ? BenchmarkMode.Infer : BenchmarkMode.Train,
                Config = parseResult.GetValue(config)!,
                Batch = parseResult.GetValue(batch),
                ImageSize = parseResult.GetValue(imageSize),
                Steps = parseResult.GetValue(steps),
                Warmup = parseResult.GetValue(warmup),
                Device = parseResult.GetValue(device)!,
                DType = parseResult.GetValue(dtype)!,
                AccumulationSteps = parseResult.GetValue(accumulation),
                Seed = parseResult.GetValue(seed),
                Threads = parseResult.GetValue(threads),
                Engine = parseResult.GetValue(engine)!,
                JsonPath = parseResult.GetValue(json)?.FullName,
                Profile = parseResult.GetValue(profile),
            };
            var result = ThroughputBenchmark.Run(settings, Console.Error);
            Console.WriteLine(result.ToString());
            if (result.Profile is { } rows) Console.WriteLine(StepProfiler.ToMarkdown(rows));
            if (settings.JsonPath is { } path)
                AtomicFile.Write(path, stream =>
                {
                    using var writer = new StreamWriter(stream, leaveOpen: true);
                    writer.Write(result.ToJson() + Environment.NewLine);
                });
            return 0;
        });

        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException
                                      or DllNotFoundException or DirectoryNotFoundException or FileNotFoundException or IOException)
        {
            Console.Error.WriteLine($"Mtlora.Benchmarks: error: {e.Message}");
            return 2;
        }
        catch (TypeInitializationException e) when (e.TypeName == "TorchSharp.torch")
        {
            // No libtorch next to the app (the device publish carries none) and MTLORA_LIBTORCH unset or wrong.
            var cause = (e.InnerException?.Message ?? e.Message).Split('\n')[0];
            Console.Error.WriteLine($"Mtlora.Benchmarks: error: TorchSharp found no libtorch ({cause}) Set {Microsoft.ML.MtLora.TorchRuntime.LibTorchDirectoryVariable} " +
                                    "to the torch/lib folder of a PyTorch install (and put it first in LD_LIBRARY_PATH), as eng/benchmarks/device-suite.sh does.");
            return 2;
        }
    }
}
