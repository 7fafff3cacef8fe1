using Google.Protobuf;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Onnx.Protobuf;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// Exports a multi-task Swin network with MTLoRA adapters to ONNX, for ONNX Runtime, ML.NET's <c>ApplyOnnxModel</c> and
/// other ONNX runtimes.
/// </summary>
/// <remarks>
/// <para>The graph is the network in evaluation mode, opset 17, standard operators only. One input <c>input</c>
/// (N, 3, S, S) float32 in the network's input normalisation (<c>(pixel/255 − mean)/std</c>, see
/// <see cref="MtLoraOnnxMetadata"/>), N dynamic; one output per task named by its reference name (<c>semseg</c>,
/// <c>human_parts</c>, <c>sal</c>, <c>normals</c>), (N, C_task, S, S) float32: the raw outputs the network computes (logits,
/// saliency logit, unnormalised normals). The shared LoRA is merged into the frozen weights; the task adapters of the last
/// block of each stage stay separate thin matmuls; the decoder BatchNorm is folded into its convolution.</para>
/// <para>The graph is built from the network options and the state dict by name, in memory; a key the exporter cannot place
/// (a module it does not support) or a missing one fails before anything is written.</para>
/// </remarks>
public static class MtLoraOnnxExporter
{
    /// <summary>Exports a network given by its options and an unmerged state dict (reference names).</summary>
    /// <param name="network">The architecture.</param>
    /// <param name="stateDict">The weights by reference name (e.g. a reference MTLoRA checkpoint, or <see cref="MultiTaskSwin"/>'s
    /// <c>state_dict()</c> while not merged). Not modified.</param>
    /// <param name="destination">Where to write the ONNX protobuf.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="InvalidDataException">A tensor the configuration needs is missing or has the wrong shape (the message names it).</exception>
    /// <exception cref="NotSupportedException">The state dict holds a module the exporter does not support (the message names it).</exception>
    public static void Export(MtLoraNetworkOptions network, IReadOnlyDictionary<string, Tensor> stateDict, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Build(network, stateDict, null).WriteTo(destination);
    }

    /// <summary>Exports to a file, atomically: the file appears complete or not at all.</summary>
    /// <param name="network">The architecture.</param>
    /// <param name="stateDict">The weights by reference name.</param>
    /// <param name="path">The model.onnx to write (replaced if it exists).</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong shape.</exception>
    /// <exception cref="NotSupportedException">The state dict holds a module the exporter does not support.</exception>
    /// <exception cref="IOException">The file cannot be written (nothing is left behind).</exception>
    public static void Export(MtLoraNetworkOptions network, IReadOnlyDictionary<string, Tensor> stateDict, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var model = Build(network, stateDict, null);
        AtomicFile.Write(path, stream => model.WriteTo(stream));
    }

    /// <summary>Exports a live network (its options and its current weights).</summary>
    /// <param name="network">The network; it must not be merged (<see cref="MultiTaskSwin.IsMerged"/>): the exporter merges itself.</param>
    /// <param name="destination">Where to write the ONNX protobuf.</param>
    /// <exception cref="NotSupportedException">The network is merged (call <see cref="MultiTaskSwin.UnmergeLora"/> first), or holds a module the exporter does not support.</exception>
    public static void Export(MultiTaskSwin network, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(destination);
        if (network.IsMerged)
            throw new NotSupportedException("ONNX export of MultiTaskSwin: its LoRA is merged into the weights (MergeLora); call UnmergeLora() first, the exporter merges itself.");
        using var scope = NewDisposeScope();
        Build(network.Options, network.state_dict(), null).WriteTo(destination);
    }

    /// <summary>The ONNX model in memory; nothing is written until it is complete.</summary>
    internal static ModelProto Build(MtLoraNetworkOptions network, IReadOnlyDictionary<string, Tensor> stateDict, ImagePreprocessing? preprocessing)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(stateDict);
        network.Validate();
        preprocessing ??= ImagePreprocessing.Reference(network.ImageSize);
        if (preprocessing.Size != network.ImageSize)
            throw new ArgumentException($"The preprocessing resizes to {preprocessing.Size} px but the network takes {network.ImageSize} px images.", nameof(preprocessing));
        var metadata = new MtLoraOnnxMetadata(network, preprocessing.Mean, preprocessing.Std, preprocessing.Interpolation, MtLoraOnnxMetadata.CurrentLibraryVersion());
        var graph = NetworkGraph.Build(network, stateDict);
        return graph.ToModel("mtlora", "Microsoft.ML.MtLora", metadata.LibraryVersion,
            $"MTLoRA multi-task Swin ({string.Join(", ", metadata.Tasks.Select(t => t.Name))}), evaluation mode, input {NetworkGraph.InputName} (N, 3, {network.ImageSize}, {network.ImageSize}).",
            metadata.ToProperties());
    }
}
