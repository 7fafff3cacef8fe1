using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MtLora.Benchmarks;

/// <summary>
/// Runs one throughput measurement: builds the network on the device, runs the warm-up steps, then times the measured
/// steps with a stopwatch (CUDA synchronised before each reading) and reads the peak memory.
/// </summary>
internal static class ThroughputBenchmark
{
    /// <summary>Runs the benchmark the settings describe.</summary>
    /// <param name="settings">The settings (validated).</param>
    /// <param name="log">Where progress lines go (stderr).</param>
    public static BenchmarkResult Run(BenchmarkSettings settings, TextWriter log)
    {
        settings.Validate();
        TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH (a PyTorch install's torch/lib for CUDA)
        var device = TorchRuntime.ResolveDevice(settings.Device);
        bool cuda = device.type == DeviceType.CUDA;
        if (settings.Threads is int threads) torch.set_num_threads(threads);
        if (cuda)
        {
            // The reference numbers were measured with TF32 off: keep float32 matmuls and convolutions exact.
            torch.backends.cuda.matmul.allow_tf32 = false;
            torch.backends.cudnn.allow_tf32 = false;
        }
        var options = settings.NetworkOptions();

        // The NVML baseline is the CUDA context before the network exists.
        GpuMemoryMonitor? gpu = null;
        string? gpuMemoryNote = null;
        if (cuda)
        {
            using (torch.zeros(1, device: device)) { }   // creates the CUDA context
            torch.cuda.synchronize();
            gpu = GpuMemoryMonitor.TryStart(device.index < 0 ? 0 : device.index, out gpuMemoryNote);
        }

        try
        {
            torch.manual_seed(settings.Seed);
            using var model = new MultiTaskSwin(options, device);
            var counts = model.CountParameters();
            log.WriteLine($"network {settings.Config}: {options.ImageSize} px, embed {options.EmbedDim}, depths {string.Join("-", options.Depths)}, " +
                          $"shared rank {options.SharedRank}, task rank {options.TaskRank}; {counts.Total:N0} parameters, {counts.Trainable:N0} trainable; " +
                          $"device {device}, {settings.DType}, batch {settings.Batch}");
            var imageType = settings.IsBFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
            using var batch = RandomBatch.Create(options.Tasks.Select(t => t.ToPascalTask()).ToArray(), settings.Batch, options.ImageSize, device, imageType, settings.Seed + 1);

            Action step;
            IDisposable? stepState;
            var profiler = settings.Profile ? new StepProfiler() : null;
            if (settings.Mode == BenchmarkMode.Train)
            {
                var trainer = new TrainStep(model, batch, settings, device, profiler);
                step = trainer.Run;
                stepState = trainer;
            }
            else if (settings.Engine == "onnx")
            {
                model.eval();
                var onnx = new OnnxInferStep(model, batch.Images, settings.Threads);
                log.WriteLine($"exported to ONNX ({onnx.ModelBytes / (double)(1 << 20):F1} MiB), ONNX Runtime {OnnxInferStep.RuntimeVersion}");
                step = onnx.Run;
                stepState = onnx;
            }
            else
            {
                model.eval();
                model.MergeLora();
                if (settings.IsBFloat16) Precision.CastForBFloat16(model);
                step = () => InferStep(model, batch.Images, profiler);
                stepState = null;
            }
            ProfileRegions.Recorder = profiler;

            using (stepState)
            {
                for (int i = 0; i < settings.Warmup; i++)
                {
                    step();
                    log.WriteLine($"warm-up step {i + 1}/{settings.Warmup}");
                }
                Synchronize(cuda);
                profiler?.Reset();
                bool hostPeakReset = HostMemory.TryResetPeak();

                var stepSeconds = new double[settings.Steps];
                var cpuBefore = ProcessCpuTime();
                var clock = Stopwatch.StartNew();
                var total = Stopwatch.StartNew();
                for (int i = 0; i < settings.Steps; i++)
                {
                    clock.Restart();
                    step();
                    stepSeconds[i] = clock.Elapsed.TotalSeconds;
                }
                Synchronize(cuda);
                double seconds = total.Elapsed.TotalSeconds;
                double cpuSeconds = (ProcessCpuTime() - cpuBefore).TotalSeconds;
                gpu?.Sample();

                Array.Sort(stepSeconds);
                double median = stepSeconds[stepSeconds.Length / 2];
                return new BenchmarkResult
                {
                    Mode = settings.Mode == BenchmarkMode.Train ? "train" : "infer",
                    Engine = settings.Engine == "onnx" ? $"onnxruntime {OnnxInferStep.RuntimeVersion}" : "torchsharp",
                    Config = settings.Config,
                    ImageSize = options.ImageSize,
                    Batch = settings.Batch,
                    Steps = settings.Steps,
                    Warmup = settings.Warmup,
                    Device = device.ToString(),
                    DType = settings.DType,
                    AccumulationSteps = settings.AccumulationSteps,
                    Network = options.ToJsonNode(),
                    TotalParameters = counts.Total,
                    TrainableParameters = counts.Trainable,
                    Seconds = seconds,
                    ImagesPerSecond = settings.Batch * (double)settings.Steps / seconds,
                    MedianStepSeconds = median,
                    MedianImagesPerSecond = settings.Batch / median,
                    StepSecondsSorted = stepSeconds,
                    ProcessCpuSeconds = cpuSeconds,
                    HostPeakWorkingSetBytes = HostMemory.PeakWorkingSet(),
                    HostPeakCoversTimedStepsOnly = hostPeakReset,
                    GpuPeakUsedBytes = gpu?.Peak,
                    GpuBaselineUsedBytes = gpu?.Baseline,
                    GpuMemoryNote = cuda ? gpuMemoryNote ?? "NVML device memory in use (includes the CUDA context and the caching allocator's reserve)" : null,
                    TorchThreads = torch.get_num_threads(),
                    ProcessorCount = Environment.ProcessorCount,
                    Machine = $"{RuntimeInformation.OSDescription}; {RuntimeInformation.ProcessArchitecture}; .NET {Environment.Version}",
                    LibTorch = TorchRuntime.LibTorchDirectory ?? "TorchSharp backend package",
                    TimestampUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
                    Profile = profiler?.Rows(),
                };
            }
        }
        finally
        {
            ProfileRegions.Recorder = null;
            gpu?.Dispose();
        }
    }

    private static TimeSpan ProcessCpuTime()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    private static void Synchronize(bool cuda)
    {
        if (cuda) torch.cuda.synchronize();
    }

    /// <summary>One inference batch: forward only, under inference mode, nothing kept.</summary>
    private static void InferStep(MultiTaskSwin model, Tensor images, StepProfiler? profiler)
    {
        using var scope = torch.NewDisposeScope();
        using var inference = torch.inference_mode();
        _ = model.forward(images);   // per task (B, C, S, S)
        profiler?.EndStep();
    }

    /// <summary>
    /// One training step exactly as <see cref="MultiTaskTrainer"/> runs it (<see cref="MultiTaskTrainer.RunStep"/>): gradients
    /// cleared to none, forward and the reference task losses per micro-batch, backward, gradients collected in float32,
    /// one read of the loss values, global L2 clipping at 5 on the device, AdamW over the reference's two parameter groups
    /// (and in bfloat16 the trainer's master weights). The batch is already on the device, so nothing is copied per step.
    /// </summary>
    private sealed class TrainStep : IDisposable
    {
        private readonly MultiTaskTrainer _trainer;
        private readonly TrainingBatch _batch;
        private readonly StepProfiler? _profiler;

        public TrainStep(MultiTaskSwin model, RandomBatch batch, BenchmarkSettings settings, Device device, StepProfiler? profiler)
        {
            _profiler = profiler;
            _batch = new TrainingBatch(batch.Images, batch.Targets);
            // One batch per epoch and a schedule of one step: the learning rate does not change the cost of a step.
            var trainerSettings = new MultiTaskTrainerSettings
            {
                Epochs = 1,
                WarmupEpochs = 0,
                Device = device,
                UseBFloat16 = settings.IsBFloat16,
                AccumulationSteps = settings.AccumulationSteps,
                Seed = settings.Seed,
            };
            _trainer = new MultiTaskTrainer(model, new DelegateBatchSource(1, (_, _) => []), trainerSettings);
            model.train();
        }

        public void Run()
        {
            using var scope = torch.NewDisposeScope();
            _trainer.RunStep(_batch);
            _profiler?.EndStep();
        }

        public void Dispose() => _trainer.Dispose();
    }
}
