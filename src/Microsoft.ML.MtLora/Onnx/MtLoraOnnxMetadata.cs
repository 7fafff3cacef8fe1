using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Visualization;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// What an exported model.onnx says about itself in its metadata (<c>metadata_props</c>, keys <c>mtlora.*</c>): the tasks
/// and their classes, the input size and normalisation, the network configuration and the library version. ONNX Runtime
/// shows them as <c>InferenceSession.ModelMetadata.CustomMetadataMap</c>.
/// </summary>
public sealed class MtLoraOnnxMetadata
{
    /// <summary>Key of the format marker; its value is <see cref="FormatValue"/>.</summary>
    public const string FormatKey = "mtlora.format";

    /// <summary>The format marker of the models this library writes (version 1).</summary>
    public const string FormatValue = "mtlora-onnx-1";

    /// <summary>Key of the task list: reference names, comma-separated, in output order (<c>semseg,human_parts,sal,normals</c>).</summary>
    public const string TasksKey = "mtlora.tasks";

    /// <summary>Key of the output channels per task, e.g. <c>semseg:21,human_parts:7,sal:1,normals:3</c>.</summary>
    public const string OutputsKey = "mtlora.outputs";

    /// <summary>
    /// Key of each task's kind, e.g. <c>semseg:segmentation,depth:depth,normals:surface_normals,edge:binary_map</c>: how a
    /// consumer without this library post-processes each output (argmax, sigmoid, unit vectors, raw values). Written since
    /// tasks other than PASCAL-Context's could be exported; a model without it (exported before) is read as before, its
    /// tasks then known from <see cref="NetworkKey"/>, which carries every descriptor whole.
    /// </summary>
    public const string KindsKey = "mtlora.kinds";

    /// <summary>Prefix of the class-name keys of the classification tasks (<c>mtlora.classes.semseg</c>: a JSON array of names by label).</summary>
    public const string ClassesKeyPrefix = "mtlora.classes.";

    /// <summary>Key of the square input size S (the input is (N, 3, S, S)).</summary>
    public const string ImageSizeKey = "mtlora.image_size";

    /// <summary>Key of the per-channel (R, G, B) mean of the input normalisation, on the 0..1 scale, comma-separated.</summary>
    public const string MeanKey = "mtlora.mean";

    /// <summary>Key of the per-channel (R, G, B) standard deviation of the input normalisation, comma-separated.</summary>
    public const string StdKey = "mtlora.std";

    /// <summary>Key of the resize interpolation the model was trained with (<c>bicubic</c>).</summary>
    public const string InterpolationKey = "mtlora.interpolation";

    /// <summary>Key of the network configuration, JSON with the reference's snake_case keys.</summary>
    public const string NetworkKey = "mtlora.network";

    /// <summary>Key of the version of Microsoft.ML.MtLora that wrote the model.</summary>
    public const string LibraryVersionKey = "mtlora.library_version";

    internal MtLoraOnnxMetadata(MtLoraNetworkOptions network, float[] mean, float[] std, string interpolation, string libraryVersion)
    {
        _network = network.Clone();
        Tasks = network.Tasks.ToArray();
        ImageSize = network.ImageSize;
        Mean = (float[])mean.Clone();
        Std = (float[])std.Clone();
        Interpolation = interpolation;
        LibraryVersion = libraryVersion;
    }

    private readonly MtLoraNetworkOptions _network;

    /// <summary>The tasks, in the order of the graph outputs (each output is named by the task's reference name).</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>The square input size S.</summary>
    public int ImageSize { get; }

    /// <summary>Per-channel (R, G, B) mean on the 0..1 scale: the input is <c>(pixel/255 − mean)/std</c>.</summary>
    public IReadOnlyList<float> Mean { get; }

    /// <summary>Per-channel (R, G, B) standard deviation on the 0..1 scale.</summary>
    public IReadOnlyList<float> Std { get; }

    /// <summary>The resize interpolation of the training pipeline (<c>bicubic</c>).</summary>
    public string Interpolation { get; }

    /// <summary>The version of Microsoft.ML.MtLora that wrote the model.</summary>
    public string LibraryVersion { get; }

    /// <summary>The network configuration (a copy).</summary>
    public MtLoraNetworkOptions Network => _network.Clone();

    /// <summary>The metadata as the ONNX model stores it (key → value).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ToProperties()
    {
        static string Floats(IEnumerable<float> v) => string.Join(",", v.Select(f => f.ToString("R", CultureInfo.InvariantCulture)));
        var props = new List<KeyValuePair<string, string>>
        {
            new(FormatKey, FormatValue),
            new(TasksKey, string.Join(",", Tasks.Select(t => t.Name))),
            new(OutputsKey, string.Join(",", Tasks.Select(t => $"{t.Name}:{t.OutputChannels}"))),
            new(KindsKey, Kinds(Tasks)),
        };
        foreach (var t in Tasks.Where(t => t.IsClassification))
            props.Add(new(ClassesKeyPrefix + t.Name, JsonSerializer.Serialize(ClassNames.For(t))));
        props.Add(new(ImageSizeKey, ImageSize.ToString(CultureInfo.InvariantCulture)));
        props.Add(new(MeanKey, Floats(Mean)));
        props.Add(new(StdKey, Floats(Std)));
        props.Add(new(InterpolationKey, Interpolation));
        props.Add(new(NetworkKey, _network.ToJsonNode().ToJsonString()));
        props.Add(new(LibraryVersionKey, LibraryVersion));
        return props;
    }

