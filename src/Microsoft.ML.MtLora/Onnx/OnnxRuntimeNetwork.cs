using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// An exported model.onnx in an ONNX Runtime session, shaped as the network module the transformer's predictor drives
/// (images (B, 3, S, S) in, raw outputs per task name out), so that scoring through ONNX Runtime shares the transformer's
/// pre- and post-processing code.
/// </summary>
internal sealed class OnnxRuntimeNetwork : nn.Module<Tensor, Dictionary<string, Tensor>>
{
    private readonly InferenceSession _session;
    private readonly string[] _tasks;

    public OnnxRuntimeNetwork(InferenceSession session, IReadOnlyList<string> tasks) : base(nameof(OnnxRuntimeNetwork))
    {
        _session = session;
        _tasks = tasks.ToArray();
    }

    /// <summary>Runs the graph on a normalised float batch laid out (N, 3, S, S); returns each task's (N, C, S, S) values.</summary>
    public Dictionary<string, float[]> Run(float[] input, int[] shape)
    {
        var dense = new DenseTensor<float>(input, shape);
        using var results = _session.Run([NamedOnnxValue.CreateFromTensor(NetworkGraph.InputName, dense)], _tasks);
        return results.ToDictionary(r => r.Name, r => r.AsTensor<float>().ToArray(), StringComparer.Ordinal);
    }

    public override Dictionary<string, Tensor> forward(Tensor images)
    {
        using var input = images.to(ScalarType.Float32).cpu().contiguous();
        var shape = input.shape.Select(d => checked((int)d)).ToArray();
        var outputs = Run(input.data<float>().ToArray(), shape);
        var result = new Dictionary<string, Tensor>(_tasks.Length, StringComparer.Ordinal);
        foreach (var t in _tasks)
        {
            var values = outputs[t];
            long perImage = values.Length / shape[0];
            long side = shape[2];
            result[t] = tensor(values, [shape[0], perImage / (side * side), side, side]); // (N, C, S, S)
        }
        return result;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _session.Dispose();
        base.Dispose(disposing);
    }
}
