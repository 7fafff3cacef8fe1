using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data.Nyud;

/// <summary>
/// A lazy <see cref="IDataView"/> over one split of a NYUD_MT root, created by <c>mlContext.Data.LoadNyud(root, split)</c>: one
/// row per id of <c>gt_sets/&lt;split&gt;.txt</c>, in file order. Only the split list is read, and the five files of every id
/// checked to exist, when the view is created; each getter decodes its own column for the current row.
/// </summary>
/// <remarks>
/// <para>Columns, every map at the image's resolution, row-major (row y, column x at <c>y·Width + x</c>):</para>
/// <list type="table">
/// <item><term><c>ImagePath</c></term><description>Text: the full path of <c>images/&lt;id&gt;.jpg</c> (for
/// <c>mlContext.Transforms.LoadImages</c>).</description></item>
/// <item><term><c>Image</c></term><description><see cref="ImageDataViewType"/>: the image decoded by
/// <see cref="MLImage.CreateFromFile(string)"/>; each getter call decodes a new image, which the caller owns.</description></item>
/// <item><term><c>Id</c></term><description>Text: the sample id.</description></item>
/// <item><term><c>Height</c>, <c>Width</c></term><description>Int32: the image size (from the file header).</description></item>
/// <item><term>one label column per task of <see cref="DenseTaskDescriptor.Nyud"/></term><description>named by its
/// <see cref="DenseTaskDescriptor.LabelColumnName"/>, a vector of its <see cref="DenseTaskDescriptor.LabelItemType"/> with
/// <see cref="DenseTaskDescriptor.LabelChannels"/>·Height·Width values, decoded by <see cref="NyudLayout"/>:
/// <c>SemsegLabel</c> (Byte: 0..39, 255 = unlabelled), <c>DepthLabel</c> (Single: metres, 0 where the sensor gave nothing),
/// <c>NormalsLabel</c> (Single, planar x, y, z planes) and <c>EdgeLabel</c> (Byte: 1 edge, 0 not).</description></item>
/// </list>
/// <para>A label whose size differs from its image's, or that holds a value the reference's loader would not (a class above
/// 40, a negative or NaN depth, an edge value outside 0..1), fails the getter with an <see cref="InvalidDataException"/>
/// naming the file. <c>MtLoraEstimator.Fit</c> trains these tasks from this view (with
/// <see cref="Preprocessing.AugmentationDraws.Nyud"/> for the reference's NYUD augmentation) and
/// <c>ml.MultiTask().Evaluate(model, view)</c> scores them (see the README, "NYUD-v2").</para>
/// </remarks>
public sealed class NyudDataView : IDataView
{
    private readonly string[] _ids;
    private readonly int _pathColumn, _imageColumn, _idColumn, _heightColumn, _widthColumn;
    private readonly Dictionary<int, DenseTaskDescriptor> _labelColumns = [];

    internal NyudDataView(string root, string split)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrEmpty(split);
        Root = Path.GetFullPath(root);
        if (!Directory.Exists(Root)) throw new DirectoryNotFoundException($"NYUD_MT root '{Root}' does not exist.");
        Split = split;
        _ids = NyudLayout.ReadSplit(Root, split).ToArray();