    /// <summary>Reads the metadata of a model this library exported.</summary>
    /// <param name="properties">The model's metadata properties (e.g. ONNX Runtime's <c>ModelMetadata.CustomMetadataMap</c>).</param>
    /// <param name="source">The model's name for messages, usually its path.</param>
    /// <returns>The metadata.</returns>
    /// <exception cref="InvalidDataException">The model was not exported by this library (no <c>mtlora.*</c> metadata), or a value is
    /// missing or malformed; the message names the source and the key.</exception>
    public static MtLoraOnnxMetadata FromProperties(IReadOnlyDictionary<string, string> properties, string source)
    {
        ArgumentNullException.ThrowIfNull(properties);
        if (!properties.TryGetValue(FormatKey, out var format))
            throw new InvalidDataException(
                $"'{source}' is an ONNX model without MTLoRA metadata (no '{FormatKey}' entry): it was not exported by Microsoft.ML.MtLora " +
                "(mtlora export-onnx, MtLoraTransformer.ExportOnnx), so its tasks, input size and normalisation are unknown.");
        if (format != FormatValue)
            throw new InvalidDataException($"'{source}' has MTLoRA metadata of format '{format}'; this library reads '{FormatValue}'.");
        string Get(string key) => properties.TryGetValue(key, out var v)
            ? v : throw new InvalidDataException($"'{source}': the MTLoRA metadata lacks '{key}'.");

        var network = MtLoraNetworkOptions.FromJson(Get(NetworkKey), $"{source} metadata '{NetworkKey}'");
        var tasks = Get(TasksKey);
        if (tasks != string.Join(",", network.Tasks.Select(t => t.Name)))
            throw new InvalidDataException($"'{source}': metadata '{TasksKey}' ({tasks}) disagrees with the tasks of '{NetworkKey}'.");
        if (properties.TryGetValue(KindsKey, out var kinds) && kinds != Kinds(network.Tasks))
            throw new InvalidDataException($"'{source}': metadata '{KindsKey}' ({kinds}) disagrees with the tasks of '{NetworkKey}' ({Kinds(network.Tasks)}).");
        if (!int.TryParse(Get(ImageSizeKey), NumberStyles.Integer, CultureInfo.InvariantCulture, out int size) || size != network.ImageSize)
            throw new InvalidDataException($"'{source}': metadata '{ImageSizeKey}' ({Get(ImageSizeKey)}) disagrees with img_size {network.ImageSize} of '{NetworkKey}'.");
        return new MtLoraOnnxMetadata(network, ParseThree(Get(MeanKey), MeanKey, source), ParseThree(Get(StdKey), StdKey, source),
            Get(InterpolationKey), Get(LibraryVersionKey));
    }

    /// <summary>The <see cref="KindsKey"/> value: <c>name:kind</c> per task, the kind in the network JSON's snake_case.</summary>
    private static string Kinds(IEnumerable<DenseTaskDescriptor> tasks) =>
        string.Join(",", tasks.Select(t => $"{t.Name}:{DenseTaskJson.KindName(t.Kind)}"));

    private static float[] ParseThree(string text, string key, string source)
    {
        var parts = text.Split(',');
        var values = new float[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
                throw new InvalidDataException($"'{source}': metadata '{key}' must be three comma-separated numbers, got '{text}'.");
        if (values.Length != 3) throw new InvalidDataException($"'{source}': metadata '{key}' must be three comma-separated numbers, got '{text}'.");
        return values;
    }

    /// <summary>The version string of this library (informational version).</summary>
    internal static string CurrentLibraryVersion()
    {
        var asm = typeof(MtLoraOnnxMetadata).Assembly;
        return asm.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion
            ?? asm.GetName().Version?.ToString() ?? "unknown";
    }

    /// <summary>A JSON object of the metadata (as <c>mtlora export-onnx</c> prints it).</summary>
    public JsonObject ToJson() => new()
    {
        ["tasks"] = new JsonArray(Tasks.Select(t => (JsonNode)t.Name).ToArray()),
        ["kinds"] = new JsonArray(Tasks.Select(t => (JsonNode)DenseTaskJson.KindName(t.Kind)).ToArray()),
        ["image_size"] = ImageSize,
        ["mean"] = new JsonArray(Mean.Select(v => (JsonNode)v).ToArray()),
        ["std"] = new JsonArray(Std.Select(v => (JsonNode)v).ToArray()),
        ["interpolation"] = Interpolation,
        ["library_version"] = LibraryVersion,
    };
}
