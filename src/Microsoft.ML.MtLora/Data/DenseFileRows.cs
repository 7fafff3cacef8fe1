using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data;

/// <summary>
/// The schema and cursors of a view with one row per image file and one label column per task (<see cref="Nyud.NyudDataView"/>,
/// <see cref="Folder.DenseTaskFolderDataView"/>): <c>ImagePath</c>, <c>Image</c>, <c>Id</c>, <c>Height</c>, <c>Width</c> and
/// each task's <see cref="DenseTaskDescriptor.LabelColumnName"/> (a vector of its <see cref="DenseTaskDescriptor.LabelItemType"/>).
/// The view gives the ids, image paths and a label decoder; a cursor reads the image size from the file header once per row
/// and decodes each label once per row, when a getter asks for it.
/// </summary>
internal sealed class DenseFileRows
{
    /// <summary>Decodes the label of task <c>t</c> (index into the tasks) for row <c>row</c> of an image of the given size.</summary>
    public delegate Array LabelReader(int t, int row, int width, int height);

    private readonly IReadOnlyList<string> _ids;
    private readonly IReadOnlyList<string> _imagePaths;
    private readonly IReadOnlyList<DenseTaskDescriptor> _tasks;
    private readonly LabelReader _readLabel;
    private readonly int _pathColumn, _imageColumn, _idColumn, _heightColumn, _widthColumn;
    private readonly Dictionary<int, int> _labelColumns = []; // column index → task index

    public DenseFileRows(IReadOnlyList<string> ids, IReadOnlyList<string> imagePaths, IReadOnlyList<DenseTaskDescriptor> tasks, LabelReader readLabel)
    {
        _ids = ids;
        _imagePaths = imagePaths;
        _tasks = tasks;
        _readLabel = readLabel;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(MtLoraColumnNames.ImagePath, TextDataViewType.Instance);
        builder.AddColumn(MtLoraColumnNames.Image, new ImageDataViewType());
        builder.AddColumn(MtLoraColumnNames.Id, TextDataViewType.Instance);
        builder.AddColumn(MtLoraColumnNames.Height, NumberDataViewType.Int32);
        builder.AddColumn(MtLoraColumnNames.Width, NumberDataViewType.Int32);
        foreach (var task in tasks) builder.AddColumn(task.LabelColumnName, new VectorDataViewType(task.LabelItemType));
        Schema = builder.ToSchema();
        _pathColumn = Schema[MtLoraColumnNames.ImagePath].Index;
        _imageColumn = Schema[MtLoraColumnNames.Image].Index;
        _idColumn = Schema[MtLoraColumnNames.Id].Index;
        _heightColumn = Schema[MtLoraColumnNames.Height].Index;
        _widthColumn = Schema[MtLoraColumnNames.Width].Index;
        for (int t = 0; t < tasks.Count; t++) _labelColumns[Schema[tasks[t].LabelColumnName].Index] = t;
    }

    public DataViewSchema Schema { get; }

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand)
    {
        var active = DenseViewRows.ActiveColumns(Schema, columnsNeeded);
        var order = DenseViewRows.Order(_ids.Count, rand);
        return new Cursor(this, active, order);
    }

    private (int Width, int Height) ReadImageSize(int row)
    {
        var path = _imagePaths[row];
        using var codec = SKCodec.Create(path, out var result)
            ?? throw new InvalidDataException($"'{path}': cannot decode the image header ({result}); expected a JPEG or PNG image.");
        return (codec.Info.Width, codec.Info.Height);
    }

    private sealed class Cursor(DenseFileRows rows, bool[] active, int[] order) : DataViewRowCursor
    {
        private int _next;
        private long _position = -1;
        private int _row = -1;
        private (int Width, int Height)? _size;
        private readonly Array?[] _labels = new Array?[rows._tasks.Count];

        public override long Position => _position;

        public override long Batch => 0;

        public override DataViewSchema Schema => rows.Schema;

        private int Row => _row >= 0 ? _row : throw new InvalidOperationException("The cursor is not on a row: call MoveNext first (and only read while it returns true).");

        public override bool MoveNext()
        {
            _size = null;
            Array.Clear(_labels);
            if (_next >= order.Length)
            {
                _row = -1;
                return false;
            }
            _row = order[_next++];
            _position++;
            return true;
        }

        private (int Width, int Height) Size() => _size ??= rows.ReadImageSize(Row);

        private Array Label(int t)
        {
            if (_labels[t] is { } cached) return cached;
            var (w, h) = Size();
            return _labels[t] = rows._readLabel(t, Row, w, h);
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = new DataViewRowId((ulong)Row, 0);

        public override bool IsColumnActive(DataViewSchema.Column column) => active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            DenseViewRows.CheckGetter(active, column);
            int index = column.Index;
            Delegate getter;
            if (index == rows._pathColumn)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = rows._imagePaths[Row].AsMemory());
            else if (index == rows._imageColumn)
                getter = (ValueGetter<MLImage>)((ref MLImage value) => value = MLImage.CreateFromFile(rows._imagePaths[Row]));
            else if (index == rows._idColumn)
                getter = (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = rows._ids[Row].AsMemory());
            else if (index == rows._heightColumn)
                getter = (ValueGetter<int>)((ref int value) => value = Size().Height);
            else if (index == rows._widthColumn)
                getter = (ValueGetter<int>)((ref int value) => value = Size().Width);
            else if (rows._labelColumns.TryGetValue(index, out int t))
                getter = rows._tasks[t].LabelItemType == NumberDataViewType.Single
                    ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) => DenseViewRows.Fill(ref value, (float[])Label(t)))
                    : (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> value) => DenseViewRows.Fill(ref value, (byte[])Label(t)));
            else
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view's schema.");
            return DenseViewRows.Typed<TValue>(getter, column);
        }
    }
}
