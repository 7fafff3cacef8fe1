using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

/// <summary>
/// A trained MTLoRA multi-task network as an ML.NET transformer: it reads an image column and adds, per task, the
/// dense predictions at the image's own size. Returned by <see cref="MtLoraEstimator.Fit(IDataView)"/>, loaded by
/// <c>mlContext.Model.Load</c> from a model.zip it was saved into (alone or inside a chain), or rebuilt from an
/// adapters file with <see cref="LoadFromAdapters"/>.
/// </summary>
/// <remarks>
/// <para>Output columns, for an input image of H×W pixels (vectors are flattened row-major, channel first):</para>
/// <list type="table">
/// <listheader><term>column</term><description>type and content</description></listheader>
/// <item><term><c>SemsegPredictedLabel</c></term><description><c>Vector&lt;Byte&gt;</c> of H·W class ids 0..20 (argmax).</description></item>
/// <item><term><c>SemsegScore</c></term><description><c>Vector&lt;Single&gt;</c> of 21·H·W softmax probabilities (C, H, W).</description></item>
/// <item><term><c>HumanPartsPredictedLabel</c></term><description><c>Vector&lt;Byte&gt;</c> of H·W class ids 0..6.</description></item>
/// <item><term><c>HumanPartsScore</c></term><description><c>Vector&lt;Single&gt;</c> of 7·H·W softmax probabilities (C, H, W).</description></item>
/// <item><term><c>SaliencyProbability</c></term><description><c>Vector&lt;Single&gt;</c> of H·W sigmoid probabilities.</description></item>
/// <item><term><c>NormalsPredicted</c></term><description><c>Vector&lt;Single&gt;</c> of 3·H·W unit normals (x, y, z planes).</description></item>
/// <item><term><c>Height</c>, <c>Width</c></term><description><c>Int32</c>: H and W of the row's image.</description></item>
/// </list>
/// <para>
/// Only the trained tasks' columns are added. Each image is resized to the network's input size as in training
/// (bicubic, ImageNet mean and std); the raw outputs are resized back bilinearly to H×W and only then turned into
/// classes, probabilities or unit vectors. When the image column has a known size (e.g. after <c>ResizeImages</c>)
/// the vectors have a known size too, with dimensions (C, H, W); otherwise they are variable-size vectors and the
/// <c>Height</c>/<c>Width</c> columns give the shape. Every column also carries a text annotation <c>Layout</c>.
/// </para>
/// <para>
/// <see cref="Transform"/> is lazy and runs the network on batches of <see cref="BatchSize"/> rows;
/// <c>PredictionEngine</c> runs one row at a time, one forward pass shared by all output columns of the row.
/// Several cursors may run at once: forward passes are serialised on the network. Dispose the transformer to free
/// the network's native memory.
/// </para>
/// <para>
/// <b>Transform and PredictionEngine.</b> Both compute the same thing, and with one libtorch thread
/// (<c>torch.set_num_threads(1)</c>) they agree bit for bit. With several threads (libtorch's default is one per core)
/// libtorch's CPU convolutions (the decoders' 1×1 convolutions) divide their work differently for a batch of
/// <see cref="BatchSize"/> images and for a single image, so the same image can get results that differ in the last
/// bits: a few 1e-7 on the raw outputs, and more on <c>NormalsPredicted</c> (up to 2.8e-6 seen), whose normalisation to
/// unit length magnifies the difference where the predicted vector is short. That is above the 1e-6 tolerance ML.NET's
/// own tests compare floats with; a class id can flip where two classes tie. Compare the two paths with a tolerance, or
/// use one thread when they must agree exactly. <see cref="Transform"/> with the same batch size is deterministic.
/// </para>
/// <para>
/// <b>PredictionEngine input classes (ML.NET 5.0.1).</b> Declare the image property with a size,
/// <c>[ImageType(height, width)] public MLImage Image { get; set; }</c>: the parameterless <c>[ImageType]</c> throws
/// (<c>ArgumentOutOfRangeException</c>, "Must be positive") when the engine is created. Every image must then have
/// that size (resize first; the output vectors have the known size (C, H, W)). For images of any size, leave the property
/// without the attribute and register the unknown-size image type once per process:
/// <c>DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage))</c>. By default ML.NET's
/// <c>PredictionEngine</c> owns the transformer it was made from and disposes it with itself, which frees this model;
/// create it with <c>mlContext.Model.CreatePredictionEngine&lt;TIn, TOut&gt;(model, new PredictionEngineOptions { OwnsTransformer = false })</c>
/// to keep using the model after the engine is disposed.
/// </para>
/// <para>
/// <b>Saving.</b> A model.zip stores the weights and settings, and the input schema it is saved with; ML.NET cannot store
/// an image column in that schema and leaves it out. Save a pipeline that starts from image file paths, e.g.
/// <c>LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")</c> followed by this transformer (the PASCAL
/// loader gives the paths with <c>PascalContextOptions.ImageColumn = PascalImageColumn.FilePath</c>), so that
/// <c>mlContext.Model.Load(path, out var inputSchema)</c> returns a schema a user can score with.
/// </para>
/// </remarks>
public sealed partial class MtLoraTransformer : ITransformer, IDisposable
{
    /// <summary>The name of the text annotation describing a column's layout.</summary>
    public const string LayoutAnnotationName = "Layout";

