using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>Runs an ONNX model with ONNX Runtime alone (no code of the library on the path), one thread.</summary>
internal static class OnnxRunner
{
    /// <summary>Every output of <paramref name="model"/> for one float input named <c>input</c>, as torch tensors for comparison.</summary>
    public static Dictionary<string, Tensor> Run(byte[] model, Tensor input)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        using var contiguous = input.to(float32).contiguous();
        var dense = new DenseTensor<float>(contiguous.data<float>().ToArray(), contiguous.shape.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", dense)]);
        var outputs = new Dictionary<string, Tensor>();
        foreach (var r in results)
        {
            var t = r.AsTensor<float>();
            outputs[r.Name] = tensor(t.ToArray(), t.Dimensions.ToArray().Select(d => (long)d).ToArray());
        }
        return outputs;
    }

    /// <summary>Writes a valid ONNX model that is not an MTLoRA export (one Relu, no metadata), with the library's schema classes.</summary>
    public static void WriteForeignModel(string path)
    {
        var graph = new Microsoft.ML.MtLora.Onnx.OnnxGraph();
        graph.Input("x", [null, 3], "batch");
        graph.NodeTo("Relu", "y", ["x"]);
        graph.Output("y", [null, 3], "batch");
        using var file = File.Create(path);
        Google.Protobuf.MessageExtensions.WriteTo(graph.ToModel("other", "test", "1", "", []), file);
    }

    /// <summary>The model's custom metadata, as ONNX Runtime reads it.</summary>
    public static Dictionary<string, string> Metadata(byte[] model)
    {
        using var session = new InferenceSession(model);
        return new Dictionary<string, string>(session.ModelMetadata.CustomMetadataMap);
    }
}
