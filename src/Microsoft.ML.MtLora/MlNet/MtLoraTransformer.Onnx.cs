using Google.Protobuf;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Onnx;

namespace Microsoft.ML.MtLora;

public sealed partial class MtLoraTransformer
{
    /// <summary>
    /// Exports the trained network to ONNX (see <see cref="MtLoraOnnxExporter"/> for the graph): input <c>input</c>
    /// (N, 3, S, S) normalised with this model's mean and std, one raw output per task, and metadata with the tasks,
    /// classes, input size, normalisation and library version (<see cref="MtLoraOnnxMetadata"/>). Run it with ONNX Runtime,
    /// ML.NET's <c>ApplyOnnxModel</c>, or <see cref="MtLoraOnnxModel"/> for the same columns as this transformer.
    /// </summary>
    /// <param name="destination">Where to write the ONNX protobuf; nothing is written when the export fails.</param>
    /// <exception cref="NotSupportedException">The network holds a module the exporter does not support (the message names it).</exception>
    public void ExportOnnx(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ThrowIfDisposed();
        MtLoraOnnxExporter.Build(_networkOptions, _weights, Preprocessing).WriteTo(destination);
    }

    /// <summary>Exports the trained network to an ONNX file, atomically (see <see cref="ExportOnnx(Stream)"/>).</summary>
    /// <param name="path">The model.onnx to write (replaced if it exists); it appears complete or not at all.</param>
    /// <exception cref="NotSupportedException">The network holds a module the exporter does not support.</exception>
    /// <exception cref="IOException">The file cannot be written (nothing is left behind).</exception>
    public void ExportOnnx(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ThrowIfDisposed();
        var model = MtLoraOnnxExporter.Build(_networkOptions, _weights, Preprocessing);
        AtomicFile.Write(path, stream => model.WriteTo(stream));
    }
}
