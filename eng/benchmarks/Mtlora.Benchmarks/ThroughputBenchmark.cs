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
    /// <summary>The gradient-norm clip of the reference (<c>TRAIN.CLIP_GRAD = 5.0</c>).</summary>
    private const double ClipGradientNorm = 5.0;

    /// <summary>Any learning rate: throughput does not depend on it. The reference's base rate for batch 32.</summary>
    private const double LearningRate = 5e-4 * 32 / 512;

    private const double WeightDecay = 0.05;

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
                          $"device {device}, {settings.DType}{(settings.Float32Norms ? " (float32 norms)" : "")}, batch {settings.Batch}");
            var imageType = settings.IsBFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
            using var batch = RandomBatch.Create(options.Tasks, settings.Batch, options.ImageSize, device, imageType, settings.Seed + 1);

            Action step;
            IDisposable? stepState;
            if (settings.Mode == BenchmarkMode.Train)
            {
                var trainer = new TrainStep(model, batch, settings.IsBFloat16, settings.Float32Norms);
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
                if (settings.IsBFloat16) CastToBFloat16(model, settings.Float32Norms);
                step = () => InferStep(model, batch.Images);
                stepState = null;
            }

            using (stepState)
            {
                for (int i = 0; i < settings.Warmup; i++)
                {
                    step();
                    log.WriteLine($"warm-up step {i + 1}/{settings.Warmup}");
                }
                Synchronize(cuda);
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
                    Float32Norms = settings.Float32Norms,
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
                };
            }
        }
        finally
        {
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
    private static void InferStep(MultiTaskSwin model, Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        using var inference = torch.inference_mode();
        _ = model.forward(images);   // per task (B, C, S, S)
    }

    /// <summary>
    /// Casts the network to bfloat16. With <paramref name="float32Norms"/> the normalisation layers go back to float32, the
    /// trainer's policy; it needs libtorch's mixed-dtype normalisation kernels (bfloat16 input, float32 affine).
    /// </summary>
    internal static void CastToBFloat16(nn.Module model, bool float32Norms)
    {
        model.to(ScalarType.BFloat16);
        if (!float32Norms) return;
        foreach (var (_, module) in model.named_modules())
            if (module is LayerNorm or BatchNorm1d or BatchNorm2d or BatchNorm3d or GroupNorm)
                module.to(ScalarType.Float32);
    }

    /// <summary>
    /// One training step as <c>MultiTaskTrainer</c> does it: gradients cleared to none, forward, the reference task losses
    /// (float32) and their weighted sum, backward, global L2 clipping at 5, AdamW over the reference's two parameter groups.
    /// In bfloat16 AdamW updates float32 master copies of the trainable parameters, which are written back after the step.
    /// </summary>
    private sealed class TrainStep : IDisposable
    {
        private readonly MultiTaskSwin _model;
        private readonly RandomBatch _batch;
        private readonly bool _bf16;
        private readonly AdamW _optimizer;
        private readonly List<(Parameter Model, Parameter Master)> _optimized;

        public TrainStep(MultiTaskSwin model, RandomBatch batch, bool bf16, bool float32Norms)
        {
            _model = model;
            _batch = batch;
            _bf16 = bf16;
            _model.train();
            var trainable = OptimizerFactory.TrainableParameters(model);
            IReadOnlyList<(string Name, Parameter Parameter)> optimizerParameters = trainable;
            if (bf16)
            {
                // float32 master copies made before the cast; the cast replaces the network's parameter objects.
                var masters = trainable.ToDictionary(t => t.Name, t => new Parameter(t.Parameter.detach().clone(), requires_grad: true));
                CastToBFloat16(model, float32Norms);
                trainable = OptimizerFactory.TrainableParameters(model);
                optimizerParameters = trainable.Select(t => (t.Name, masters[t.Name])).ToList();
            }
            var (optimizer, order) = OptimizerFactory.CreateAdamW(optimizerParameters, LearningRate, WeightDecay);
            _optimizer = optimizer;
            var byName = trainable.ToDictionary(t => t.Name, t => t.Parameter);
            _optimized = order.Select(o => (byName[o.Name], o.Parameter)).ToList();
        }

        public void Run()
        {
            using var scope = torch.NewDisposeScope();
            foreach (var (model, master) in _optimized)
            {
                model.grad = null;
                if (_bf16) master.grad = null;
            }
            var outputs = _model.forward(_batch.Images);                 // per task (B, C, S, S)
            var losses = TaskLosses.Compute(outputs, _batch.Targets);    // float32 scalars, default weights 1, 2, 5, 10
            losses.Total.backward();
            if (_bf16)
            {
                foreach (var (model, master) in _optimized)
                    if (model.grad is { } g) master.grad = g.to(ScalarType.Float32);
            }
            var withGrad = _optimized.Select(o => o.Master).Where(p => p.grad is not null).ToList();
            torch.nn.utils.clip_grad_norm_(withGrad, ClipGradientNorm);
            _optimizer.step();
            if (_bf16)
            {
                using var noGrad = torch.no_grad();
                foreach (var (model, master) in _optimized) model.copy_(master);
            }
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            if (_bf16) foreach (var (_, master) in _optimized) master.Dispose();
        }
    }
}
