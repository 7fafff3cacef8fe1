using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// Scores an <see cref="IDataView"/> of labels and predictions row by row with a cursor, feeding the per-task meters,
/// so memory does not grow with the number of rows (behind <c>mlContext.MultiTask().Evaluate</c>).
/// </summary>
internal static class MultiTaskEvaluator
{
    public static MultiTaskMetrics Evaluate(IDataView data, MultiTaskEvaluatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var schema = data.Schema;
        var tasks = ResolveTasks(schema, options);

        var needed = new List<DataViewSchema.Column>();
        var plans = new List<TaskColumns>();
        foreach (var task in tasks)
        {
            // Per kind (DenseTaskDescriptor.LabelItemType / PredictionItemType, and what a user's own columns may hold):
            // class and binary maps Byte or Single labels; class-map predictions Byte, Single or a UInt32 key (ML.NET's
            // MapValueToKey: key k + 1 is class k); everything else Single.
            bool byteLabel = task.Kind is DenseTaskKind.Segmentation or DenseTaskKind.BinaryMap;
            var label = CheckVector(schema, options.LabelColumn(task), task, "label", allowByte: byteLabel, allowKey: false);
            var prediction = CheckVector(schema, options.PredictionColumn(task), task, "prediction", allowByte: task.IsClassification, allowKey: task.IsClassification);
            needed.Add(label);
            needed.Add(prediction);
            plans.Add(new TaskColumns(task, label, prediction));
        }
        bool listed = options.Tasks is not null;
        var height = OptionalColumn(schema, options.HeightColumnName, NumberDataViewType.Int32);
        var width = OptionalColumn(schema, options.WidthColumnName, NumberDataViewType.Int32);
        bool checkSize = height is not null && width is not null;
        if (checkSize) { needed.Add(height!.Value); needed.Add(width!.Value); }
        var id = OptionalColumn(schema, options.IdColumnName, TextDataViewType.Instance);
        if (id is not null) needed.Add(id.Value);

        var protocol = options.Protocol ?? EvaluationProtocol.Native;
        var meter = new MultiTaskMeter(tasks, options.SemsegClassCount, options.HumanPartsClassCount);
        using var cursor = data.GetRowCursor(needed);
        foreach (var plan in plans) plan.Bind(cursor);
        var getHeight = checkSize ? cursor.GetGetter<int>(height!.Value) : null;
        var getWidth = checkSize ? cursor.GetGetter<int>(width!.Value) : null;
        var getId = id is not null ? cursor.GetGetter<ReadOnlyMemory<char>>(id.Value) : null;
        ReadOnlyMemory<char> idValue = default;

        long row = 0;
        while (cursor.MoveNext())
        {
            string RowName()
            {
                if (getId is null) return $"Row {row}";
                getId(ref idValue);
                return $"Row {row} (Id '{idValue}')";
            }

            int h = 0, w = 0;
            if (checkSize)
            {
                getHeight!(ref h);
                getWidth!(ref w);
                if (h <= 0 || w <= 0)
                    throw new InvalidOperationException($"{RowName()}: columns '{options.HeightColumnName}'/'{options.WidthColumnName}' give a size of {h}×{w}.");
            }
            foreach (var plan in plans)
            {
                try
                {
                    plan.Update(meter, checkSize ? (long)h * w : -1, h, w, protocol, options.ImageSize);
                }
                catch (ArgumentException e)
                {
                    // Found by its columns, semseg is PASCAL's (21 classes): a larger class id is most likely NYUD's 40 or a task of one's own.
                    string hint = !listed && plan.Task.Name == "semseg" && e.ParamName is "label" or "predicted"
                        ? $" If this is not PASCAL-Context's {plan.Task.Name}, list the tasks: MultiTaskEvaluatorOptions.Tasks = the model's Tasks (e.g. DenseTaskDescriptor.Nyud)."
                        : "";
                    throw new InvalidOperationException($"{RowName()}, task {plan.Task.Name}: {e.Message}{hint}", e);
                }
            }
            row++;
        }
        if (row == 0) throw new ArgumentException("The data view to evaluate has no rows.", nameof(data));
        var metrics = meter.GetMetrics(options.Baselines);
        metrics.Protocol = protocol;
        return metrics;
    }

