using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Pascal;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>Where the loader's samples come from: reads sample k of an epoch into a worker's <see cref="SourceSample"/>. No TorchSharp.</summary>
internal abstract class SampleSource : IDisposable
{
    /// <summary>The number of samples when known up front; null when the end is found by reading.</summary>
    public abstract long? Count { get; }

    /// <summary>
    /// Whether <see cref="Read"/> must be called under the loader's lock for k = 0, 1, 2, … in turn (one cursor); otherwise
    /// any worker may read any sample at any time.
    /// </summary>
    public abstract bool Sequential { get; }

    /// <summary>Passes over the first <paramref name="rows"/> samples without decoding them; false when the data ends first.</summary>
    public abstract bool Skip(long rows);

    /// <summary>Reads sample <paramref name="k"/> into <paramref name="sample"/>; false at the end of the data.</summary>
    public abstract bool Read(long k, SourceSample sample, LoaderTimings? timings);

    public virtual void Dispose()
    {
    }

    protected static long Start(LoaderTimings? timings) => timings is null ? 0 : LoaderTimings.Now();

    protected static long Stop(LoaderTimings? timings, LoaderStage stage, long start)
    {
        if (timings is null) return 0;
        long now = LoaderTimings.Now();
        timings.Add(stage, now - start);
        return now;
    }
}

/// <summary>
/// The PASCAL-Context view read without a cursor: the epoch's order of row ids is fixed up front (the order a cursor with the
/// same generator visits), and each worker decodes the files of its own samples with the view's decoder, in parallel.
/// </summary>
internal sealed class PascalSampleSource : SampleSource
{
    private readonly PascalContextDataView _view;
    private readonly PascalSampleDecoder _decoder;
    private readonly IReadOnlyList<DenseTask> _tasks;
    private readonly int[] _order;
    private readonly LabelCache? _cache;

    public PascalSampleSource(PascalContextDataView view, IReadOnlyList<DenseTask> tasks, Random? order, LabelCache? cache)
    {
        _view = view;
        _cache = cache;
        _decoder = view.Decoder;
        _tasks = tasks;
        _order = view.RowOrder(order);
    }

    public override long? Count => _order.Length;

    public override bool Sequential => false;

    public override bool Skip(long rows) => rows <= _order.Length;

    public override bool Read(long k, SourceSample sample, LoaderTimings? timings)
    {
        if (k >= _order.Length) return false;
        string id = _view.Ids[_order[k]];
        sample.Reset();
        sample.Id = id;
        long t = Start(timings);
        var (w, h) = _decoder.DecodeImage(id, ref sample.Pixels);
        sample.Width = w;
        sample.Height = h;
        t = Stop(timings, LoaderStage.DecodeImage, t);
        int n = w * h;
        foreach (var task in _tasks)
        {
            switch (task)
            {
                case DenseTask.SemanticSegmentation:
                    sample.ClassMaps[0] = Map(id, 0, n, sample, () => _decoder.ReadSemseg(id, w, h));
                    break;
                case DenseTask.HumanParts:
                    sample.ClassMaps[1] = Map(id, 1, n, sample, () => _decoder.ReadHumanParts(id, w, h, _view.ListsPerson(id)));
                    sample.NoHumanParts = sample.ClassMaps[1] is null;
                    break;
                case DenseTask.Saliency:
                    sample.ClassMaps[2] = Map(id, 2, n, sample, () => _decoder.ReadSaliency(id, w, h));
                    break;
                case DenseTask.SurfaceNormals:
                    _decoder.DecodeNormals(id, w, h, sample, _cache);
                    break;
            }
        }
        Stop(timings, LoaderStage.LoadLabels, t);
        return true;
    }

    /// <summary>A class map through the label cache (decoded on a miss), in the sample's buffer for its slot; null when the map does not exist.</summary>
    private byte[]? Map(string id, int slot, int length, SourceSample sample, Func<byte[]?> decode)
    {
        if (_cache is null) return decode();
        return _cache.Get(id, slot, length, ref sample.MapBuffers[slot], decode) ? sample.MapBuffers[slot] : null;
    }
}

