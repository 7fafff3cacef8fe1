using System.Collections.Concurrent;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>A sample that <see cref="PascalContextOptions.SkipBadSamples"/> left out, and why.</summary>
/// <param name="Id">The sample id.</param>
/// <param name="Reason">The error: which file, and what was wrong with it.</param>
public sealed record SkippedSample(string Id, string Reason);

/// <summary>
/// A lazy <see cref="IDataView"/> over one split of a PASCAL-Context multi-task root (PASCAL_MT), created by
/// <c>mlContext.Data.LoadPascalContext(...)</c>. One row per id of <c>ImageSets/Context/&lt;split&gt;.txt</c>, in file order.
/// Nothing is decoded up front: each getter decodes its own column for the current row only.
/// </summary>
/// <remarks>
/// <para>Columns, every map at the image's original resolution, row-major (row y, column x at <c>y·Width + x</c>):</para>
/// <list type="table">
/// <item><term><c>Image</c></term><description><see cref="ImageDataViewType"/> (unknown size): the RGB image as an
/// <see cref="MLImage"/>, usable by ML.NET's image transforms. Each getter call decodes a new image; the caller owns (and
/// should dispose) it. With <see cref="PascalContextOptions.ImageColumn"/> = <see cref="PascalImageColumn.FilePath"/> the view
/// has instead an <c>ImagePath</c> column (Text: the full path of <c>JPEGImages/&lt;id&gt;.jpg</c>) for
/// <c>mlContext.Transforms.LoadImages</c>.</description></item>
/// <item><term><c>Id</c></term><description>Text: the sample id (e.g. <c>2008_000002</c>).</description></item>
/// <item><term><c>Height</c>, <c>Width</c></term><description>Int32: the image size (read from the file header).</description></item>
/// <item><term><c>SemsegLabel</c></term><description>Vector of Byte, Height·Width: class 0..20 (0 background, then the 20 VOC
/// classes), 255 = ignore.</description></item>
/// <item><term><c>HumanPartsLabel</c></term><description>Vector of Byte, Height·Width: 0 background, 1 head, 2 torso, 3 upper arm,
/// 4 lower arm, 5 upper leg, 6 lower leg; 255 everywhere for an image without an annotated person with parts.</description></item>
/// <item><term><c>SaliencyLabel</c></term><description>Vector of Byte, Height·Width: 1 salient, 0 not (the distilled map
/// binarised at v/255 &gt; 0.5). No ignore value.</description></item>
/// <item><term><c>NormalsLabel</c></term><description>Vector of Single, 3·Height·Width, planar CHW: x, y, z planes with
/// n = 2v/255 − 1 from the R, G, B channels. Pixels whose PASCAL-Context class has no valid normal
/// (<see cref="PascalContextClasses.NormalsValidClassIds"/>) are 255 in all three planes.</description></item>
/// </list>
/// <para>Only the label columns of the requested tasks exist. A cursor asked for a shuffled order (a <see cref="Random"/>
/// passed to <see cref="GetRowCursor"/>) visits a permutation of the rows drawn from that generator, so the same seed gives
/// the same order.</para>
/// </remarks>
public sealed class PascalContextDataView : IDataView
{
    private readonly PascalContextLayout _layout;
    private readonly PascalSampleDecoder _decoder;
    private readonly PascalContextOptions _options;
    private readonly string[] _rows;
    private readonly HashSet<string>? _partsIndex;
    private readonly ConcurrentDictionary<string, string> _skipped = new(StringComparer.Ordinal);
    private readonly int _imageColumn, _pathColumn, _idColumn, _heightColumn, _widthColumn; // -1: the column is absent
    private readonly Dictionary<int, DenseTask> _labelColumns = [];