    private static void Validate(MultiTaskEvaluatorOptions options)
    {
        if (options.Tasks is { } listed && listed.Any(t => t is null))
            throw new ArgumentException($"{nameof(options.Tasks)} holds a null task.", nameof(options));
        foreach (var task in DenseTaskDescriptor.Pascal.Concat(options.Tasks ?? []))
        {
            if (string.IsNullOrWhiteSpace(options.LabelColumn(task)) || string.IsNullOrWhiteSpace(options.PredictionColumn(task)))
                throw new ArgumentException($"The label and prediction column names of task {task.Name} must not be empty.", nameof(options));
        }
        if (options.SemsegClassCount is < 1 or >= DenseTasks.IgnoreLabel)
            throw new ArgumentOutOfRangeException(nameof(options), options.SemsegClassCount, $"{nameof(options.SemsegClassCount)} must be between 1 and 254.");
        if (options.HumanPartsClassCount is < 1 or >= DenseTasks.IgnoreLabel)
            throw new ArgumentOutOfRangeException(nameof(options), options.HumanPartsClassCount, $"{nameof(options.HumanPartsClassCount)} must be between 1 and 254.");
        if (options.Baselines is null)
            throw new ArgumentException($"{nameof(options.Baselines)} must not be null; use {nameof(SingleTaskBaselines)}.{nameof(SingleTaskBaselines.None)} for no Δm.", nameof(options));
        if (options.Protocol is { } p && !Enum.IsDefined(p))
            throw new ArgumentOutOfRangeException(nameof(options), p, $"{nameof(options.Protocol)} is {(int)p}; expected {nameof(EvaluationProtocol.Reference)} or {nameof(EvaluationProtocol.Native)}.");
        if (options.ImageSize < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.ImageSize, $"{nameof(options.ImageSize)} is {options.ImageSize}; expected the network's input size (e.g. 448).");
    }

    private static IReadOnlyList<DenseTaskDescriptor> ResolveTasks(DataViewSchema schema, MultiTaskEvaluatorOptions options)
    {
        if (options.Tasks is { } requested)
        {
            if (requested.Count == 0) throw new ArgumentException("The list of tasks to evaluate is empty.", nameof(options));
            if (requested.Distinct().Count() != requested.Count) throw new ArgumentException("A task is listed twice in the tasks to evaluate.", nameof(options));
            foreach (var task in requested)
            {
                foreach (var (name, role) in new[] { (options.LabelColumn(task), "label"), (options.PredictionColumn(task), "prediction") })
                {
                    if (schema.GetColumnOrNull(name) is null)
                        throw new ArgumentException($"The {role} column '{name}' of task {task.Name} is not in the data. Columns: {string.Join(", ", schema.Select(c => c.Name))}.", nameof(options));
                }
            }
            return requested.ToArray();                          // each task as listed: PASCAL's, NYUD's or your own descriptor
        }
        var present = AutoDetected
            .Where(t => schema.GetColumnOrNull(options.LabelColumn(t)) is not null && schema.GetColumnOrNull(options.PredictionColumn(t)) is not null)
            .ToArray();
        if (present.Length == 0)
        {
            var expected = string.Join("; ", AutoDetected.Select(t => $"{t.Name}: '{options.LabelColumn(t)}' and '{options.PredictionColumn(t)}'"));
            throw new ArgumentException($"No task has both its label and prediction columns in the data ({expected}); for tasks of your own, list them in MultiTaskEvaluatorOptions.Tasks. Columns: {string.Join(", ", schema.Select(c => c.Name))}.", "data");
        }
        foreach (var task in AutoDetected.Except(present))
        {
            // A prediction without its label is almost always a renamed or forgotten label column: say so.
            if (schema.GetColumnOrNull(options.PredictionColumn(task)) is not null)
                throw new ArgumentException($"The data has the prediction column '{options.PredictionColumn(task)}' of task {task.Name} but not its label column '{options.LabelColumn(task)}'. Set the label column name, or list the tasks to evaluate.", "data");
        }
        return present;
    }

    /// <summary>
    /// The tasks found by their columns when <see cref="MultiTaskEvaluatorOptions.Tasks"/> is null: PASCAL-Context's four (so
    /// <c>semseg</c> is PASCAL's, with <see cref="MultiTaskEvaluatorOptions.SemsegClassCount"/> classes) and the two NYUD tasks
    /// whose names no PASCAL task shares (<c>depth</c>, <c>edge</c>). NYUD's 40-class semseg and tasks of your own are listed.
    /// </summary>
    private static readonly DenseTaskDescriptor[] AutoDetected = [.. DenseTaskDescriptor.Pascal, DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.NyudEdge];

