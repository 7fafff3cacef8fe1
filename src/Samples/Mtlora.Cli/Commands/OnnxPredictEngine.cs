using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Onnx;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora predict --engine onnx --model model.onnx</c>: scores each image with an exported model in ONNX Runtime
/// (<see cref="MtLoraOnnxModel"/>: the transformer's pre- and post-processing around the ONNX graph) and hands
/// <see cref="PredictCommand"/> the same maps the transformer would have computed for every task the metadata describes
/// (any kind: <see cref="MtLoraOnnxMetadata.Tasks"/>), so the files are written by the same code as with model.zip.
/// </summary>
internal sealed class OnnxPredictEngine : IImagePredictor
{
    /// <summary>The engine names <c>--engine</c> accepts.</summary>
    public const string TorchSharp = "torchsharp";

    /// <summary>ONNX Runtime on an exported model.onnx.</summary>
    public const string Onnx = "onnx";

    private readonly MtLoraOnnxModel _model;

    private OnnxPredictEngine(MtLoraOnnxModel model) => _model = model;

    public IReadOnlyList<DenseTaskDescriptor> Tasks => _model.Tasks;

    /// <summary>Loads the model, with a clear message for a missing file or an ONNX model that is not an exported MTLoRA model.</summary>
    public static OnnxPredictEngine Load(string? path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new CliCommon.UsageException("give --model <model.onnx>.");
        if (!File.Exists(path)) throw new CliCommon.UsageException($"--model: file '{path}' does not exist (expected a model.onnx written by 'mtlora export-onnx').");
        try
        {
            return new OnnxPredictEngine(MtLoraOnnxModel.Load(path));
        }
        catch (InvalidDataException e)
        {
            throw new CliCommon.UsageException($"--model: {e.Message}");
        }
    }

    /// <summary>One ONNX Runtime run for the image.</summary>
    public ImagePrediction Predict(string path, MLImage image)
    {
        var p = _model.Predict([image])[0];
        return new ImagePrediction(p.Height, p.Width,
            Tasks.Where(t => t.IsClassification).ToDictionary(t => t, t => (byte[])p.Columns[t.PredictionColumnName]),
            Tasks.Where(t => !t.IsClassification).ToDictionary(t => t, t => (float[])p.Columns[t.PredictionColumnName]));
    }

    public void Dispose() => _model.Dispose();
}