    private readonly IHost _host;
    private readonly MultiTaskSwin _network;
    private readonly Dictionary<string, Tensor> _weights;      // unmerged, CPU: what is saved, exactly as trained
    private readonly HashSet<string> _frozenParameterNames;    // backbone parameters left out of the adapters file
    private readonly object _gate = new();
    private readonly DensePredictor _predictor;
    private bool _disposed;

    /// <summary>
    /// Builds the transformer from the network settings and an unmerged state dict (taken over: disposed with the
    /// transformer). Every path goes through here: Fit, model.zip load and adapters import.
    /// </summary>
    internal MtLoraTransformer(IHostEnvironment env, MtLoraNetworkOptions networkOptions, Dictionary<string, Tensor> weights,
        ImagePreprocessing preprocessing, string imageColumnName, int batchSize, Device device, bool bfloat16 = false)
    {
        ArgumentNullException.ThrowIfNull(env);
        _host = env.Register(nameof(MtLoraTransformer));
        if (string.IsNullOrWhiteSpace(imageColumnName)) throw new ArgumentException("The image column name must not be empty.", nameof(imageColumnName));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The inference batch size must be at least 1.");
        ArgumentNullException.ThrowIfNull(networkOptions);
        ArgumentNullException.ThrowIfNull(weights);
        if (preprocessing.Size != networkOptions.ImageSize)
            throw new ArgumentException($"The preprocessing resizes to {preprocessing.Size} px but the network takes {networkOptions.ImageSize} px images.", nameof(preprocessing));
        _networkOptions = networkOptions.Clone();
        Tasks = networkOptions.Tasks.ToArray();
        ImageColumnName = imageColumnName;
        BatchSize = batchSize;
        Preprocessing = preprocessing;
        Device = device;
        _network = new MultiTaskSwin(networkOptions);
        try
        {
            _network.LoadStateDict(weights, strict: true);
            // The adapters file leaves out what the network's trainable policy freezes (the pretrained backbone).
            _frozenParameterNames = _network.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name).ToHashSet(StringComparer.Ordinal);
            _network.eval();
            _network.MergeLora(); // inference runs on merged weights; _weights keeps the unmerged tensors for saving
            _network.to(device);
            // bfloat16 inference (MtLoraOptions.UseBFloat16) on CUDA only; _weights stays float32.
            if (bfloat16 && device.type == DeviceType.CUDA) Modeling.Precision.CastForBFloat16(_network);
        }
        catch
        {
            _network.Dispose();
            throw;
        }
        _weights = weights;
        _predictor = new DensePredictor(_network, _gate, Tasks, preprocessing, device);
    }

    /// <summary>What the training run that made this transformer did (validations, kept weights, skipped steps); null for a loaded model.</summary>
    public MtLoraTrainingReport? TrainingReport { get; internal set; }

    /// <summary>The tasks this model predicts, in the network's order.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>The name of the input image column (<c>MLImage</c>, any size).</summary>
    public string ImageColumnName { get; }

    /// <summary>The number of rows per forward pass in <see cref="Transform"/>.</summary>
    public int BatchSize { get; }

    /// <summary>The square size the images are resized to before the network (the training size).</summary>
    public int ImageSize => Preprocessing.Size;

    /// <summary>The device the network runs on.</summary>
    public Device Device { get; }

    /// <summary>The network's architecture settings (tasks, Swin size, ranks, ...), as a copy: changing it has no effect on the model.</summary>
    public MtLoraNetworkOptions NetworkOptions => _networkOptions.Clone();

    private readonly MtLoraNetworkOptions _networkOptions;

    internal ImagePreprocessing Preprocessing { get; }

    /// <summary>Loader workers that read and pre-process images ahead in the batched <see cref="Transform"/> (see MtLoraOptions.DataLoaderParallelism).</summary>
    internal int LoaderParallelism { get; set; } = Data.Preprocessing.DenseBatchReaderOptions.DefaultDegreeOfParallelism;

    /// <summary>Batches read ahead in the batched <see cref="Transform"/> (see MtLoraOptions.DataLoaderPrefetchBatches).</summary>
    internal int LoaderPrefetchBatches { get; set; } = Data.Preprocessing.DenseBatchReaderOptions.DefaultPrefetchBatches;

    /// <summary>Always true: the transformer maps each row to one output row.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The output schema for an input schema: the input columns plus the prediction columns (see the remarks of the class).</summary>
    /// <param name="inputSchema">The input schema; it needs the image column.</param>
    /// <returns>The output schema.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The image column is missing or is not an image.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return MakeBindings(inputSchema).OutputSchema;
    }

    /// <summary>Adds the prediction columns to <paramref name="input"/>, lazily: the network runs when the rows are read, one batch at a time.</summary>
    /// <param name="input">The data, with the image column.</param>
    /// <returns>A data view with the input columns and the prediction columns.</returns>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ThrowIfDisposed();
        return new MtLoraDataView(this, input, MakeBindings(input.Schema));
    }

    /// <summary>
    /// A row-to-row mapper (used by <c>PredictionEngine</c>): one forward pass per row, shared by all output columns. With
    /// several libtorch threads its values can differ from <see cref="Transform"/>'s in the last bits (see the remarks of the class).
    /// </summary>
    /// <param name="inputSchema">The input schema, with the image column.</param>
    /// <returns>The mapper.</returns>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ThrowIfDisposed();
        return new MtLoraRowToRowMapper(this, MakeBindings(inputSchema));
    }

    /// <summary>Frees the network and the weights (native memory).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _predictor.NetworkDisposed = true; // cursors still open fail cleanly instead of touching freed native memory
            _network.Dispose();
            foreach (var t in _weights.Values) t.Dispose();
            _weights.Clear();
        }
    }

    internal DensePredictor Predictor
    {
        get
        {
            ThrowIfDisposed();
            return _predictor;
        }
    }

    internal IHost Host => _host;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private MtLoraBindings MakeBindings(DataViewSchema inputSchema) => new(inputSchema, ImageColumnName, Tasks);
}