/// <summary>
/// Any other data view, read through one cursor whose getters decode (e.g. ML.NET's <c>LoadImages</c>): rows are read one
/// at a time under the loader's lock, copied into the worker's buffers in the reference's label form, and pre-processed in
/// parallel afterwards.
/// </summary>
/// <remarks>
/// Label columns: class maps as Vector of Byte, or Vector of Single holding whole numbers 0..255; normals as Vector of
/// Single, 3·H·W values in CHW order with 255 marking an invalid pixel. A label whose size differs from the image's is
/// resized to the image first (nearest for class maps, bicubic without renormalisation for normals), as the reference does
/// at load time.
/// </remarks>
internal sealed class CursorSampleSource : SampleSource
{
    private readonly DataViewRowCursor _cursor;
    private readonly bool _ownsImages;
    private readonly ValueGetter<MLImage> _image;
    private readonly ValueGetter<ReadOnlyMemory<char>>? _id;
    private readonly ValueGetter<int>? _height, _width;
    private readonly List<(DenseTaskDescriptor Task, LabelSlot Slot, string Column, ValueGetter<VBuffer<byte>>? Bytes, ValueGetter<VBuffer<float>>? Floats)> _labels = [];
    private readonly int _extraMaps, _depthMaps;
    private VBuffer<byte> _byteBuffer;
    private VBuffer<float> _floatBuffer;

    public CursorSampleSource(IDataView data, DataViewSchema.Column image, DataViewSchema.Column? id, DataViewSchema.Column? height,
        DataViewSchema.Column? width, IReadOnlyList<(DenseTaskDescriptor Task, LabelSlot Slot, DataViewSchema.Column Column)> labels, Random? order)
    {
        var columns = new List<DataViewSchema.Column> { image };
        if (id is { } i) columns.Add(i);
        if (height is { } hc && width is { } wc) { columns.Add(hc); columns.Add(wc); }
        columns.AddRange(labels.Select(l => l.Column));
        _cursor = data.GetRowCursor(columns, order);
        // The PASCAL-Context and NYUD views decode a new image per getter call, which the caller owns. Other sources (a
        // cache, a transform) may hand out images they still hold, so those are left to their owner.
        _ownsImages = data is PascalContextDataView or Nyud.NyudDataView;
        _image = _cursor.GetGetter<MLImage>(image);
        if (id is { } idColumn) _id = _cursor.GetGetter<ReadOnlyMemory<char>>(idColumn);
        if (height is { } h && width is { } w)
        {
            _height = _cursor.GetGetter<int>(h);
            _width = _cursor.GetGetter<int>(w);
        }
        foreach (var (task, slot, column) in labels)
        {
            bool isByte = ((VectorDataViewType)column.Type).ItemType == NumberDataViewType.Byte;
            _labels.Add((task, slot, column.Name, isByte ? _cursor.GetGetter<VBuffer<byte>>(column) : null, isByte ? null : _cursor.GetGetter<VBuffer<float>>(column)));
            if (slot.Kind == LabelSlotKind.ExtraMap) _extraMaps = Math.Max(_extraMaps, slot.Index + 1);
            if (slot.Kind == LabelSlotKind.Depth) _depthMaps = Math.Max(_depthMaps, slot.Index + 1);
        }
    }

    public override long? Count => null;

    public override bool Sequential => true;

    public override bool Skip(long rows)
    {
        for (long i = 0; i < rows; i++)
            if (!_cursor.MoveNext()) return false;
        return true;
    }

