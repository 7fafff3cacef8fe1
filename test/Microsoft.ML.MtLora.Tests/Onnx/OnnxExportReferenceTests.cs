using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.MtLora.Tests.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>
/// The tiny4 checkpoint trained by the reference PyTorch code, exported to ONNX and run by ONNX Runtime, against the
/// outputs the reference recorded for the same input (io.safetensors): the exported graph alone, no TorchSharp forward.
/// </summary>
public class OnnxExportReferenceTests
{
    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("model.pth")]
    public void Tiny4ExportRunByOnnxRuntimeMatchesTheReferenceOutputs(string checkpoint)
    {
        using var scope = NewDisposeScope();
        var weights = StateDictFile.Load(Fixture.Path("tiny4", checkpoint));
        using var stream = new MemoryStream();
        MtLoraOnnxExporter.Export(Tiny4.Options(), weights, stream);
        using var io = new DisposableDict(Tiny4.Io());

        var outputs = OnnxRunner.Run(stream.ToArray(), io.Items["input"]);

        Assert.Equal(Tiny4.TaskOrder.Order(), outputs.Keys.Order());
        foreach (var t in Tiny4.TaskOrder)
        {
            var expected = io.Items["out." + t];
            Assert.Equal(expected.shape, outputs[t].shape);
            float err = Tiny4.MaxAbs(outputs[t], expected);
            Assert.True(err < 1e-4f, $"{t}: max abs error {err}");
        }
    }
}