    internal PascalContextDataView(string root, string split, IEnumerable<DenseTask>? tasks, PascalContextOptions? options)
    {
        _options = options ?? new PascalContextOptions();
        // Decoding makes no TorchSharp call (PascalSampleDecoder: managed code and SkiaSharp, run on the parallel loader's
        // workers). Loading the data is often an application's first library call, and a configured libtorch
        // (MTLORA_LIBTORCH, Runtime/TorchRuntime.cs) must be bound before any TorchSharp call: bind it here.
        TorchRuntime.Initialize();
        var requested = (tasks ?? DenseTasks.All).ToHashSet();
        foreach (var t in requested)
            if (!Enum.IsDefined(t)) throw new ArgumentException($"Unknown task value {(int)t}; expected one of {string.Join(", ", DenseTasks.All)}.", nameof(tasks));
        if (requested.Count == 0)
            throw new ArgumentException("No task requested; expected at least one of semseg, human_parts, sal, normals.", nameof(tasks));
        Tasks = DenseTasks.All.Where(requested.Contains).ToArray();
        _layout = new PascalContextLayout(root, split);
        _decoder = new PascalSampleDecoder(_layout, _options.LabelSizeMismatch);
        if (Tasks.Contains(DenseTask.HumanParts) && _options.UsePartsIndexFile) _partsIndex = _layout.TryReadPartsIndex();

        var rows = new List<string>(_layout.Ids.Count);
        foreach (var id in _layout.Ids)
        {
            var missing = _layout.RequiredFiles(id, Tasks).FirstOrDefault(f => !File.Exists(f.Path));
            if (missing.Path is null)
            {
                rows.Add(id);
                continue;
            }
            var message = $"PASCAL-Context sample '{id}' (split '{split}'): the {missing.What} file '{missing.Path}' does not exist.";
            if (!_options.SkipBadSamples) throw new FileNotFoundException(message, missing.Path);
            _skipped[id] = message;
        }
        if (Tasks.Count == 1 && Tasks[0] == DenseTask.HumanParts && _options.HumanPartsOnlyKeepsAnnotatedImages)
            rows = rows.Where(HasHumanParts).ToList();
        _rows = rows.ToArray();

        var builder = new DataViewSchema.Builder();
        if (_options.ImageColumn == PascalImageColumn.FilePath) builder.AddColumn(MtLoraColumnNames.ImagePath, TextDataViewType.Instance);
        else builder.AddColumn(MtLoraColumnNames.Image, new ImageDataViewType());
        builder.AddColumn(MtLoraColumnNames.Id, TextDataViewType.Instance);
        builder.AddColumn(MtLoraColumnNames.Height, NumberDataViewType.Int32);
        builder.AddColumn(MtLoraColumnNames.Width, NumberDataViewType.Int32);
        foreach (var task in Tasks)
        {
            var item = task == DenseTask.SurfaceNormals ? (PrimitiveDataViewType)NumberDataViewType.Single : NumberDataViewType.Byte;
            builder.AddColumn(task.LabelColumnName(), new VectorDataViewType(item));
        }
        Schema = builder.ToSchema();
        _imageColumn = Schema.GetColumnOrNull(MtLoraColumnNames.Image)?.Index ?? -1;
        _pathColumn = Schema.GetColumnOrNull(MtLoraColumnNames.ImagePath)?.Index ?? -1;
        _idColumn = Schema[MtLoraColumnNames.Id].Index;
        _heightColumn = Schema[MtLoraColumnNames.Height].Index;
        _widthColumn = Schema[MtLoraColumnNames.Width].Index;
        foreach (var task in Tasks) _labelColumns[Schema[task.LabelColumnName()].Index] = task;
    }

    /// <summary>The dataset root (full path).</summary>
    public string Root => _layout.Root;

    /// <summary>The split (<c>train</c>, <c>val</c>).</summary>
    public string Split => _layout.Split;

    /// <summary>The tasks whose label columns the view has, in the reference's order.</summary>
    public IReadOnlyList<DenseTask> Tasks { get; }

    /// <summary>The ids of the rows, in row order (before any left out by a decoding error during a pass).</summary>
    public IReadOnlyList<string> Ids => _rows;