    public override bool Read(long k, SourceSample sample, LoaderTimings? timings)
    {
        if (!_cursor.MoveNext()) return false;
        sample.Reset();
        string id = _cursor.Position.ToString(CultureInfo.InvariantCulture);
        if (_id is not null)
        {
            ReadOnlyMemory<char> text = default;
            _id(ref text);
            id = text.ToString();
        }
        sample.Id = id;
        long t = Start(timings);
        MLImage? image = null;
        _image(ref image!);
        if (image is null) throw new InvalidDataException($"Row '{id}': the image column holds no image.");
        try
        {
            int w = image.Width, h = image.Height;
            sample.Bgra = MLImagePixels.IsBgra(image);
            MLImagePixels.CopyTo(image, TransformScratch.Grow(ref sample.Pixels, 4 * w * h));
            sample.Width = w;
            sample.Height = h;
        }
        finally
        {
            if (_ownsImages) image.Dispose();
        }
        t = Stop(timings, LoaderStage.DecodeImage, t);

        int lh = sample.Height, lw = sample.Width;
        if (_height is not null && _width is not null)
        {
            _height(ref lh);
            _width(ref lw);
        }
        if (sample.ExtraMaps.Length < _extraMaps) sample.ExtraMaps = [.. sample.ExtraMaps, .. Enumerable.Range(0, _extraMaps - sample.ExtraMaps.Length).Select(_ => Array.Empty<byte>())];
        if (sample.DepthMaps.Length < _depthMaps) sample.DepthMaps = [.. sample.DepthMaps, .. Enumerable.Range(0, _depthMaps - sample.DepthMaps.Length).Select(_ => Array.Empty<float>())];
        foreach (var (descriptor, labelSlot, column, bytes, floats) in _labels)
        {
            if (labelSlot.Kind is LabelSlotKind.ExtraMap or LabelSlotKind.Depth)
            {
                ReadExtra(id, descriptor, labelSlot, column, bytes, floats, sample, lw, lh);
                continue;
            }
            if (labelSlot.Kind == LabelSlotKind.Normals)
            {
                floats!(ref _floatBuffer);
                Check(id, column, _floatBuffer.Length, 3L * lh * lw, 3, lh, lw);
                ReadNormals(sample, _floatBuffer, lw, lh);
                continue;
            }
            var task = descriptor.ToPascalTask();
            int slot = labelSlot.Index;
            var map = TransformScratch.Grow(ref sample.MapBuffers[slot], lh * lw);
            if (bytes is not null)
            {
                bytes(ref _byteBuffer);
                Check(id, column, _byteBuffer.Length, (long)lh * lw, 1, lh, lw);
                CopyDense(_byteBuffer, map);
            }
            else
            {
                floats!(ref _floatBuffer);
                Check(id, column, _floatBuffer.Length, (long)lh * lw, 1, lh, lw);
                ToClassIds(id, column, _floatBuffer, map);
            }
            // The reference's form: a human-parts map that is 255 everywhere is an image without annotated persons.
            if (task == DenseTask.HumanParts && !map.ContainsAnyExcept(DenseTasks.IgnoreLabel))
            {
                sample.NoHumanParts = true;
                continue;
            }
            if (lh != sample.Height || lw != sample.Width)
            {
                var resized = TransformScratch.Grow(ref sample.ResizeBuffer, sample.Width * sample.Height);
                CvGeometry.ResizeNearest(map, lw, lh, resized, sample.Width, sample.Height);
                resized.CopyTo(TransformScratch.Grow(ref sample.MapBuffers[slot], sample.Width * sample.Height));
            }
            sample.ClassMaps[slot] = sample.MapBuffers[slot];
        }
        Stop(timings, LoaderStage.LoadLabels, t);
        return true;
    }

