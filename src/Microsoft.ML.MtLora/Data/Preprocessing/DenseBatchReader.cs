using System.Collections.Concurrent;
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
/// <para>Determinism: the shuffle order of an epoch is a function of (<see cref="DenseBatchReaderOptions.Seed"/>, epoch) and the
/// augmentation of a sample a function of (seed, epoch, its position in the epoch), so a run resumed at a batch sees the same
/// samples, augmented the same way, as an uninterrupted run.</para>
/// <para>Label columns: class maps (semseg, human parts, saliency) as Vector of Byte or Single, H·W values; normals as Vector of
/// Single, 3·H·W values in CHW order, with 255 marking an invalid pixel. H and W come from the Height/Width columns when
/// present, else from the image. A label whose size differs from the image's (e.g. after an ML.NET image resize) is resized
/// to the image first, as the reference does at load time.</para>
/// </remarks>
public sealed class DenseBatchReader
{
    private readonly IDataView _data;
    private readonly DenseBatchReaderOptions _options;
    private readonly DataViewSchema.Column _image;
    private readonly DataViewSchema.Column? _id, _height, _width;
    private readonly Dictionary<DenseTask, DataViewSchema.Column> _labels = [];

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
        if (_options.PrefetchBatches < 0) throw new ArgumentException($"PrefetchBatches is {_options.PrefetchBatches}; expected 0 (no background reading) or more.", nameof(options));
        if (_options.DegreeOfParallelism < 1) throw new ArgumentException($"DegreeOfParallelism is {_options.DegreeOfParallelism}; expected at least 1.", nameof(options));
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