    private static DataViewSchema.Column CheckVector(DataViewSchema schema, string name, DenseTaskDescriptor task, string role, bool allowByte, bool allowKey)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentException($"The {role} column '{name}' of task {task.Name} is not in the data.", "data");
        bool ok = column.Type is VectorDataViewType vector &&
            (vector.ItemType == NumberDataViewType.Single || (allowByte && vector.ItemType == NumberDataViewType.Byte) ||
             (allowKey && vector.ItemType is KeyDataViewType { RawType: var raw } && raw == typeof(uint)));
        if (!ok)
        {
            string expected = allowKey ? "Byte or Single class ids, or UInt32 keys" : allowByte ? "Byte or Single" : "Single";
            throw new ArgumentException($"The {role} column '{name}' of task {task.Name} ({task.Kind}) has type {column.Type}; expected a vector of {expected}.", "data");
        }
        return column;
    }

    private static DataViewSchema.Column? OptionalColumn(DataViewSchema schema, string? name, DataViewType type)
    {
        if (string.IsNullOrEmpty(name) || schema.GetColumnOrNull(name) is not { } column) return null;
        if (!column.Type.Equals(type))
            throw new ArgumentException($"Column '{name}' has type {column.Type}; expected {type}.", "data");
        return column;
    }

    /// <summary>The label and prediction columns of one task and their getters on the current cursor.</summary>
    private sealed class TaskColumns(DenseTaskDescriptor task, DataViewSchema.Column label, DataViewSchema.Column prediction)
    {
        private readonly VectorReader _label = new(label);
        private readonly VectorReader _prediction = new(prediction);

        public DenseTaskDescriptor Task { get; } = task;

        public void Bind(DataViewRowCursor cursor)
        {
            _label.Bind(cursor);
            _prediction.Bind(cursor);
        }

        /// <summary>
        /// Reads the row and feeds the task's meter; <paramref name="pixels"/> is H·W when known, else −1. Under
        /// <see cref="EvaluationProtocol.Reference"/> the label is first resized to <paramref name="size"/>² (<see cref="ProtocolLabels"/>);
        /// under both, AddIgnoreRegions applies (human parts all 0, depth 0, normals ‖n‖ = 0 → ignored) and normals labels are renormalised.
        /// </summary>
        public void Update(MultiTaskMeter meter, long pixels, int h, int w, EvaluationProtocol protocol, int size)
        {
            _label.Read();
            _prediction.Read();
            long perPixel = Task.LabelChannels;
            if (pixels >= 0 && _label.Length != perPixel * pixels)
                throw new ArgumentException($"the label column '{label.Name}' has {_label.Length} values but the image is {h}×{w}{(perPixel == 3 ? " (3 values per pixel)" : "")}, so {perPixel * pixels} were expected.");
            bool reference = protocol == EvaluationProtocol.Reference;
            long area = (long)size * size;
            if (reference && _prediction.Length != perPixel * area)
                throw new ArgumentException($"the prediction column '{prediction.Name}' has {_prediction.Length} values; the Reference protocol scores predictions at the network's input size {size}×{size} ({perPixel * area} values). " +
                    "Score the model with Evaluate(model, data, options), which runs it at that size, or set Protocol = Native.");
            if (!reference && _prediction.Length != _label.Length)
                throw new ArgumentException($"the prediction column '{prediction.Name}' has {_prediction.Length} values but the label column '{label.Name}' has {_label.Length}.");
            if (reference && _label.Length != perPixel * area && pixels < 0)
                throw new ArgumentException($"the label column '{label.Name}' has {_label.Length} values, not {size}×{size}; the Reference protocol resizes it from the image's size, so the view needs the Int32 size columns (MultiTaskEvaluatorOptions.HeightColumnName/WidthColumnName).");
            // Labels already at S×S go through the same FixedResize, which is then the identity (AddIgnoreRegions and the renormalisation still apply).
            int lw = pixels < 0 ? size : w, lh = pixels < 0 ? size : h;
            switch (meter.RowMeter(Task))
            {
                case SegmentationMeter segmentation: segmentation.Update(_prediction.Bytes(prediction.Name), ClassMap(reference, lw, lh, size)); break;
                case SaliencyMeter saliency: saliency.Update(_prediction.Floats(), ClassMap(reference, lw, lh, size)); break;
                case EdgeMeter edge: edge.Update(_prediction.Floats(), ClassMap(reference, lw, lh, size)); break;
                case DepthMeter depth: depth.Update(_prediction.Floats(), Depth(reference, lw, lh, size)); break;
                case NormalsMeter normals: normals.Update(_prediction.Floats(), Normals(reference, lw, lh, size)); break;
            }
        }

        /// <summary>
        /// A class or binary map; under Reference resized nearest. Under both protocols PASCAL's human parts that are 0
        /// everywhere are ignored (AddIgnoreRegions), as the batch pipeline's PASCAL slot does for <c>Evaluate(model, data)</c>.
        /// </summary>
        private ReadOnlySpan<byte> ClassMap(bool reference, int w, int h, int size)
        {
            bool humanParts = Task.SameDefinition(DenseTaskDescriptor.PascalHumanParts);
            var map = _label.Bytes(label.Name);
            return reference ? ProtocolLabels.ResizeClassMap(map, w, h, size, humanParts) : ProtocolLabels.OriginalClassMap(map, humanParts);
        }

        /// <summary>A depth map with its holes (0) as the ignore value; under Reference resized nearest.</summary>
        private ReadOnlySpan<float> Depth(bool reference, int w, int h, int size)
        {
            float ignore = Task.IgnoreValue ?? DenseTaskDescriptor.DefaultIgnoreLabel;
            return reference ? ProtocolLabels.ResizeDepth(_label.Floats(), w, h, size, ignore) : ProtocolLabels.OriginalDepth(_label.Floats(), ignore);
        }

        private ReadOnlySpan<float> Normals(bool reference, int w, int h, int size)
        {
            if (reference) return ProtocolLabels.ResizeNormals(_label.Floats(), w, h, size);
            var copy = _label.Floats().ToArray();
            ProtocolLabels.RenormalizeNormals(copy);
            return copy;
        }
    }

    /// <summary>Reads a Byte, Single or UInt32-key vector column as a dense span, converting to bytes or floats where asked.</summary>
    private sealed class VectorReader(DataViewSchema.Column column)
    {
        private readonly DataViewType _item = ((VectorDataViewType)column.Type).ItemType;
        private ValueGetter<VBuffer<byte>>? _byteGetter;
        private ValueGetter<VBuffer<float>>? _floatGetter;
        private ValueGetter<VBuffer<uint>>? _keyGetter;
        private VBuffer<byte> _byteBuffer;
        private VBuffer<float> _floatBuffer;
        private VBuffer<uint> _keyBuffer;
        private byte[] _bytes = [];
        private float[] _floats = [];
        private uint[] _keys = [];

        private bool IsByte => _item == NumberDataViewType.Byte;

        private bool IsKey => _item is KeyDataViewType;

        public int Length => IsByte ? _byteBuffer.Length : IsKey ? _keyBuffer.Length : _floatBuffer.Length;

        public void Bind(DataViewRowCursor cursor)
        {
            if (IsByte) _byteGetter = cursor.GetGetter<VBuffer<byte>>(column);
            else if (IsKey) _keyGetter = cursor.GetGetter<VBuffer<uint>>(column);
            else _floatGetter = cursor.GetGetter<VBuffer<float>>(column);
        }

        public void Read()
        {
            if (IsByte) _byteGetter!(ref _byteBuffer);
            else if (IsKey) _keyGetter!(ref _keyBuffer);
            else _floatGetter!(ref _floatBuffer);
        }

        /// <summary>
        /// The values as bytes: class ids or 0/1 with 255 = ignore. Single values must be whole numbers in [0, 255]; a key k
        /// (1-based, ML.NET's convention) is class k − 1, and the missing key 0 is refused.
        /// </summary>
        public ReadOnlySpan<byte> Bytes(string name)
        {
            if (IsByte) return Dense(_byteBuffer, ref _bytes);
            if (IsKey)
            {
                var keys = Dense(_keyBuffer, ref _keys);
                if (_bytes.Length < keys.Length) _bytes = new byte[keys.Length];
                for (int i = 0; i < keys.Length; i++)
                {
                    uint k = keys[i];
                    if (k is 0 or > DenseTasks.IgnoreLabel)
                        throw new ArgumentException($"column '{name}' holds key {k} at index {i}; expected a key 1..{DenseTasks.IgnoreLabel} (class key − 1; 0 is a missing value).");
                    _bytes[i] = (byte)(k - 1);
                }
                return _bytes.AsSpan(0, keys.Length);
            }
            var source = Dense(_floatBuffer, ref _floats);
            if (_bytes.Length < source.Length) _bytes = new byte[source.Length];
            for (int i = 0; i < source.Length; i++)
            {
                float v = source[i];
                if (!(v >= 0 && v <= 255 && v == MathF.Floor(v)))
                    throw new ArgumentException($"column '{name}' holds {v} at index {i}; expected a whole number in [0, 255] (255 = ignore).");
                _bytes[i] = (byte)v;
            }
            return _bytes.AsSpan(0, source.Length);
        }

        /// <summary>The values as floats (Single columns only: the callers' column checks allow nothing else here).</summary>
        public ReadOnlySpan<float> Floats() => Dense(_floatBuffer, ref _floats);

        private static ReadOnlySpan<T> Dense<T>(in VBuffer<T> buffer, ref T[] scratch)
        {
            if (buffer.IsDense) return buffer.GetValues();
            if (scratch.Length < buffer.Length) scratch = new T[buffer.Length];
            var dense = scratch.AsSpan(0, buffer.Length);
            dense.Clear();
            var values = buffer.GetValues();
            var indices = buffer.GetIndices();
            for (int i = 0; i < values.Length; i++) dense[indices[i]] = values[i];
            return dense;
        }
    }
}