    /// <summary>Samples left out so far because of <see cref="PascalContextOptions.SkipBadSamples"/> (missing files at creation; decoding errors as cursors meet them).</summary>
    public IReadOnlyList<SkippedSample> SkippedSamples =>
        _skipped.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new SkippedSample(p.Key, p.Value)).ToArray();

    /// <summary>
    /// The label files met so far whose size differed from their image's and that were resized to it
    /// (<see cref="PascalContextOptions.LabelSizeMismatch"/> = <see cref="LabelSizeMismatchHandling.ResizeToImage"/>, as the
    /// reference does), sorted. Many of them usually mean a broken download or mixed-up folders.
    /// </summary>
    public IReadOnlyList<string> ResizedLabelFiles => _decoder.ResizedLabelFiles.Order(StringComparer.Ordinal).ToArray();

    /// <summary>The number of samples left out so far (see <see cref="SkippedSamples"/>).</summary>
    public int SkippedSampleCount => _skipped.Count;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>True: cursors can visit the rows in a random order drawn from the <see cref="Random"/> they are given.</summary>
    public bool CanShuffle => true;

    /// <summary>The number of rows; null when <see cref="PascalContextOptions.SkipBadSamples"/> is on (rows may drop while reading).</summary>
    public long? GetRowCount() => _options.SkipBadSamples ? null : _rows.Length;

    /// <summary>
    /// Whether the image of a row has annotated human parts by the reference's criterion: the parts index lists a person
    /// for it, or (without a usable index) its .mat file has a person object with a non-empty mask.
    /// </summary>
    /// <param name="id">The sample id.</param>
    public bool HasHumanParts(string id)
    {
        if (_partsIndex is not null) return _partsIndex.Contains(id);
        try
        {
            return _decoder.HasAnnotatedPerson(id);
        }
        catch (PascalSampleException e) when (_options.SkipBadSamples)
        {
            _skipped[id] = e.Message;
            return false;
        }
    }

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, ActiveColumns(columnsNeeded), Order(rand));

    /// <summary>
    /// Returns <paramref name="n"/> cursors (at most one per row) that split the rows round-robin: in the order a single
    /// cursor with the same <paramref name="rand"/> would visit them, cursor k gets positions k, k+n, k+2n, … Each cursor
    /// decodes its own rows, so the set can be read from n threads.
    /// </summary>
    /// <remarks>
    /// A row's <see cref="DataViewRow.Batch"/> is its position in that order: distinct across the set and increasing along
    /// each cursor, so a stable sort of the set's rows by <c>Batch</c> gives the single cursor's sequence, which is how ML.NET
    /// consolidates a cursor set (dotnet/machinelearning docs/code/DataViewRowCursor.md, "Batch"). ML.NET transforms over
    /// this view therefore keep its row order when they read it in parallel.
    /// </remarks>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
    {
        var active = ActiveColumns(columnsNeeded);
        var order = Order(rand);
        n = Math.Clamp(n, 1, Math.Max(1, order.Length));
        var cursors = new DataViewRowCursor[n];
        for (int k = 0; k < n; k++)
        {
            var part = new int[(order.Length - k + n - 1) / n];
            for (int i = 0; i < part.Length; i++) part[i] = order[k + i * n];
            cursors[k] = new Cursor(this, active, part, firstBatch: k, batchStride: n);
        }
        return cursors;
    }

    /// <summary>Whether rows can drop out while reading (<see cref="PascalContextOptions.SkipBadSamples"/>).</summary>
    internal bool SkipsBadSamples => _options.SkipBadSamples;

    // For DenseBatchReader's parallel loader (Data/Preprocessing/SampleSources.cs): the row order a cursor given the same
    // generator visits, and what a worker needs to decode a row on its own thread without a cursor.
    internal int[] RowOrder(Random? rand) => Order(rand);

    internal PascalSampleDecoder Decoder => _decoder;

    internal bool? ListsPerson(string id) => _partsIndex?.Contains(id);

    private bool[] ActiveColumns(IEnumerable<DataViewSchema.Column> columnsNeeded) => DenseViewRows.ActiveColumns(Schema, columnsNeeded);

    /// <summary>The row order: file order, or a Fisher–Yates permutation drawn from <paramref name="rand"/>.</summary>
    private int[] Order(Random? rand) => DenseViewRows.Order(_rows.Length, rand);

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly PascalContextDataView _view;
        private readonly bool[] _active;
        private readonly int[] _order;
        private readonly long _firstBatch, _batchStride; // Batch of _order[i] = _firstBatch + i·_batchStride (see GetRowCursorSet)
        private int _next;               // next index into _order
        private long _batch;
        private long _position = -1;
        private int _row = -1;           // row index (into _rows) of the current row
        private string _id = "";
        private (int Width, int Height)? _size;
        private MLImage? _pendingImage;  // decoded by MoveNext when validating; handed to the first Image getter call
        private readonly Dictionary<DenseTask, Array> _labels = [];

        public Cursor(PascalContextDataView view, bool[] active, int[] order, long firstBatch = 0, long batchStride = 0)
        {
            _view = view;
            _active = active;
            _order = order;
            _firstBatch = firstBatch;
            _batchStride = batchStride;
        }

        public override long Position => _position;

        public override long Batch => _batch;

        public override DataViewSchema Schema => _view.Schema;

        public override bool MoveNext()
        {
            while (_next < _order.Length)
            {
                ResetRow();
                _batch = _firstBatch + _next * _batchStride;
                _row = _order[_next++];
                _id = _view._rows[_row];
                if (_view._skipped.ContainsKey(_id)) continue;
                if (_view._options.SkipBadSamples)
                {
                    try
                    {
                        LoadActiveColumns();
                    }
                    catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
                    {
                        _view._skipped[_id] = e.Message;
                        continue;
                    }
                }
                _position++;
                return true;
            }
            ResetRow();
            _row = -1;
            return false;
        }

        /// <summary>Decodes every active column now, so that a bad sample is found before the row is exposed.</summary>
        private void LoadActiveColumns()
        {
            if (_view._imageColumn >= 0 && _active[_view._imageColumn]) _pendingImage = _view._decoder.ReadImage(_id);
            if (_active[_view._heightColumn] || _active[_view._widthColumn]) EnsureSize();
            foreach (var (column, task) in _view._labelColumns)
                if (_active[column]) EnsureLabel(task);
        }

        private void ResetRow()
        {
            _pendingImage?.Dispose();
            _pendingImage = null;
            _size = null;
            _labels.Clear();
        }

        private (int Width, int Height) EnsureSize()
        {
            CheckRow();
            if (_size is null)
            {
                if (_pendingImage is not null) _size = (_pendingImage.Width, _pendingImage.Height);
                else _size = _view._decoder.ReadImageSize(_id);
            }
            return _size.Value;
        }

        private Array EnsureLabel(DenseTask task)
        {
            if (_labels.TryGetValue(task, out var cached)) return cached;
            var (w, h) = EnsureSize();
            var decoder = _view._decoder;
            Array label = task switch
            {
                DenseTask.SemanticSegmentation => decoder.ReadSemseg(_id, w, h),
                DenseTask.Saliency => decoder.ReadSaliency(_id, w, h),
                DenseTask.SurfaceNormals => decoder.ReadNormals(_id, w, h),
                DenseTask.HumanParts => decoder.ReadHumanParts(_id, w, h, _view._partsIndex?.Contains(_id)) ?? AllIgnore(w * h),
                _ => throw new ArgumentOutOfRangeException(nameof(task), task, null),
            };
            _labels[task] = label;
            return label;
        }

        private static byte[] AllIgnore(int length)
        {
            var map = new byte[length];
            Array.Fill(map, DenseTasks.IgnoreLabel);
            return map;
        }

        private void CheckRow()
        {
            if (_row < 0) throw new InvalidOperationException("The cursor is not on a row: call MoveNext first (and only read while it returns true).");
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) =>
        {
            CheckRow();
            value = new DataViewRowId((ulong)_row, 0);
        };

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            DenseViewRows.CheckGetter(_active, column);
            Delegate getter;
            int index = column.Index;
            if (index == _view._imageColumn)
            {
                getter = (ValueGetter<MLImage>)((ref MLImage value) =>
                {
                    CheckRow();
                    if (_pendingImage is not null)
                    {
                        value = _pendingImage;
                        _pendingImage = null;
                    }
                    else
                    {
                        value = _view._decoder.ReadImage(_id);
                    }
                });
            }
            else if (index == _view._pathColumn)
            {
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) =>
                {
                    CheckRow();
                    value = _view._layout.ImagePath(_id).AsMemory();
                });
            }
            else if (index == _view._idColumn)
            {
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) =>
                {
                    CheckRow();
                    value = _id.AsMemory();
                });
            }
            else if (index == _view._heightColumn)
            {
                getter = (ValueGetter<int>)((ref int value) => value = EnsureSize().Height);
            }
            else if (index == _view._widthColumn)
            {
                getter = (ValueGetter<int>)((ref int value) => value = EnsureSize().Width);
            }
            else if (_view._labelColumns.TryGetValue(index, out var task))
            {
                getter = task == DenseTask.SurfaceNormals
                    ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => DenseViewRows.Fill(ref value, (float[])EnsureLabel(task)))
                    : (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> value) => DenseViewRows.Fill(ref value, (byte[])EnsureLabel(task)));
            }
            else
            {
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view's schema.");
            }
            return DenseViewRows.Typed<TValue>(getter, column);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) ResetRow();
            base.Dispose(disposing);
        }
    }
}