        var builder = new DataViewSchema.Builder();
        builder.AddColumn(MtLoraColumnNames.ImagePath, TextDataViewType.Instance);
        builder.AddColumn(MtLoraColumnNames.Image, new ImageDataViewType());
        builder.AddColumn(MtLoraColumnNames.Id, TextDataViewType.Instance);
        builder.AddColumn(MtLoraColumnNames.Height, NumberDataViewType.Int32);
        builder.AddColumn(MtLoraColumnNames.Width, NumberDataViewType.Int32);
        foreach (var task in Tasks) builder.AddColumn(task.LabelColumnName, new VectorDataViewType(task.LabelItemType));
        Schema = builder.ToSchema();
        _pathColumn = Schema[MtLoraColumnNames.ImagePath].Index;
        _imageColumn = Schema[MtLoraColumnNames.Image].Index;
        _idColumn = Schema[MtLoraColumnNames.Id].Index;
        _heightColumn = Schema[MtLoraColumnNames.Height].Index;
        _widthColumn = Schema[MtLoraColumnNames.Width].Index;
        foreach (var task in Tasks) _labelColumns[Schema[task.LabelColumnName].Index] = task;
    }

    /// <summary>The dataset root (full path).</summary>
    public string Root { get; }

    /// <summary>The split (<c>train</c>, <c>val</c>).</summary>
    public string Split { get; }

    /// <summary>The tasks whose label columns the view has: <see cref="DenseTaskDescriptor.Nyud"/> (semseg, depth, normals, edge).</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => DenseTaskDescriptor.Nyud;

    /// <summary>The ids of the rows, in row order.</summary>
    public IReadOnlyList<string> Ids => _ids;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>True: cursors can visit the rows in a random order drawn from the <see cref="Random"/> they are given.</summary>
    public bool CanShuffle => true;

    /// <summary>The number of rows.</summary>
    /// <returns>The count of ids in the split list.</returns>
    public long? GetRowCount() => _ids.Length;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var active = DenseViewRows.ActiveColumns(Schema, columnsNeeded);
        var order = DenseViewRows.Order(_ids.Length, rand);
        return new Cursor(this, active, order);
    }

    /// <summary>One cursor (the view decodes on the caller's thread; ML.NET accepts fewer cursors than asked for).</summary>
    /// <param name="columnsNeeded">The columns to read.</param>
    /// <param name="n">The number of cursors asked for.</param>
    /// <param name="rand">The shuffling generator, or null for file order.</param>
    /// <returns>An array of one cursor.</returns>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private (int Width, int Height) ReadImageSize(string id)
    {
        var path = NyudLayout.ImagePath(Root, id);
        using var codec = SKCodec.Create(path, out var result)
            ?? throw new InvalidDataException($"'{path}': cannot decode the image header ({result}); expected a JPEG.");
        return (codec.Info.Width, codec.Info.Height);
    }

    private sealed class Cursor(NyudDataView view, bool[] active, int[] order) : DataViewRowCursor
    {
        private int _next;
        private long _position = -1;
        private int _row = -1;
        private (int Width, int Height)? _size;
        private readonly Dictionary<string, Array> _labels = new(StringComparer.Ordinal);

        public override long Position => _position;

        public override long Batch => 0;

        public override DataViewSchema Schema => view.Schema;

        private string Id => _row >= 0 ? view._ids[_row] : throw new InvalidOperationException("The cursor is not on a row: call MoveNext first (and only read while it returns true).");

        public override bool MoveNext()
        {
            _size = null;
            _labels.Clear();
            if (_next >= order.Length)
            {
                _row = -1;
                return false;
            }
            _row = order[_next++];
            _position++;
            return true;
        }

        private (int Width, int Height) Size() => _size ??= view.ReadImageSize(Id);

        private Array Label(DenseTaskDescriptor task)
        {
            if (_labels.TryGetValue(task.Name, out var cached)) return cached;
            var (w, h) = Size();
            Array label = task.Kind switch
            {
                DenseTaskKind.Segmentation => NyudLayout.ReadSemseg(view.Root, Id, w, h),
                DenseTaskKind.Depth => NyudLayout.ReadDepth(view.Root, Id, w, h),
                DenseTaskKind.SurfaceNormals => NyudLayout.ReadNormals(view.Root, Id, w, h),
                _ => NyudLayout.ReadEdge(view.Root, Id, w, h),
            };
            _labels[task.Name] = label;
            return label;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) =>
        {
            _ = Id;
            value = new DataViewRowId((ulong)_row, 0);
        };

        public override bool IsColumnActive(DataViewSchema.Column column) => active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            DenseViewRows.CheckGetter(active, column);
            int index = column.Index;
            Delegate getter;
            if (index == view._pathColumn)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = NyudLayout.ImagePath(view.Root, Id).AsMemory());
            else if (index == view._imageColumn)
                getter = (ValueGetter<MLImage>)((ref MLImage value) => value = MLImage.CreateFromFile(NyudLayout.ImagePath(view.Root, Id)));
            else if (index == view._idColumn)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = Id.AsMemory());
            else if (index == view._heightColumn)
                getter = (ValueGetter<int>)((ref int value) => value = Size().Height);
            else if (index == view._widthColumn)
                getter = (ValueGetter<int>)((ref int value) => value = Size().Width);
            else if (view._labelColumns.TryGetValue(index, out var task))
                getter = task.LabelItemType == NumberDataViewType.Single
                    ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => DenseViewRows.Fill(ref value, (float[])Label(task)))
                    : (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> value) => DenseViewRows.Fill(ref value, (byte[])Label(task)));
            else
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view's schema.");
            return DenseViewRows.Typed<TValue>(getter, column);
        }
    }
}
