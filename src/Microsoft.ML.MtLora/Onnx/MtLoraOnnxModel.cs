using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// An exported MTLoRA model.onnx loaded in ONNX Runtime, predicting what <see cref="MtLoraTransformer"/> predicts: the
/// same preprocessing (the model's input size, mean and std, bicubic resize), the graph run by ONNX Runtime instead of
/// TorchSharp, and the same post-processing (outputs resized back to each image's size, then class ids, softmax,
/// sigmoid, unit normals), under the transformer's column names.
/// </summary>
/// <remarks>
/// The library references ONNX Runtime's managed API only; the application adds the native runtime, the
/// <c>Microsoft.ML.OnnxRuntime</c> package (CPU) or another build of it (CUDA, DirectML, ...). The pre- and post-processing
/// are the transformer's own TorchSharp code, so TorchSharp's native backend is needed too; to serve a model with ML.NET
/// and ONNX Runtime alone, see the OnnxScoring sample (<c>ApplyOnnxModel</c>).
/// </remarks>
public sealed class MtLoraOnnxModel : IDisposable
{
    private readonly OnnxRuntimeNetwork _network;
    private readonly DensePredictor _predictor;
    private readonly HashSet<string> _columns;
    private readonly object _gate = new();
    private bool _disposed;

    private MtLoraOnnxModel(string path, InferenceSession session, MtLoraOnnxMetadata metadata)
    {
        Path = path;
        Metadata = metadata;
        _network = new OnnxRuntimeNetwork(session, metadata.Tasks.Select(t => t.Name).ToArray());
        var preprocessing = new ImagePreprocessing(metadata.ImageSize, metadata.Mean.ToArray(), metadata.Std.ToArray(), metadata.Interpolation);
        _predictor = new DensePredictor(_network, _gate, metadata.Tasks, preprocessing, CPU);
        _columns = metadata.Tasks.SelectMany(t => new[] { t.PredictionColumnName, t.ScoreColumnName }).OfType<string>().ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The file the model was loaded from.</summary>
    public string Path { get; }

    /// <summary>The model's MTLoRA metadata (tasks, input size, normalisation, network configuration).</summary>
    public MtLoraOnnxMetadata Metadata { get; }

    /// <summary>The tasks, in output order.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => Metadata.Tasks;

    /// <summary>Loads a model.onnx written by <see cref="MtLoraOnnxExporter"/> (or <c>mtlora export-onnx</c>).</summary>
    /// <param name="path">The model file.</param>
    /// <param name="threads">ONNX Runtime's intra-op threads; 0 lets ONNX Runtime choose (one per physical core).</param>
    /// <returns>The loaded model; dispose it to free the session.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or an ONNX model without this library's metadata, inputs or outputs; the message names the file.</exception>
    /// <exception cref="DllNotFoundException">The native ONNX Runtime is missing: add the <c>Microsoft.ML.OnnxRuntime</c> package to the application.</exception>
    public static MtLoraOnnxModel Load(string path, int threads = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (threads < 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "The thread count must be 0 (ONNX Runtime's choice) or positive.");
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        InferenceSession session;
        try
        {
            using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1 };
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model that ONNX Runtime can load: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        catch (TypeInitializationException e) when (e.InnerException is DllNotFoundException missing)
        {
            throw new DllNotFoundException($"The native ONNX Runtime library was not found ({missing.Message}); add the Microsoft.ML.OnnxRuntime package to the application.", e);
        }
        try
        {
            var metadata = MtLoraOnnxMetadata.FromProperties(session.ModelMetadata.CustomMetadataMap, path);
            if (!session.InputMetadata.ContainsKey(NetworkGraph.InputName))
                throw new InvalidDataException($"'{path}' has no input '{NetworkGraph.InputName}' (inputs: {string.Join(", ", session.InputMetadata.Keys)}).");
            var missing = metadata.Tasks.Select(t => t.Name).Where(t => !session.OutputMetadata.ContainsKey(t)).ToList();
            if (missing.Count > 0)
                throw new InvalidDataException($"'{path}' lacks the output(s) {string.Join(", ", missing)} that its metadata lists.");
            return new MtLoraOnnxModel(System.IO.Path.GetFullPath(path), session, metadata);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Runs the graph on a batch already preprocessed: <paramref name="input"/> holds (N, 3, S, S) normalised values.</summary>
    /// <param name="input">The batch, row-major; its length must be a multiple of 3·S·S.</param>
    /// <returns>Each task's raw outputs (N, C, S, S), row-major, by reference name.</returns>
    public IReadOnlyDictionary<string, float[]> Run(float[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        int s = Metadata.ImageSize;
        long per = 3L * s * s;
        if (input.Length == 0 || input.Length % per != 0)
            throw new ArgumentException($"The input holds {input.Length} values; a batch of (N, 3, {s}, {s}) images needs a positive multiple of {per}.", nameof(input));
        lock (_gate) return _network.Run(input, [(int)(input.Length / per), 3, s, s]);
    }

    /// <summary>Predicts images as <see cref="MtLoraTransformer"/> does, in one ONNX Runtime call for the batch.</summary>
    /// <param name="images">The images, any size each.</param>
    /// <returns>Per image: its size and every prediction column of the model's tasks.</returns>
    public IReadOnlyList<MtLoraOnnxPrediction> Predict(IReadOnlyList<MLImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        return _predictor.Predict(images, _columns, "images").Select(p => new MtLoraOnnxPrediction(p.Height, p.Width, p.Columns)).ToArray();
    }

    /// <summary>Frees the ONNX Runtime session.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        lock (_gate)
        {
            _predictor.NetworkDisposed = true;
            _network.Dispose();
        }
        _disposed = true;
    }
}

/// <summary>The predictions of one image by <see cref="MtLoraOnnxModel"/>, under <see cref="MtLoraTransformer"/>'s column names.</summary>
public sealed class MtLoraOnnxPrediction
{
    internal MtLoraOnnxPrediction(int height, int width, IReadOnlyDictionary<string, Array> columns)
    {
        Height = height;
        Width = width;
        Columns = columns;
    }

    /// <summary>The image height H (every map's height).</summary>
    public int Height { get; }

    /// <summary>The image width W.</summary>
    public int Width { get; }

    /// <summary>
    /// Column name → values, laid out as the transformer's columns, per task by its kind (<see cref="DenseTaskDescriptor"/>'s
    /// column names): a segmentation's <c>byte[]</c> H·W class ids (<c>SemsegPredictedLabel</c>) and <c>float[]</c> K·H·W
    /// probabilities (<c>SemsegScore</c>), a binary map's H·W probabilities (<c>SaliencyProbability</c>, <c>EdgeProbability</c>),
    /// 3·H·W unit normals (<c>NormalsPredicted</c>), H·W depth values (<c>DepthPredicted</c>).
    /// </summary>
    public IReadOnlyDictionary<string, Array> Columns { get; }

    /// <summary>The class map of a classification task (H·W class ids, row-major).</summary>
    /// <param name="task">A segmentation task of the model.</param>
    public byte[] ClassMap(DenseTaskDescriptor task) => (byte[])Get(task.PredictionColumnName);

    /// <summary>The float values of a column (scores, saliency probabilities, normals).</summary>
    /// <param name="column">The column name, e.g. <c>SaliencyProbability</c>.</param>
    public float[] Values(string column) => (float[])Get(column);

    private Array Get(string column) => Columns.TryGetValue(column, out var v)
        ? v : throw new KeyNotFoundException($"No column '{column}'; this prediction has {string.Join(", ", Columns.Keys)}.");
}