    /// <summary>
    /// A label outside the PASCAL layouts into its extra slot at the image size (nearest resize when the label's size
    /// differs), checked: class ids below the class count or the ignore label, binary maps 0/1, depths finite and not
    /// negative (or the task's ignore value).
    /// </summary>
    private void ReadExtra(string id, DenseTaskDescriptor task, LabelSlot slot, string column, ValueGetter<VBuffer<byte>>? bytes,
        ValueGetter<VBuffer<float>>? floats, SourceSample sample, int lw, int lh)
    {
        int n = lh * lw, target = sample.Width * sample.Height;
        bool resize = lh != sample.Height || lw != sample.Width;
        if (slot.Kind == LabelSlotKind.Depth)
        {
            floats!(ref _floatBuffer);
            CheckExtra(id, task, column, _floatBuffer.Length, n, lh, lw);
            var depth = TransformScratch.Grow(ref sample.FloatBuffer, n);
            CopyDense(_floatBuffer, depth);
            float ignore = task.IgnoreValue!.Value;
            for (int i = 0; i < n; i++)
            {
                float v = depth[i];
                if (v != ignore && !(v >= 0 && float.IsFinite(v)))
                    throw new InvalidDataException($"Row '{id}': label column '{column}' of depth task '{task.Name}' holds {v} at index {i}; expected a finite depth ≥ 0 or the ignore value {ignore}.");
            }
            var output = TransformScratch.Grow(ref sample.DepthMaps[slot.Index], target);
            if (resize) CvGeometry.ResizeNearest<float>(depth, lw, lh, output, sample.Width, sample.Height);
            else depth.CopyTo(output);
            return;
        }
        var map = TransformScratch.Grow(ref sample.ResizeBuffer, n);
        if (bytes is not null)
        {
            bytes(ref _byteBuffer);
            CheckExtra(id, task, column, _byteBuffer.Length, n, lh, lw);
            CopyDense(_byteBuffer, map);
        }
        else
        {
            floats!(ref _floatBuffer);
            CheckExtra(id, task, column, _floatBuffer.Length, n, lh, lw);
            ToClassIds(id, column, _floatBuffer, map);
        }
        bool binary = task.Kind == DenseTaskKind.BinaryMap;
        int classes = task.OutputChannels;
        for (int i = 0; i < n; i++)
        {
            byte v = map[i];
            if (binary ? v > 1 : v >= classes && v != DenseTasks.IgnoreLabel)
                throw new InvalidDataException(binary
                    ? $"Row '{id}': label column '{column}' of binary-map task '{task.Name}' holds {v} at index {i}; expected 0 or 1."
                    : $"Row '{id}': label column '{column}' of task '{task.Name}' holds class id {v} at index {i}; expected 0..{classes - 1} or {DenseTasks.IgnoreLabel} (ignore).");
        }
        var buffer = TransformScratch.Grow(ref sample.ExtraMaps[slot.Index], target);
        if (resize) CvGeometry.ResizeNearest(map, lw, lh, buffer, sample.Width, sample.Height);
        else map.CopyTo(buffer);
    }

    private static void CheckExtra(string id, DenseTaskDescriptor task, string column, int length, int expected, int h, int w)
    {
        if (length != expected)
            throw new InvalidDataException($"Row '{id}': label column '{column}' of task '{task.Name}' holds {length} values; expected {expected} ({h}·{w}, the row's Height·Width).");
    }

    /// <summary>CHW normals with 255 = invalid → (x, y, z, 0) with the zero vector for invalid pixels, at the image size.</summary>
    private static void ReadNormals(SourceSample sample, in VBuffer<float> buffer, int lw, int lh)
    {
        int n = lw * lh;
        var planar = TransformScratch.Grow(ref sample.FloatBuffer, 3 * n);
        CopyDense(buffer, planar);
        bool resize = lh != sample.Height || lw != sample.Width;
        float[] vectors;
        if (resize)
        {
            vectors = new float[4 * n];
        }
        else
        {
            TransformScratch.Grow(ref sample.Normals, 4 * n);
            vectors = sample.Normals;
        }
        const float ignore = DenseTasks.IgnoreLabel;
        for (int i = 0; i < n; i++)
        {
            float x = planar[i], y = planar[n + i], z = planar[2 * n + i];
            bool invalid = x == ignore || y == ignore || z == ignore;
            vectors[4 * i] = invalid ? 0 : x;
            vectors[4 * i + 1] = invalid ? 0 : y;
            vectors[4 * i + 2] = invalid ? 0 : z;
            vectors[4 * i + 3] = 0;
        }
        if (resize)
            CvGeometry.ResizeCubic(vectors, lw, lh, TransformScratch.Grow(ref sample.Normals, 4 * sample.Width * sample.Height), sample.Width, sample.Height);
        sample.HasNormals = true;
    }

    private static void ToClassIds(string id, string column, in VBuffer<float> buffer, Span<byte> map)
    {
        int i = 0;
        foreach (var v in buffer.DenseValues())
        {
            if (!(v >= 0 && v <= 255 && v == MathF.Floor(v)))
                throw new InvalidDataException($"Row '{id}': label column '{column}' holds {v} at index {i}; a class map holds whole numbers 0..255 (class ids, 255 = ignore).");
            map[i++] = (byte)v;
        }
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

    public override void Dispose() => _cursor.Dispose();
}
