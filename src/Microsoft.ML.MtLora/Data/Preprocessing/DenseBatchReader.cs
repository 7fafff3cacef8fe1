using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Reads an <see cref="IDataView"/> with an image column and dense label columns (as <c>LoadPascalContext</c> produces,
/// possibly after ML.NET transforms) as batches of tensors for the trainer, applying the reference's pre-processing
/// (data/mtl_ds.py::get_transformations): for training, random horizontal flip and random scale/rotation, then a fixed
/// resize to S×S, the ignore rules and the image normalisation; for evaluation, the fixed resize only.
/// </summary>
/// <remarks>
/// <para>Parallel loading: <see cref="DenseBatchReaderOptions.DegreeOfParallelism"/> worker threads decode and pre-process
/// samples while the caller uses the batches already made, up to <see cref="DenseBatchReaderOptions.PrefetchBatches"/> batches
/// ahead. For the PASCAL-Context view each worker reads its own samples' files; for other data the rows come from one cursor,
/// one at a time, and are pre-processed in parallel (<see cref="CursorSampleSource"/>).</para>
/// <para>Why this is safe with TorchSharp 0.107: the workers run no TorchSharp code at all. Decoding is SkiaSharp and managed
/// code (<see cref="PascalSampleDecoder"/>), the geometry and normalisation are managed code (<see cref="CvGeometry"/>,
/// <see cref="SampleTransform"/>), and the results go into plain arrays. The tensors of a batch are made from those arrays on
/// the thread that enumerates the batches, with <c>torch.empty</c>, a memory copy and <c>to(dtype)</c>, none of which creates
/// a <c>Scalar</c>. TorchSharp 0.107 frees a Scalar from its finalizer, so a Scalar created by a torch call on a worker could
/// be freed by a garbage collection that another thread triggers while the native call still reads it; with no torch on the
/// workers there is no such Scalar to lose. (The workers' allocations still cause garbage collections that the training
/// thread's own torch calls must survive: that is why the library bans implicit Scalars everywhere, eng/BannedSymbols.txt.)
/// The workers keep their buffers from sample to sample and the batch buffers are reused across batches and epochs, so the
/// steady state allocates little besides what the file decoders allocate.</para>
/// <para>Determinism: the shuffle order of an epoch is a function of (<see cref="DenseBatchReaderOptions.Seed"/>, epoch) and the
/// augmentation of a sample a function of (seed, epoch, its position in the epoch), and each sample is computed whole by one
/// thread into its own slice of the batch, so the batches are bit-identical for any number of workers, and a run resumed at
/// a batch sees the same samples, augmented the same way, as an uninterrupted run.</para>
/// <para>Errors: a sample that cannot be read stops the epoch with the same exception the single-threaded loader throws (for
/// PASCAL-Context a <see cref="PascalSampleException"/> naming the sample and the file). The batches before it are still
/// returned; the other workers finish the sample they are on and stop; if several samples fail, the first one in epoch
/// order is reported.</para>
/// <para>Label columns: class maps (semseg, human parts, saliency) as Vector of Byte, or Vector of Single holding whole numbers
/// 0..255; normals as Vector of Single, 3·H·W values in CHW order, with 255 marking an invalid pixel. H and W come from the
/// Height/Width columns when present, else from the image. A label whose size differs from the image's (e.g. after an
/// ML.NET image resize) is resized to the image first, as the reference does at load time.</para>
/// </remarks>
public sealed class DenseBatchReader
{
    private readonly IDataView _data;
    private readonly DenseBatchReaderOptions _options;
    private readonly DataViewSchema.Column _image;
    private readonly DataViewSchema.Column? _id, _height, _width;
    private readonly Dictionary<DenseTaskDescriptor, DataViewSchema.Column> _labels = [];
    private readonly SampleTransform _transform;
    private readonly LabelLayout _layout;
    private readonly LabelCache _labelCache = new(LabelCache.DefaultCapacity);

    /// <summary>Creates a reader; the schema is checked now.</summary>
    /// <param name="data">The data: an image column plus one label column per task.</param>
    /// <param name="options">The options; null for the evaluation defaults.</param>
    /// <exception cref="ArgumentException">A column is missing or has the wrong type, or an option is out of range.</exception>
    public DenseBatchReader(IDataView data, DenseBatchReaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        TorchRuntime.Initialize();
        _data = data;
        _options = options ?? new DenseBatchReaderOptions();
        if (_options.BatchSize < 1) throw new ArgumentException($"BatchSize is {_options.BatchSize}; expected at least 1.", nameof(options));
        if (_options.ImageSize < 2) throw new ArgumentException($"ImageSize is {_options.ImageSize}; expected at least 2 (448 for the reference's models).", nameof(options));
        if (_options.PrefetchBatches < 0) throw new ArgumentException($"PrefetchBatches is {_options.PrefetchBatches}; expected 0 (only the batch asked for) or more.", nameof(options));
        if (_options.DegreeOfParallelism < 1) throw new ArgumentException($"DegreeOfParallelism is {_options.DegreeOfParallelism}; expected at least 1.", nameof(options));
        if (!Enum.IsDefined(_options.Geometry)) throw new ArgumentException($"Geometry is {(int)_options.Geometry}; expected one of {string.Join(", ", Enum.GetNames<AugmentationGeometry>())}.", nameof(options));
        if (_options.Draws is null) throw new ArgumentException($"Draws is null; use {nameof(AugmentationDraws)}.{nameof(AugmentationDraws.PascalContext)} (the default) or another {nameof(AugmentationDraws)}.", nameof(options));
        if (_options.Augment && _options.KeepOriginalLabelResolution)
            throw new ArgumentException("Augment and KeepOriginalLabelResolution cannot both be on: original-resolution labels are for evaluation.", nameof(options));

        var schema = data.Schema;
        _image = schema.GetColumnOrNull(_options.ImageColumnName)
            ?? throw new ArgumentException($"The data has no image column '{_options.ImageColumnName}'; columns: {string.Join(", ", schema.Select(c => c.Name))}.", nameof(data));
        if (_image.Type is not ImageDataViewType)
            throw new ArgumentException($"Column '{_image.Name}' has type {_image.Type}; expected an image (ImageDataViewType, e.g. from LoadPascalContext or LoadImages).", nameof(data));
        _id = Optional(schema, _options.IdColumnName, TextDataViewType.Instance);
        _height = Optional(schema, _options.HeightColumnName, NumberDataViewType.Int32);
        _width = Optional(schema, _options.WidthColumnName, NumberDataViewType.Int32);
        if (_height.HasValue != _width.HasValue) { _height = null; _width = null; }

        var tasks = _options.Tasks ?? DenseTaskDescriptor.Pascal.Where(t => schema.GetColumnOrNull(_options.LabelColumn(t)) is not null).ToArray();
        foreach (var task in tasks.Distinct())
        {
            var name = _options.LabelColumn(task);
            var column = schema.GetColumnOrNull(name)
                ?? throw new ArgumentException($"The data has no label column '{name}' for task {task.Name}; columns: {string.Join(", ", schema.Select(c => c.Name))}.", nameof(data));
            var item = (column.Type as VectorDataViewType)?.ItemType;
            bool ok = task.LabelItemType == NumberDataViewType.Single
                ? item == NumberDataViewType.Single
                : item == NumberDataViewType.Byte || item == NumberDataViewType.Single;
            if (!ok)
                throw new ArgumentException($"Label column '{name}' of task '{task.Name}' has type {column.Type}; expected {(task.LabelChannels == 3 ? "Vector<Single> (3·H·W, CHW)" : task.LabelItemType == NumberDataViewType.Single ? "Vector<Single> (H·W)" : "Vector<Byte> or Vector<Single> (H·W)")}.", nameof(data));
            _labels[task] = column;
        }
        _layout = LabelLayout.For(_labels.Keys.ToArray());
        // PASCAL tasks keep the reference's order (and their batches stay bit-identical); other lists keep the caller's order.
        Tasks = _layout.AllPascal ? DenseTaskDescriptor.Pascal.Where(_labels.ContainsKey).ToArray() : _labels.Keys.ToArray();
        _transform = new SampleTransform(_options.ImageSize, _options.Geometry);
    }

    /// <summary>The tasks the batches carry targets for, in the reference's order.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>The number of rows, when the data knows it.</summary>
    public long? RowCount => _data.GetRowCount();

    /// <summary>Batches per epoch (floor with drop-last, else ceiling), when the row count is known.</summary>
    public long? BatchesPerEpoch
    {
        get
        {
            long? rows = RowCount;
            if (rows is null) return null;
            long b = _options.BatchSize;
            return _options.DropLast ? rows.Value / b : (rows.Value + b - 1) / b;
        }
    }

    /// <summary>Where the loader's time goes (set by the data benchmark); null measures nothing.</summary>
    internal LoaderTimings? Timings { get; set; }

    /// <summary>
    /// The batches of one epoch, read lazily. Each batch must be disposed by the caller. Stopping the enumeration early stops
    /// the workers.
    /// </summary>
    /// <param name="epoch">The epoch (seeds the shuffle order and the augmentation draws).</param>
    /// <param name="skipBatches">Batches to skip at the start (to resume): their rows are passed over without being decoded by lazy sources.</param>
    /// <returns>The batches, in order.</returns>
    public IEnumerable<DenseBatch> ReadEpoch(int epoch, int skipBatches = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfNegative(skipBatches);
        if (_options.Shuffle && !_data.CanShuffle)
            throw new InvalidOperationException("Shuffle is on but the data cannot be shuffled (IDataView.CanShuffle is false); cache it first (mlContext.Data.Cache) or turn Shuffle off.");
        return ReadEpochCore(epoch, skipBatches);
    }

    private IEnumerable<DenseBatch> ReadEpochCore(int epoch, int skipBatches)
    {
        using var run = new EpochRun(this, epoch, skipBatches);
        for (long b = skipBatches; ; b++)
        {
            var batch = run.Next(b);
            if (batch is null) yield break;
            yield return batch;
        }
    }

    private SampleSource OpenSource(int epoch)
    {
        Random? order = _options.Shuffle
            ? new Random(SplitMix64.ToInt32Seed(SplitMix64.Combine(0x5_4FF1Eu, (ulong)(uint)_options.Seed, (ulong)(uint)epoch)))
            : null;
        // The PASCAL-Context view itself: workers decode its files directly. With SkipBadSamples its cursor decides which
        // rows exist (it decodes while it moves), so it is read like any other data.
        if (_data is PascalContextDataView pascal && !pascal.SkipsBadSamples && _layout.AllPascal)
            return new PascalSampleSource(pascal, Tasks.Select(t => t.ToPascalTask()).ToArray(), order, _labelCache);
        return new CursorSampleSource(_data, _image, _id, _height, _width, Tasks.Select(t => (t, _layout[t], _labels[t])).ToArray(), order);
    }

    /// <summary>One sample k of the epoch into its slice of a batch's tensors (on a worker, or inline). No TorchSharp calls.</summary>
    private void Preprocess(SourceSample sample, TransformScratch scratch, BatchBuffers buffers, int i, int epoch, long k)
    {
        long t = Timings is null ? 0 : LoaderTimings.Now();
        var draw = _options.Augment ? _options.Draws.Draw(_options.Seed, epoch, k) : AugmentationDraw.Identity;
        int area = _options.ImageSize * _options.ImageSize;
        bool keepOriginal = _options.KeepOriginalLabelResolution;
        var maps = scratch.Maps(area);
        var targets = new SampleTargets
        {
            Image = buffers.Image(i, area),
            Semseg = buffers.HasClassMap(0) ? maps.Slice(0, area) : default,
            HumanParts = buffers.HasClassMap(1) ? maps.Slice(area, area) : default,
            Saliency = buffers.HasClassMap(2) ? maps.Slice(2 * area, area) : default,
            Normals = buffers.Normals(i, area),
        };
        _transform.Apply(sample, _options.Augment, draw, targets, scratch);
        // Class ids as float32, as the trainer takes them (the maps stay bytes until here).
        for (int slot = 0; slot < 3; slot++)
            if (buffers.HasClassMap(slot)) ToFloat(maps.Slice(slot * area, area), buffers.ClassMap(slot, i, area));
        if (_layout.HasExtras && !keepOriginal)
        {
            // Every extra label follows the image's geometry with nearest sampling (one source pixel per output pixel).
            var source = _transform.NearestSourceIndices(sample, _options.Augment, draw, scratch);
            foreach (var (task, slot) in _layout.Extras)
            {
                var output = buffers.Extra(task, i, area);
                if (slot.Kind == LabelSlotKind.Depth)
                    SampleTransform.GatherDepth(sample.DepthMaps[slot.Index], source, output, task.IgnoreValue!.Value, _options.Augment && draw.Warps ? (float)draw.Scale : 1f);
                else SampleTransform.GatherMap(sample.ExtraMaps[slot.Index], source, output);
            }
        }
        if (keepOriginal)
        {
            buffers.Original[i] = SampleTransform.OriginalLabels(sample, Tasks.Where(t => _layout[t].Kind is LabelSlotKind.Pascal or LabelSlotKind.Normals).ToArray());
            int n = sample.Width * sample.Height;
            foreach (var (task, slot) in _layout.Extras)
                buffers.Original[i]![task] = slot.Kind == LabelSlotKind.Depth
                    ? SampleTransform.DepthWithIgnore(sample.DepthMaps[slot.Index].AsSpan(0, n), task.IgnoreValue!.Value)
                    : sample.ExtraMaps[slot.Index].AsSpan(0, n).ToArray();
        }
        buffers.Ids[i] = sample.Id;
        buffers.Sizes[i] = (sample.Height, sample.Width);
        if (Timings is { } timings)
        {
            timings.Add(LoaderStage.Augment, LoaderTimings.Now() - t);
            timings.CountSample();
        }
    }

    private static void ToFloat(ReadOnlySpan<byte> values, Span<float> destination)
    {
        for (int i = 0; i < values.Length; i++) destination[i] = values[i];
    }

    /// <summary>Hands out the first <paramref name="count"/> samples of a filled batch, on the consuming thread.</summary>
    private DenseBatch MakeBatch(BatchBuffers buffers, int count, int epoch, long index)
    {
        long t = Timings is null ? 0 : LoaderTimings.Now();
        using var scope = NewDisposeScope();
        var images = buffers.TakeImages(count).MoveToOuterDisposeScope();                 // (B, 3, S, S)
        var targets = new Dictionary<DenseTaskDescriptor, Tensor>();
        List<IReadOnlyDictionary<DenseTaskDescriptor, Tensor>>? original = null;
        if (_options.KeepOriginalLabelResolution)
        {
            original = new List<IReadOnlyDictionary<DenseTaskDescriptor, Tensor>>(count);
            for (int i = 0; i < count; i++)
            {
                var (h, w) = buffers.Sizes[i];
                original.Add(buffers.Original[i]!.ToDictionary(p => p.Key, p => (p.Value is byte[] map
                    ? FromBytes(map, [1, h, w])                                                  // (1, H, W)
                    : FromFloats((float[])p.Value, [p.Value.Length / (h * w), h, w])).MoveToOuterDisposeScope())); // (3 or 1, H, W)
                buffers.Original[i] = null;
            }
        }
        else
        {
            foreach (var task in Tasks) targets[task] = buffers.TakeTarget(task, _layout[task], count).MoveToOuterDisposeScope(); // (B, C, S, S)
        }
        var batch = new DenseBatch(epoch, checked((int)index), images, targets, original,
            buffers.Ids[..count].ToArray(), buffers.Sizes[..count].ToArray());
        if (Timings is { } timings)
        {
            timings.Add(LoaderStage.Batch, LoaderTimings.Now() - t);
            timings.CountBatch();
        }
        return batch;
    }

    /// <summary>A float32 CPU tensor holding a copy of the values (torch.empty and a memory copy: no Scalar involved).</summary>
    private static Tensor FromFloats(float[] values, long[] shape)
    {
        var t = torch.empty(shape, ScalarType.Float32);
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(t.bytes);
        return t;
    }

    /// <summary>A float32 CPU tensor of class ids from bytes.</summary>
    private static Tensor FromBytes(byte[] values, long[] shape)
    {
        var t = torch.empty(shape, ScalarType.Float32);
        ToFloat(values, MemoryMarshal.Cast<byte, float>(t.bytes));
        return t;
    }

    private static DataViewSchema.Column? Optional(DataViewSchema schema, string name, DataViewType type)
    {
        var column = schema.GetColumnOrNull(name);
        return column is { } c && c.Type.Equals(type) ? c : null;
    }

    /// <summary>
    /// The tensors of one batch in the making. They are made (torch.empty, no Scalar) and handed out on the consuming thread;
    /// in between, the workers write their samples straight into the tensors' memory through raw pointers, each into its own
    /// slice, without calling TorchSharp. Until handed out the tensors belong to no dispose scope, so that a scope the
    /// consumer closes meanwhile cannot free memory a worker is writing.
    /// </summary>
    private sealed unsafe class BatchBuffers : IDisposable
    {
        private Tensor? _images, _normals;
        private readonly Tensor?[] _classMaps = new Tensor?[3];
        private float* _imagePtr, _normalsPtr;
        private readonly nint[] _classPtr = new nint[3];
        private readonly Dictionary<DenseTaskDescriptor, (Tensor Tensor, nint Pointer)> _extras = [];

        public BatchBuffers(int batchSize)
        {
            Ids = new string[batchSize];
            Sizes = new (int, int)[batchSize];
            Original = new Dictionary<DenseTaskDescriptor, Array>?[batchSize];
        }

        public string[] Ids { get; }

        public (int Height, int Width)[] Sizes { get; }

        public Dictionary<DenseTaskDescriptor, Array>?[] Original { get; }

        /// <summary>Makes the tensors for <paramref name="count"/> samples (on the consuming thread).</summary>
        public void Allocate(int count, int size, IReadOnlyList<DenseTaskDescriptor> tasks, LabelLayout layout, bool keepOriginal)
        {
            using var scope = NewDisposeScope();
            _images = torch.empty([count, 3, size, size], ScalarType.Float32).DetachFromDisposeScope(); // (B, 3, S, S)
            _imagePtr = Pointer(_images);
            if (keepOriginal) return;
            foreach (var task in tasks)
            {
                var slot = layout[task];
                if (slot.Kind is LabelSlotKind.ExtraMap or LabelSlotKind.Depth)
                {
                    var t = torch.empty([count, 1, size, size], ScalarType.Float32).DetachFromDisposeScope(); // (B, 1, S, S)
                    _extras[task] = (t, (nint)Pointer(t));
                }
                else if (slot.Kind == LabelSlotKind.Normals)
                {
                    _normals = torch.empty([count, 3, size, size], ScalarType.Float32).DetachFromDisposeScope(); // (B, 3, S, S)
                    _normalsPtr = Pointer(_normals);
                }
                else
                {
                    _classMaps[slot.Index] = torch.empty([count, 1, size, size], ScalarType.Float32).DetachFromDisposeScope(); // (B, 1, S, S)
                    _classPtr[slot.Index] = (nint)Pointer(_classMaps[slot.Index]!);
                }
            }
        }

        private static float* Pointer(Tensor t) => HugePages.WritePointer(t);

        public Span<float> Image(int sample, int area) => new(_imagePtr + (long)sample * 3 * area, 3 * area);

        public Span<float> Normals(int sample, int area) => _normals is null ? default : new(_normalsPtr + (long)sample * 3 * area, 3 * area);

        public bool HasClassMap(int slot) => _classMaps[slot] is not null;

        public Span<float> ClassMap(int slot, int sample, int area) => new((float*)_classPtr[slot] + (long)sample * area, area);

        /// <summary>The image tensor, registered on the caller's dispose scope (its first <paramref name="count"/> samples).</summary>
        public Tensor TakeImages(int count) => Take(ref _images, count);

        /// <summary>(S, S) of one sample in an extra (non-PASCAL single-channel) task's target.</summary>
        public Span<float> Extra(DenseTaskDescriptor task, int sample, int area) => new((float*)_extras[task].Pointer + (long)sample * area, area);

        public Tensor TakeTarget(DenseTaskDescriptor task, LabelSlot slot, int count)
        {
            switch (slot.Kind)
            {
                case LabelSlotKind.Normals: return Take(ref _normals, count);
                case LabelSlotKind.Pascal: return Take(ref _classMaps[slot.Index], count);
                default:
                    Tensor? t = _extras[task].Tensor;
                    _extras.Remove(task);
                    return Take(ref t, count);
            }
        }

        private static Tensor Take(ref Tensor? stored, int count)
        {
            var t = HugePages.TakeFirst(ref stored, count);
            // A new handle made here joins the caller's dispose scope as the tensors of the single-threaded loader did.
            var handed = t.alias();
            t.Dispose();
            return handed;
        }

        /// <summary>Frees the tensors not handed out.</summary>
        public void Dispose()
        {
            _images?.Dispose();
            _normals?.Dispose();
            foreach (var t in _classMaps) t?.Dispose();
            foreach (var (t, _) in _extras.Values) t.Dispose();
            _extras.Clear();
            _images = _normals = null;
            Array.Clear(_classMaps);
            Array.Clear(Original);
        }
    }

    /// <summary>What one loader worker owns: its decoded sample and its scratch buffers, reused from sample to sample.</summary>
    private sealed class Worker
    {
        public SourceSample Sample { get; } = new();

        public TransformScratch Scratch { get; } = new();
    }

    /// <summary>One epoch in progress: the reader's samples through the worker pipeline, in epoch order.</summary>
    private sealed class EpochRun : OrderedBatchPipeline<Worker, DenseBatch>
    {
        private readonly DenseBatchReader _owner;
        private readonly int _epoch;
        private readonly SampleSource _source;
        private readonly BatchBuffers[] _buffers;

        public EpochRun(DenseBatchReader owner, int epoch, int skipBatches)
            : base(owner._options.BatchSize, owner._options.PrefetchBatches, owner._options.DegreeOfParallelism, owner._options.DropLast)
        {
            _owner = owner;
            _epoch = epoch;
            _buffers = Enumerable.Range(0, Depth).Select(_ => new BatchBuffers(BatchSize)).ToArray();
            _source = owner.OpenSource(epoch);
            try
            {
                bool ok = _source.Skip((long)skipBatches * BatchSize);
                Start(skipBatches, ok ? _source.Count : 0);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        protected override bool Sequential => _source.Sequential;

        protected override Worker NewWorker() => new();

        protected override bool Read(long k, Worker worker) => _source.Read(k, worker.Sample, _owner.Timings);

        protected override void Process(long k, Worker worker, int slot, int index) =>
            _owner.Preprocess(worker.Sample, worker.Scratch, _buffers[slot], index, _epoch, k);

        protected override void Prepare(long batch, int slot, int count) =>
            _buffers[slot].Allocate(count, _owner._options.ImageSize, _owner.Tasks, _owner._layout, _owner._options.KeepOriginalLabelResolution);

        protected override DenseBatch Make(long batch, int slot, int count) => _owner.MakeBatch(_buffers[slot], count, _epoch, batch);

        protected override void Clear(int slot) => _buffers[slot].Dispose();

        public override void Dispose()
        {
            base.Dispose();
            _source.Dispose();
        }
    }
}