/// <summary>Column bookkeeping shared by the data view and the row mapper: input columns pass through, then the outputs.</summary>
internal sealed class MtLoraBindings
{
    public MtLoraBindings(DataViewSchema inputSchema, string imageColumnName, IReadOnlyList<DenseTaskDescriptor> tasks)
    {
        InputSchema = inputSchema;
        var image = inputSchema.GetColumnOrNull(imageColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{imageColumnName}' was not found; the MTLoRA transformer needs an image column (MLImage) of that name. Columns present: {string.Join(", ", inputSchema.Where(c => !c.IsHidden).Select(c => c.Name))}.");
        if (image.Type is not ImageDataViewType imageType)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{imageColumnName}' has type {image.Type}; the MTLoRA transformer needs an image (MLImage), e.g. from mlContext.Transforms.LoadImages.");
        ImageColumn = image;
        KnownHeight = imageType.Height;
        KnownWidth = imageType.Width;
        Outputs = DescribeOutputs(tasks, imageType);

        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (var o in Outputs) builder.AddColumn(o.Name, o.Type, o.Annotations());
        OutputSchema = builder.ToSchema();
    }

    /// <summary>
    /// The output columns for the tasks and the input image type: names, types (known-size vectors when the image size is
    /// known) and annotations. The one description behind both the transformer's schema and the estimator's promise.
    /// </summary>
    public static IReadOnlyList<OutputColumn> DescribeOutputs(IReadOnlyList<DenseTaskDescriptor> tasks, ImageDataViewType imageType)
    {
        int h = imageType.Height, w = imageType.Width;
        var outputs = new List<OutputColumn>();
        foreach (var task in tasks)
        {
            int c = task.OutputChannels;
            switch (task.Kind)
            {
                case DenseTaskKind.Segmentation:
                    outputs.Add(new(task.PredictionColumnName, task, Vector(NumberDataViewType.Byte, 1, h, w),
                        $"class ids 0..{c - 1} (argmax), row-major H x W = Height x Width of the input image"));
                    outputs.Add(new(task.ScoreColumnName!, task, Vector(NumberDataViewType.Single, c, h, w),
                        $"softmax probabilities, C x H x W with C = {c}, H x W = Height x Width of the input image"));
                    break;
                case DenseTaskKind.BinaryMap:
                    outputs.Add(new(task.PredictionColumnName, task, Vector(NumberDataViewType.Single, 1, h, w),
                        $"{(task == DenseTask.Saliency ? "saliency" : task.Name)} probability (sigmoid), row-major H x W = Height x Width of the input image"));
                    break;
                case DenseTaskKind.Depth:
                    outputs.Add(new(task.PredictionColumnName, task, Vector(NumberDataViewType.Single, 1, h, w),
                        $"{task.Name} value (the network's raw output), row-major H x W = Height x Width of the input image"));
                    break;
                case DenseTaskKind.SurfaceNormals:
                    outputs.Add(new(task.PredictionColumnName, task, Vector(NumberDataViewType.Single, 3, h, w),
                        "unit surface normals, 3 x H x W (x, y, z planes), H x W = Height x Width of the input image"));
                    break;
            }
        }
        outputs.Add(new(MtLoraColumnNames.Height, null, NumberDataViewType.Int32, "height H of the input image in pixels"));
        outputs.Add(new(MtLoraColumnNames.Width, null, NumberDataViewType.Int32, "width W of the input image in pixels"));
        return outputs;
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public DataViewSchema.Column ImageColumn { get; }

    /// <summary>Height declared by the image column type, 0 when unknown.</summary>
    public int KnownHeight { get; }

    /// <summary>Width declared by the image column type, 0 when unknown.</summary>
    public int KnownWidth { get; }

    public IReadOnlyList<OutputColumn> Outputs { get; }

    /// <summary>Index of the first output column in <see cref="OutputSchema"/>.</summary>
    public int FirstOutput => InputSchema.Count;

    /// <summary>The output column at an output-schema index, or null for a pass-through input column.</summary>
    public OutputColumn? OutputAt(int index) => index >= FirstOutput ? Outputs[index - FirstOutput] : null;

    /// <summary>The names of the active output columns.</summary>
    public HashSet<string> ActiveOutputs(IEnumerable<DataViewSchema.Column> columns) =>
        columns.Where(c => c.Index >= FirstOutput).Select(c => Outputs[c.Index - FirstOutput].Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>The input columns needed to produce <paramref name="columns"/> (output-schema columns).</summary>
    public IEnumerable<DataViewSchema.Column> InputDependencies(IEnumerable<DataViewSchema.Column> columns)
    {
        var list = columns.ToList();
        var needed = new HashSet<int>(list.Where(c => c.Index < FirstOutput).Select(c => c.Index));
        if (list.Any(c => c.Index >= FirstOutput)) needed.Add(ImageColumn.Index);
        return needed.OrderBy(i => i).Select(i => InputSchema[i]);
    }

    private static VectorDataViewType Vector(PrimitiveDataViewType item, int channels, int h, int w) =>
        h > 0 && w > 0
            ? (channels == 1 ? new VectorDataViewType(item, h, w) : new VectorDataViewType(item, channels, h, w))
            : new VectorDataViewType(item);

    /// <summary>One output column: name, task (null for Height/Width), type and a layout description.</summary>
    internal sealed record OutputColumn(string Name, DenseTaskDescriptor? Task, DataViewType Type, string Layout)
    {
        /// <summary>The column's annotations: the text <see cref="MtLoraTransformer.LayoutAnnotationName"/>.</summary>
        public DataViewSchema.Annotations Annotations()
        {
            var annotations = new DataViewSchema.Annotations.Builder();
            var layout = Layout.AsMemory();
            annotations.Add(MtLoraTransformer.LayoutAnnotationName, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = layout);
            return annotations.ToAnnotations();
        }
    }

    /// <summary>Makes the getter of an output column over whatever prediction <paramref name="current"/> returns.</summary>
    public Delegate MakeGetter<TValue>(OutputColumn column, Func<DensePrediction> current)
    {
        if (column.Type == NumberDataViewType.Int32)
        {
            if (typeof(TValue) != typeof(int)) throw TypeMismatch<TValue>(column, "Int32");
            bool height = column.Name == MtLoraColumnNames.Height;
            ValueGetter<int> g = (ref int v) => { var p = current(); v = height ? p.Height : p.Width; };
            return g;
        }
        var vector = (VectorDataViewType)column.Type;
        int channels = column.Name == column.Task!.ScoreColumnName ? column.Task.OutputChannels : column.Task.PredictionChannels;
        if (vector.ItemType == NumberDataViewType.Byte)
        {
            if (typeof(TValue) != typeof(VBuffer<byte>)) throw TypeMismatch<TValue>(column, "VBuffer<Byte>");
            ValueGetter<VBuffer<byte>> g = (ref VBuffer<byte> dst) => Copy((byte[])Cell(current(), column, vector, channels), ref dst);
            return g;
        }
        if (typeof(TValue) != typeof(VBuffer<float>)) throw TypeMismatch<TValue>(column, "VBuffer<Single>");
        ValueGetter<VBuffer<float>> f = (ref VBuffer<float> dst) => Copy((float[])Cell(current(), column, vector, channels), ref dst);
        return f;
    }

    private Array Cell(DensePrediction p, OutputColumn column, VectorDataViewType vector, int channels)
    {
        if (vector.IsKnownSize && (p.Height != KnownHeight || p.Width != KnownWidth))
            throw new InvalidOperationException(
                $"Column '{ImageColumn.Name}' declares images of {KnownWidth}x{KnownHeight} but a row holds a {p.Width}x{p.Height} image, so '{column.Name}' cannot have its declared size {vector.Size}.");
        if (!p.Columns.TryGetValue(column.Name, out var value))
            throw new InvalidOperationException($"Column '{column.Name}' was not computed for this row (it was not active on the cursor).");
        long expected = (long)channels * p.Height * p.Width;
        if (value.Length != expected)
            throw new InvalidOperationException($"Column '{column.Name}' holds {value.Length} values for a {p.Width}x{p.Height} image; {expected} were expected.");
        return value;
    }

    private static void Copy<T>(T[] values, ref VBuffer<T> dst)
    {
        var editor = VBufferEditor.Create(ref dst, values.Length);
        values.AsSpan().CopyTo(editor.Values);
        dst = editor.Commit();
    }

    private static InvalidOperationException TypeMismatch<TValue>(OutputColumn column, string expected) =>
        new($"Column '{column.Name}' is read as {typeof(TValue).Name}, but its values are {expected}.");
}
