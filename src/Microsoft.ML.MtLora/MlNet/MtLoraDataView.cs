using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora;

/// <summary>
/// The lazy result of <see cref="MtLoraTransformer.Transform"/>. ML.NET cursors hand out one row at a time, so to
/// run the network on batches each cursor opens two input cursors with the same seed: the main one serves the
/// pass-through columns row by row, and a look-ahead one over the image column only reads <c>BatchSize</c> images
/// ahead, runs one forward pass and keeps the per-row results until the main cursor reaches them. IDataView cursors
/// are repeatable (same data, same seed, same order), so both walk the same rows; the row ids are compared on every
/// row to prove it.
/// </summary>
/// <remarks>
/// What this relies on is only the IDataView contract (dotnet/machinelearning docs/code/IDataViewImplementation.md,
/// "Repeatability"; DataViewRowCursor.md, "Batch" and "GetIdGetter"): two cursors of one view with identically seeded
/// generators visit the same rows in the same order, whatever columns they ask for, and a row has the same id in every
/// cursoring. The two cursors may take different paths upstream (an ML.NET transform consolidates a parallel cursor set
/// by its <c>Batch</c> ids when all the requested columns are cacheable, which the image column is not), and the contract
/// makes them agree; the ids are compared on every row, so an input that breaks it gets a clear error instead of
/// predictions on the wrong rows. A getter's value is only valid for the current row, so each image's pixels are copied
/// out as soon as it is read (<see cref="Data.Preprocessing.InferenceBatchLoader"/>), before the next row can reuse or
/// dispose it.
/// </remarks>
internal sealed class MtLoraDataView : IDataView
{
    private readonly MtLoraTransformer _parent;
    private readonly IDataView _input;
    private readonly MtLoraBindings _bindings;

    public MtLoraDataView(MtLoraTransformer parent, IDataView input, MtLoraBindings bindings)
    {
        _parent = parent;
        _input = input;
        _bindings = bindings;
    }

    public bool CanShuffle => _input.CanShuffle;

    public DataViewSchema Schema => _bindings.OutputSchema;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var columns = columnsNeeded.ToList();
        foreach (var c in columns)
            if (c.Index < 0 || c.Index >= Schema.Count || Schema[c.Index].Name != c.Name)
                throw new ArgumentOutOfRangeException(nameof(columnsNeeded), $"Column '{c.Name}' does not belong to this data view's schema.");
        return new Cursor(_parent, _input, _bindings, columns, rand);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)]; // n is a hint; batching already uses the hardware, one cursor keeps the order

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly MtLoraBindings _bindings;
        private readonly DensePredictor _predictor;
        private readonly int _batchSize;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _lookAhead;
        private readonly ValueGetter<MLImage>? _image;
        private readonly ValueGetter<DataViewRowId>? _mainId;
        private readonly ValueGetter<DataViewRowId>? _lookAheadId;
        private readonly bool[] _active;
        private readonly HashSet<string> _wanted;
        private readonly string _imageColumnName;
        private readonly MtLoraTransformer _parent;
        private readonly IDataView _input;
        private InferenceBatchLoader? _loader;                  // reads images ahead on loader workers (made at the first batch)
        private DensePrediction[] _batch = [];
        private DataViewRowId[] _batchIds = [];
        private int _inBatch = -1;
        private long _position = -1;
        private bool _disposed;

        public Cursor(MtLoraTransformer parent, IDataView input, MtLoraBindings bindings, List<DataViewSchema.Column> columns, Random? rand)
        {
            _bindings = bindings;
            _parent = parent;
            _input = input;
            _predictor = parent.Predictor;
            _batchSize = parent.BatchSize;
            _imageColumnName = bindings.ImageColumn.Name;
            _active = new bool[bindings.OutputSchema.Count];
            foreach (var c in columns) _active[c.Index] = true;
            _wanted = bindings.ActiveOutputs(columns);

            int? seed = rand?.Next();
            var passThrough = columns.Where(c => c.Index < bindings.FirstOutput).Select(c => bindings.InputSchema[c.Index]).ToList();
            _main = input.GetRowCursor(passThrough, seed is null ? null : new Random(seed.Value));
            if (_wanted.Count > 0)
            {
                _lookAhead = input.GetRowCursor([bindings.ImageColumn], seed is null ? null : new Random(seed.Value));
                _image = _lookAhead.GetGetter<MLImage>(bindings.ImageColumn);
                _mainId = _main.GetIdGetter();
                _lookAheadId = _lookAhead.GetIdGetter();
            }
        }

        public override DataViewSchema Schema => _bindings.OutputSchema;

        public override long Position => _position;

        public override long Batch => _main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override bool MoveNext()
        {
            if (_disposed) return false;
            if (!_main.MoveNext()) return false;
            _position++;
            if (_lookAhead == null) return true;
            _inBatch++;
            if (_inBatch >= _batch.Length) ReadBatch();
            DataViewRowId id = default;
            _mainId!(ref id);
            if (!id.Equals(_batchIds[_inBatch]))
                throw new InvalidOperationException(
                    "The input data view returned different rows to two cursors opened with the same seed, so the MTLoRA transformer cannot read images ahead in batches. " +
                    "Make the input repeatable first, e.g. with mlContext.Data.Cache(data).");
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active on this cursor; ask for it when opening the cursor.");
            var output = _bindings.OutputAt(column.Index);
            if (output == null) return _main.GetGetter<TValue>(_bindings.InputSchema[column.Index]);
            return (ValueGetter<TValue>)_bindings.MakeGetter<TValue>(output, Current);
        }

        private DensePrediction Current()
        {
            if (_position < 0 || _inBatch >= _batch.Length)
                throw new InvalidOperationException("The cursor is not on a row: call MoveNext first.");
            return _batch[_inBatch];
        }

        private void ReadBatch()
        {
            _loader ??= new InferenceBatchLoader(_input, _lookAhead!, _image!, _lookAheadId!, _imageColumnName, _parent.Preprocessing.Transform,
                _batchSize, _parent.LoaderParallelism, _parent.LoaderPrefetchBatches);
            using var batch = _loader.Next()
                ?? throw new InvalidOperationException(
                    "The input data view returned fewer rows to the look-ahead cursor than to the main one. Make the input repeatable first, e.g. with mlContext.Data.Cache(data).");
            _batch = _predictor.Predict(batch.Images, batch.Sizes, _wanted);
            _batchIds = batch.Ids;
            _inBatch = 0;
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            if (disposing)
            {
                _main.Dispose();
                _loader?.Dispose();                             // stops its workers before their cursor goes
                _lookAhead?.Dispose();
                _batch = [];
            }
            _disposed = true;
            base.Dispose(disposing);
        }
    }
}