        var tasks = _options.Tasks ?? DenseTasks.All.Where(t => schema.GetColumnOrNull(_options.LabelColumn(t)) is not null).ToArray();
        foreach (var task in tasks.Distinct())
        {
            var name = _options.LabelColumn(task);
            var column = schema.GetColumnOrNull(name)
                ?? throw new ArgumentException($"The data has no label column '{name}' for task {task.ReferenceName()}; columns: {string.Join(", ", schema.Select(c => c.Name))}.", nameof(data));
            var item = (column.Type as VectorDataViewType)?.ItemType;
            bool ok = task == DenseTask.SurfaceNormals
                ? item == NumberDataViewType.Single
                : item == NumberDataViewType.Byte || item == NumberDataViewType.Single;
            if (!ok)
                throw new ArgumentException($"Label column '{name}' has type {column.Type}; expected {(task == DenseTask.SurfaceNormals ? "Vector<Single> (3·H·W, CHW)" : "Vector<Byte> or Vector<Single> (H·W)")}.", nameof(data));
            _labels[task] = column;
        }
        Tasks = DenseTasks.All.Where(_labels.ContainsKey).ToArray();
    }

    /// <summary>The tasks the batches carry targets for, in the reference's order.</summary>
    public IReadOnlyList<DenseTask> Tasks { get; }

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

    /// <summary>
    /// The batches of one epoch, read lazily. Each batch must be disposed by the caller.
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
        if (_options.PrefetchBatches == 0)
        {
            foreach (var batch in ProduceBatches(epoch, skipBatches, CancellationToken.None)) yield return batch;
            yield break;
        }

        // A background task decodes and pre-processes the next batches while the caller trains on the current one.
        using var cancel = new CancellationTokenSource();
        using var queue = new BlockingCollection<DenseBatch>(_options.PrefetchBatches);
        Exception? failure = null;
        var producer = Task.Run(() =>
        {
            try
            {
                foreach (var batch in ProduceBatches(epoch, skipBatches, cancel.Token))
                {
                    try
                    {
                        queue.Add(batch, cancel.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        batch.Dispose();
                        throw;
                    }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                // the consumer stopped early
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                queue.CompleteAdding();
            }
        });
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable()) yield return batch;
            producer.Wait();
            if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
        finally
        {
            cancel.Cancel();
            try { producer.Wait(); } catch (AggregateException) { }
            while (queue.TryTake(out var left)) left.Dispose();
        }
    }

    private IEnumerable<DenseBatch> ProduceBatches(int epoch, int skipBatches, CancellationToken cancellation)
    {
        Random? order = _options.Shuffle
            ? new Random(SplitMix64.ToInt32Seed(SplitMix64.Combine(0x5_4FF1Eu, (ulong)(uint)_options.Seed, (ulong)(uint)epoch)))
            : null;
        var columns = new List<DataViewSchema.Column> { _image };
        if (_id is { } id) columns.Add(id);
        if (_height is { } h && _width is { } w) { columns.Add(h); columns.Add(w); }
        columns.AddRange(_labels.Values);

        // The PASCAL-Context view splits rows round-robin over a cursor set, so rows decode on several threads in a
        // deterministic order; other data is read through one cursor.
        int threads = _options.DegreeOfParallelism;
        DataViewRowCursor[] cursors = _data is PascalContextDataView pascal && !pascal.SkipsBadSamples && threads > 1
            ? _data.GetRowCursorSet(columns, threads, order)
            : [_data.GetRowCursor(columns, order)];
        using var rows = new RowSource(this, cursors);
        int size = _options.BatchSize;
        long skipRows = (long)skipBatches * size;
        if (!rows.Skip(skipRows)) yield break;

        int batchIndex = skipBatches;
        long sampleIndex = skipRows;
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            List<RawSample> raw = [];
            DenseBatch? batch = null;
            try
            {
                raw = rows.Read(size);
                if (raw.Count == 0 || (raw.Count < size && _options.DropLast)) yield break;
                batch = Build(raw, epoch, batchIndex, sampleIndex);
            }
            finally
            {
                foreach (var r in raw) r.Dispose();
            }
            yield return batch;
            if (raw.Count < size) yield break;
            batchIndex++;
            sampleIndex += size;
        }
    }

    /// <summary>Rows of one cursor, or of a cursor set whose cursor k holds the positions k, k+n, k+2n, … of the order.</summary>
    private sealed class RowSource : IDisposable
    {
        private readonly DataViewRowCursor[] _cursors;
        private readonly RowReader[] _readers;
        private long _next;

        public RowSource(DenseBatchReader owner, DataViewRowCursor[] cursors)
        {
            _cursors = cursors;
            _readers = cursors.Select(c => new RowReader(owner, c)).ToArray();
        }

        /// <summary>Passes over the first rows without reading their columns; false when the data ends first.</summary>
        public bool Skip(long count)
        {
            int n = _cursors.Length;
            for (int k = 0; k < n; k++)
            {
                long mine = count > k ? (count - k + n - 1) / n : 0;
                for (long i = 0; i < mine; i++)
                    if (!_cursors[k].MoveNext()) return false;
            }
            _next = count;
            return true;
        }

        /// <summary>Up to <paramref name="size"/> rows in order (fewer at the end of the data).</summary>
        public List<RawSample> Read(int size)
        {
            int n = _cursors.Length;
            var result = new List<RawSample>(size);
            if (n == 1)
            {
                try
                {
                    while (result.Count < size && _cursors[0].MoveNext()) result.Add(_readers[0].Read());
                }
                catch
                {
                    foreach (var r in result) r.Dispose();
                    throw;
                }
                return result;
            }
            var slots = new RawSample?[size];
            long first = _next;
            try
            {
                Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = n }, k =>
                {
                    for (int j = 0; j < size; j++)
                    {
                        if ((first + j) % n != k) continue;
                        if (!_cursors[k].MoveNext()) break;
                        slots[j] = _readers[k].Read();
                    }
                });
            }
            catch (AggregateException e)
            {
                foreach (var r in slots) r?.Dispose();
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
                throw;
            }
            _next += size;
            // Rows exist for every position below the row count, so the rows read form a prefix of the slots.
            foreach (var r in slots)
            {
                if (r is null) break;
                result.Add(r);
            }
            foreach (var r in slots.Skip(result.Count)) r?.Dispose();
            return result;
        }

        public void Dispose()
        {
            foreach (var c in _cursors) c.Dispose();
        }
    }

    private DenseBatch Build(List<RawSample> raw, int epoch, int batchIndex, long firstSample)
    {
        int n = raw.Count;
        var images = new Tensor?[n];
        var labels = new Dictionary<DenseTask, Tensor>?[n];
        try
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = _options.DegreeOfParallelism };
            Parallel.For(0, n, parallel, i =>
            {
                var draw = _options.Augment ? AugmentationDraw.For(_options.Seed, epoch, firstSample + i) : AugmentationDraw.Identity;
                (images[i], labels[i]) = Process(raw[i], draw);
            });
            using var scope = NewDisposeScope();
            var batchImages = torch.stack(images!, 0).MoveToOuterDisposeScope();              // (B, 3, S, S)
            var targets = new Dictionary<DenseTask, Tensor>();
            List<IReadOnlyDictionary<DenseTask, Tensor>>? original = null;
            if (_options.KeepOriginalLabelResolution)
            {
                original = new List<IReadOnlyDictionary<DenseTask, Tensor>>(n);
                for (int i = 0; i < n; i++)
                {
                    original.Add(labels[i]!);
                    labels[i] = null;                                                          // ownership moves to the batch
                }
            }
            else
            {
                foreach (var task in Tasks)
                    targets[task] = torch.stack(labels.Select(l => l![task]), 0).MoveToOuterDisposeScope(); // (B, C, S, S)
            }
            return new DenseBatch(epoch, batchIndex, batchImages, targets, original,
                raw.Select(r => r.Id).ToArray(), raw.Select(r => (r.Height, r.Width)).ToArray());
        }
        finally
        {
            foreach (var t in images) t?.Dispose();
            foreach (var l in labels)
                if (l is not null)
                    foreach (var t in l.Values) t.Dispose();
        }
    }

    /// <summary>One sample through the reference's pipeline: (3, S, S) normalised image and its targets.</summary>
    private (Tensor Image, Dictionary<DenseTask, Tensor> Labels) Process(RawSample sample, AugmentationDraw draw)
    {
        var image = sample.Image.alias();
        var labels = sample.Labels.ToDictionary(p => p.Key, p => p.Value.alias());
        try
        {
            DenseTransforms.ToReferenceLabelForm(labels);
            int h = (int)image.shape[1], w = (int)image.shape[2];
            foreach (var task in labels.Keys.ToArray())
            {
                var label = labels[task];
                if (label.shape[1] != h || label.shape[2] != w)
                    labels[task] = DenseTransforms.ResizeLabel(label, task, h, w, dispose: true, renormalize: false);
            }
            if (_options.Augment) DenseTransforms.Augment(ref image, labels, draw);
            int s = _options.ImageSize;
            if (_options.KeepOriginalLabelResolution)
            {
                var resized = CvGeometry.ResizeBicubic(image, s, s);
                image.Dispose();
                image = resized;
            }
            else
            {
                DenseTransforms.FixedResize(ref image, labels, s);
            }
            DenseTransforms.AddIgnoreRegions(labels);
            var normalized = DenseTransforms.NormalizeImage(image);
            image.Dispose();
            return (normalized, labels);
        }
        catch
        {
            image.Dispose();
            foreach (var t in labels.Values) t.Dispose();
            throw;
        }
    }

    private static DataViewSchema.Column? Optional(DataViewSchema schema, string name, DataViewType type)
    {
        var column = schema.GetColumnOrNull(name);
        return column is { } c && c.Type.Equals(type) ? c : null;
    }

    /// <summary>A decoded row: the image (3, H, W) RGB 0..255 and its labels (1 or 3, h, w) float32, as the data holds them.</summary>
    private sealed class RawSample : IDisposable
    {
        public required string Id { get; init; }
        public required Tensor Image { get; init; }
        public required Dictionary<DenseTask, Tensor> Labels { get; init; }
        public int Height => (int)Image.shape[1];
        public int Width => (int)Image.shape[2];

        public void Dispose()
        {
            Image.Dispose();
            foreach (var t in Labels.Values) t.Dispose();
        }
    }

    /// <summary>Reads rows of one cursor into tensors (the cursor's getters do the decoding).</summary>
    private sealed class RowReader
    {
        private readonly DataViewRowCursor _cursor;
        private readonly bool _ownsImages;
        private readonly ValueGetter<MLImage> _image;
        private readonly ValueGetter<ReadOnlyMemory<char>>? _id;
        private readonly ValueGetter<int>? _height, _width;
        private readonly List<(DenseTask Task, string Column, ValueGetter<VBuffer<byte>>? Bytes, ValueGetter<VBuffer<float>>? Floats)> _labels = [];
        private VBuffer<byte> _byteBuffer;
        private VBuffer<float> _floatBuffer;

        public RowReader(DenseBatchReader owner, DataViewRowCursor cursor)
        {
            _cursor = cursor;
            // The PASCAL-Context view decodes a new image per getter call, which the caller owns. Other sources (a cache,
            // a transform) may hand out images they still hold, so those are left to their owner.
            _ownsImages = owner._data is PascalContextDataView;
            _image = cursor.GetGetter<MLImage>(owner._image);
            if (owner._id is { } id) _id = cursor.GetGetter<ReadOnlyMemory<char>>(id);
            if (owner._height is { } h && owner._width is { } w)
            {
                _height = cursor.GetGetter<int>(h);
                _width = cursor.GetGetter<int>(w);
            }
            foreach (var task in owner.Tasks)
            {
                var column = owner._labels[task];
                bool isByte = ((VectorDataViewType)column.Type).ItemType == NumberDataViewType.Byte;
                _labels.Add((task, column.Name, isByte ? cursor.GetGetter<VBuffer<byte>>(column) : null, isByte ? null : cursor.GetGetter<VBuffer<float>>(column)));
            }
        }

        public RawSample Read()
        {
            string id = _cursor.Position.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (_id is not null)
            {
                ReadOnlyMemory<char> text = default;
                _id(ref text);
                id = text.ToString();
            }
            MLImage? mlImage = null;
            _image(ref mlImage!);
            if (mlImage is null) throw new InvalidDataException($"Row '{id}': the image column holds no image.");
            Tensor image;
            try
            {
                image = DenseImagePreprocessing.ToRgbTensor(mlImage);                           // (3, H, W)
            }
            finally
            {
                if (_ownsImages) mlImage.Dispose();
            }
            var labels = new Dictionary<DenseTask, Tensor>();
            try
            {
                int h = (int)image.shape[1], w = (int)image.shape[2];
                if (_height is not null && _width is not null)
                {
                    _height(ref h);
                    _width(ref w);
                }
                foreach (var (task, column, bytes, floats) in _labels)
                {
                    int channels = task == DenseTask.SurfaceNormals ? 3 : 1;
                    long expected = (long)channels * h * w;
                    Tensor label;
                    if (bytes is not null)
                    {
                        bytes(ref _byteBuffer);
                        Check(id, column, _byteBuffer.Length, expected, channels, h, w);
                        label = torch.empty([channels, h, w], ScalarType.Byte);
                        CopyDense(_byteBuffer, label.bytes);
                        var asFloat = label.to(ScalarType.Float32);
                        label.Dispose();
                        label = asFloat;
                    }
                    else
                    {
                        floats!(ref _floatBuffer);
                        Check(id, column, _floatBuffer.Length, expected, channels, h, w);
                        label = torch.empty([channels, h, w], ScalarType.Float32);
                        CopyDense(_floatBuffer, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(label.bytes));
                    }
                    labels[task] = label;                                                       // (C, h, w)
                }
            }
            catch
            {
                image.Dispose();
                foreach (var t in labels.Values) t.Dispose();
                throw;
            }
            return new RawSample { Id = id, Image = image, Labels = labels };
        }

        private static void Check(string id, string column, int length, long expected, int channels, int h, int w)
        {
            if (length != expected)
                throw new InvalidDataException($"Row '{id}': label column '{column}' holds {length} values; expected {expected} ({(channels == 1 ? "" : $"{channels}·")}{h}·{w}, the row's Height·Width).");
        }

        private static void CopyDense<T>(in VBuffer<T> buffer, Span<T> destination)
        {
            if (buffer.IsDense)
            {
                buffer.GetValues().CopyTo(destination);
                return;
            }
            int i = 0;
            foreach (var v in buffer.DenseValues()) destination[i++] = v;
        }
    }
}
