using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;

namespace MtLora.Benchmarks;

/// <summary>
/// <c>--engine onnx</c>: the same network (same weights) exported with <see cref="MtLoraOnnxExporter"/> and run by ONNX
/// Runtime on the CPU; one inference step is one <c>InferenceSession.Run</c> on the batch, outputs dropped.
/// </summary>
internal sealed class OnnxInferStep : IDisposable
{
    private readonly InferenceSession _session;
    private readonly NamedOnnxValue[] _inputs;

    /// <summary>Exports <paramref name="model"/> (evaluation mode, not merged) and opens a session on it.</summary>
    /// <param name="model">The network.</param>
    /// <param name="images">The batch (B, 3, S, S), copied once into an ONNX Runtime tensor.</param>
    /// <param name="threads">Intra-op threads; null lets ONNX Runtime choose.</param>
    public OnnxInferStep(MultiTaskSwin model, Tensor images, int? threads)
    {
        using var stream = new MemoryStream();
        MtLoraOnnxExporter.Export(model, stream);
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads ?? 0,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(stream.ToArray(), options);
        using var cpu = images.to(TorchSharp.torch.ScalarType.Float32).cpu().contiguous();
        var dense = new DenseTensor<float>(cpu.data<float>().ToArray(), cpu.shape.Select(d => (int)d).ToArray());
        _inputs = [NamedOnnxValue.CreateFromTensor("input", dense)];
        ModelBytes = stream.Length;
    }

    /// <summary>Size of the exported model.</summary>
    public long ModelBytes { get; }

    /// <summary>The ONNX Runtime version in use.</summary>
    public static string RuntimeVersion => OrtEnv.Instance().GetVersionString();

    /// <summary>One batch through the graph; every task output is computed and dropped.</summary>
    public void Run()
    {
        using var outputs = _session.Run(_inputs);
    }

    public void Dispose() => _session.Dispose();
}
