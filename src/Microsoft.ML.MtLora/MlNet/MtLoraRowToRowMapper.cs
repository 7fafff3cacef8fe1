using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora;

/// <summary>
/// The row-by-row path of <see cref="MtLoraTransformer"/> (PredictionEngine, chains): a batch of one, predicted
/// once per input row (cached by <see cref="DataViewRow.Position"/>) and shared by every output column of the row.
/// </summary>
internal sealed class MtLoraRowToRowMapper : IRowToRowMapper
{
    private readonly MtLoraTransformer _parent;
    private readonly MtLoraBindings _bindings;

    public MtLoraRowToRowMapper(MtLoraTransformer parent, MtLoraBindings bindings)
    {
        _parent = parent;
        _bindings = bindings;
    }

    public DataViewSchema InputSchema => _bindings.InputSchema;

    public DataViewSchema OutputSchema => _bindings.OutputSchema;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        ArgumentNullException.ThrowIfNull(dependingColumns);
        return _bindings.InputDependencies(dependingColumns);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(activeColumns);
        return new Row(_parent.Predictor, _bindings, input, activeColumns.ToList());
    }

    private sealed class Row : DataViewRow
    {
        private readonly DensePredictor _predictor;
        private readonly MtLoraBindings _bindings;
        private readonly DataViewRow _input;
        private readonly bool[] _active;
        private readonly HashSet<string> _wanted;
        private readonly ValueGetter<MLImage>? _image;
        private DensePrediction? _cached;
        private long _cachedPosition = -1;

        public Row(DensePredictor predictor, MtLoraBindings bindings, DataViewRow input, List<DataViewSchema.Column> active)
        {
            _predictor = predictor;
            _bindings = bindings;
            _input = input;
            _active = new bool[bindings.OutputSchema.Count];
            foreach (var c in active) _active[c.Index] = true;
            _wanted = bindings.ActiveOutputs(active);
            if (_wanted.Count > 0) _image = input.GetGetter<MLImage>(input.Schema[bindings.ImageColumn.Index]);
        }

        public override DataViewSchema Schema => _bindings.OutputSchema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active on this row.");
            var output = _bindings.OutputAt(column.Index);
            if (output == null) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            return (ValueGetter<TValue>)_bindings.MakeGetter<TValue>(output, Current);
        }

        private DensePrediction Current()
        {
            if (_cached == null || _cachedPosition != _input.Position)
            {
                MLImage image = null!;
                _image!(ref image);
                _cached = _predictor.Predict([image], _wanted, _bindings.ImageColumn.Name)[0];
                _cachedPosition = _input.Position;
            }
            return _cached;
        }
    }
}
