using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Conformance;

/// <summary>
/// The checks ML.NET applies to its own estimators, transformers and data views, written anew for this repository from
/// their documented semantics in dotnet/machinelearning:
/// <list type="bullet">
/// <item><see cref="EstimatorWorkout"/>: <c>TestEstimatorCore</c> (test/Microsoft.ML.TestFramework/DataPipe/TestDataPipeBase.cs).</item>
/// <item><see cref="CheckSameSchemas"/>: <c>TestCommon.CheckSameSchemas</c> (test/Microsoft.ML.TestFrameworkCommon/TestCommon.cs).</item>
/// <item><see cref="CheckSameValues(IDataView, IDataView, bool, bool)"/>: <c>TestDataPipeBase.CheckSameValues</c>.</item>
/// <item><see cref="CheckSameSchemaShape"/>: <c>TestDataPipeBase.CheckSameSchemaShape</c> with <c>SchemaShape.Column.IsCompatibleWith</c>.</item>
/// <item><see cref="CheckCursorSet"/>: the cursor-set rules of docs/code/DataViewRowCursor.md ("Batch", "MoveNext",
/// "GetIdGetter") as <c>DataViewUtils.ConsolidateGeneric</c> relies on them.</item>
/// </list>
/// Failures are xunit assertion failures naming the column, row or rule at fault.
/// </summary>
internal static class MlNetConformance
{
    /// <summary>ML.NET's tolerance for float values when comparing transformers (<c>TestDataPipeBase.EqualWithEpsSingle</c>).</summary>
    public const float SingleEps = 1e-6f;

    private const double DoubleEps = 1e-9;

    /// <summary>
    /// The workout of an estimator: schema propagation (promised by the estimator, delivered by the fitted and the reloaded
    /// transformer, their row mapper and their output data), rejection of bad input by every one of them, save to model.zip
    /// and load, and the same values from the fitted and the reloaded transformer.
    /// </summary>
    /// <param name="ml">The context used to save and load.</param>
    /// <param name="estimator">The estimator under test.</param>
    /// <param name="validFitInput">Data the estimator fits on.</param>
    /// <param name="validTransformInput">Data the transformer accepts but the estimator rejects (e.g. without labels).</param>
    /// <param name="invalidInput">Data both must reject with <see cref="ArgumentOutOfRangeException"/> or <see cref="InvalidOperationException"/>.</param>
    /// <param name="inspect">Optional extra checks on the fitted transformer and the loaded input schema, before they are disposed.</param>
    public static void EstimatorWorkout(MLContext ml, IEstimator<ITransformer> estimator, IDataView validFitInput,
        IDataView? validTransformInput = null, IDataView? invalidInput = null, Action<ITransformer, DataViewSchema>? inspect = null)
    {
        var promised = estimator.GetOutputSchema(Shape(validFitInput.Schema));
        if (validTransformInput != null)
        {
            MustFail(() => estimator.GetOutputSchema(Shape(validTransformInput.Schema)), "estimator.GetOutputSchema(validTransformInput)");
            MustFail(() => estimator.Fit(validTransformInput), "estimator.Fit(validTransformInput)");
        }
        if (invalidInput != null)
        {
            MustFail(() => estimator.GetOutputSchema(Shape(invalidInput.Schema)), "estimator.GetOutputSchema(invalidInput)");
            MustFail(() => estimator.Fit(invalidInput), "estimator.Fit(invalidInput)");
        }

        var transformer = estimator.Fit(validFitInput);
        ITransformer loaded;
        DataViewSchema loadedInputSchema;
        try
        {
            using var dir = Fixture.TempDir();
            var zip = dir.File("model.zip");
            ml.Model.Save(transformer, validFitInput.Schema, zip);
            using (var stream = File.OpenRead(zip))
                loaded = ml.Model.Load(stream, out loadedInputSchema);
        }
        catch
        {
            (transformer as IDisposable)?.Dispose();
            throw;
        }

        try
        {
            // The schema the model.zip stores is the one it was saved with: complete, so a user can build input from it.
            // (TestEstimatorCore compares it with every input; only the fit input was saved, so only it is compared here.)
            CheckSameSchemas(validFitInput.Schema, loadedInputSchema);
            CheckOnData(transformer, loaded, validFitInput);
            if (validTransformInput != null) CheckOnData(transformer, loaded, validTransformInput);
            if (invalidInput != null)
            {
                MustFail(() => transformer.GetOutputSchema(invalidInput.Schema), "transformer.GetOutputSchema(invalidInput)");
                MustFail(() => transformer.Transform(invalidInput), "transformer.Transform(invalidInput)");
                MustFail(() => loaded.GetOutputSchema(invalidInput.Schema), "loaded.GetOutputSchema(invalidInput)");
                MustFail(() => loaded.Transform(invalidInput), "loaded.Transform(invalidInput)");
            }

            // What the estimator promised is exactly what the transformer delivers.
            CheckSameSchemaShape(promised, Shape(transformer.GetOutputSchema(validFitInput.Schema)));
            inspect?.Invoke(transformer, loadedInputSchema);
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
            (transformer as IDisposable)?.Dispose();
        }
    }

    private static void CheckOnData(ITransformer transformer, ITransformer loaded, IDataView data)
    {
        var schema = transformer.GetOutputSchema(data.Schema);
        if (transformer.IsRowToRowMapper)
        {
            var mapper = transformer.GetRowToRowMapper(data.Schema);
            Assert.True(ReferenceEquals(mapper.InputSchema, data.Schema), "the row mapper's InputSchema is not the input schema it was made for");
            CheckSameSchemas(schema, mapper.OutputSchema);
        }
        else
        {
            MustFail(() => transformer.GetRowToRowMapper(data.Schema), "GetRowToRowMapper of a transformer that is not a row-to-row mapper");
        }
        CheckSameSchemas(schema, loaded.GetOutputSchema(data.Schema));

        var scored = transformer.Transform(data);
        var scoredByLoaded = loaded.Transform(data);
        CheckSameSchemas(schema, scored.Schema);
        CheckSameSchemas(scored.Schema, scoredByLoaded.Schema);
        CheckSameValues(scored, scoredByLoaded, exactFloats: false);
    }

    /// <summary>The action throws <see cref="ArgumentOutOfRangeException"/> or <see cref="InvalidOperationException"/>
    /// (possibly wrapped in a <see cref="TargetInvocationException"/>), as ML.NET components do on bad input.</summary>
    public static void MustFail(Action action, string what)
    {
        try
        {
            action();
        }
        catch (Exception e)
        {
            var inner = e;
            while (inner is TargetInvocationException { InnerException: { } next }) inner = next;
            Assert.True(inner is ArgumentOutOfRangeException or InvalidOperationException,
                $"{what} threw {inner.GetType().Name} ({inner.Message}); expected ArgumentOutOfRangeException or InvalidOperationException.");
            return;
        }
        Assert.Fail($"{what} did not fail.");
    }

    /// <summary>ML.NET's <c>SchemaShape.Create(DataViewSchema)</c> (internal; pipelines call it for users).</summary>
    public static SchemaShape Shape(DataViewSchema schema) => MtLoraEstimatorTests.Shape(schema);

    /// <summary>
    /// Two schemas are the same: count, names, exact types, name lookups, and the annotations ML.NET checks (an unknown kind
    /// is absent from both and its <c>GetValue</c> fails; <c>SlotNames</c> and <c>KeyValues</c> agree) — and, beyond
    /// ML.NET's check, every annotation name and type, since this library's columns carry a <c>Layout</c> annotation.
    /// </summary>
    public static void CheckSameSchemas(DataViewSchema s1, DataViewSchema s2, bool exactTypes = true)
    {
        Assert.True(s1.Count == s2.Count, $"column count mismatch: {s1.Count} vs {s2.Count} ({Names(s1)} / {Names(s2)})");
        for (int col = 0; col < s1.Count; col++)
        {
            string name1 = s1[col].Name, name2 = s2[col].Name;
            Assert.True(name1 == name2, $"column name mismatch at index {col}: {name1} vs {name2}");
            var type1 = s1[col].Type;
            var type2 = s2[col].Type;
            Assert.True(EqualTypes(type1, type2, exactTypes), $"column '{name1}' (index {col}): type {type1} vs {type2}");
            Assert.True(s1.GetColumnOrNull(name1)?.Index == s2.GetColumnOrNull(name2)?.Index, $"looking up '{name1}' gives different columns");
            Assert.True(s1[col].IsHidden == s2[col].IsHidden, $"column '{name1}' (index {col}) is hidden in one schema only");

            CheckAnnotation("PurpleDragonScales", 0, s1[col], s2[col], exactTypes, mustBeText: true);
            CheckAnnotation("SlotNames", type1 is VectorDataViewType v ? (ulong)v.Size : 0, s1[col], s2[col], exactTypes, mustBeText: true);
            CheckAnnotation("KeyValues", ItemType(type1) is KeyDataViewType k ? k.Count : 0, s1[col], s2[col], exactTypes, mustBeText: false);

            var a1 = s1[col].Annotations.Schema;
            var a2 = s2[col].Annotations.Schema;
            Assert.True(a1.Count == a2.Count && a1.All(a => a2.GetColumnOrNull(a.Name)?.Type.Equals(a.Type) == true),
                $"column '{name1}': annotations [{Describe(a1)}] vs [{Describe(a2)}]");
        }
    }

    private static string Names(DataViewSchema s) => string.Join(", ", s.Select(c => c.Name));

    private static string Describe(DataViewSchema annotations) => string.Join(", ", annotations.Select(a => $"{a.Name}: {a.Type}"));

    private static DataViewType ItemType(DataViewType type) => (type as VectorDataViewType)?.ItemType ?? type;

    /// <summary>Exact: <c>Equals</c>. Otherwise vectors only need the same item type and size (any factoring of dimensions).</summary>
    private static bool EqualTypes(DataViewType t1, DataViewType t2, bool exact) =>
        t1.Equals(t2) || (!exact && t1 is VectorDataViewType v1 && t2 is VectorDataViewType v2 && v1.ItemType.Equals(v2.ItemType) && v1.Size == v2.Size);

    private static void CheckAnnotation(string kind, ulong size, DataViewSchema.Column c1, DataViewSchema.Column c2, bool exactTypes, bool mustBeText)
    {
        var t1 = c1.Annotations.Schema.GetColumnOrNull(kind)?.Type;
        var t2 = c2.Annotations.Schema.GetColumnOrNull(kind)?.Type;
        Assert.False((t1 == null) != (t2 == null), $"column '{c1.Name}': annotation {kind} is present in one schema only");
        if (t1 == null)
        {
            foreach (var c in new[] { c1, c2 })
            {
                VBuffer<ReadOnlyMemory<char>> none = default;
                var e = Assert.Throws<InvalidOperationException>(() => c.Annotations.GetValue(kind, ref none));
                Assert.Equal("Invalid call to 'GetValue'", e.Message);
            }
            return;
        }
        Assert.True(EqualTypes(t1, t2!, exactTypes), $"column '{c1.Name}': annotation {kind} types {t1} vs {t2}");
        if (ItemType(t1) is not TextDataViewType)
        {
            Assert.False(mustBeText, $"column '{c1.Name}': annotation {kind} has type {t1}, expected text");
            return;
        }
        Assert.True((ulong)((t1 as VectorDataViewType)?.Size ?? 0) == size, $"column '{c1.Name}': annotation {kind} has size {(t1 as VectorDataViewType)?.Size}, expected {size}");
        VBuffer<ReadOnlyMemory<char>> n1 = default, n2 = default;
        c1.Annotations.GetValue(kind, ref n1);
        c2.Annotations.GetValue(kind, ref n2);
        Assert.True(n1.DenseValues().Select(m => m.ToString()).SequenceEqual(n2.DenseValues().Select(m => m.ToString())), $"column '{c1.Name}': annotation {kind} values differ");
    }

    /// <summary>
    /// The promised shape and the delivered one have the same columns, each compatible with the other both ways: same name,
    /// vector kind, item type and key-ness, and the same annotations (each one's set contains the other's).
    /// </summary>
    public static void CheckSameSchemaShape(SchemaShape promised, SchemaShape delivered)
    {
        Assert.True(promised.Count == delivered.Count,
            $"{promised.Count} columns promised ({string.Join(", ", promised.Select(c => c.Name).Order())}), {delivered.Count} delivered ({string.Join(", ", delivered.Select(c => c.Name).Order())})");
        foreach (var (p, d) in promised.OrderBy(c => c.Name, StringComparer.Ordinal).Zip(delivered.OrderBy(c => c.Name, StringComparer.Ordinal)))
        {
            Assert.Equal(p.Name, d.Name);
            Assert.True(IsCompatibleWith(d, p), $"column '{p.Name}': delivered {Describe(d)} has something not promised ({Describe(p)})");
            Assert.True(IsCompatibleWith(p, d), $"column '{p.Name}': promised {Describe(p)} but delivered {Describe(d)}");
        }
    }

    /// <summary><paramref name="required"/> accepts <paramref name="source"/>: as ML.NET's internal <c>SchemaShape.Column.IsCompatibleWith</c>.</summary>
    private static bool IsCompatibleWith(SchemaShape.Column required, SchemaShape.Column source)
    {
        if (required.Name != source.Name || required.Kind != source.Kind || !required.ItemType.Equals(source.ItemType) || required.IsKey != source.IsKey)
            return false;
        foreach (var a in required.Annotations)
        {
            var match = source.Annotations.FirstOrDefault(s => s.Name == a.Name);
            if (match.Name == null || !IsCompatibleWith(a, match)) return false;
        }
        return true;
    }

    private static string Describe(SchemaShape.Column c) =>
        $"{c.Kind} {(c.IsKey ? "Key<" + c.ItemType + ">" : c.ItemType.ToString())} [{string.Join(", ", c.Annotations.Select(a => a.Name + ": " + a.ItemType))}]";

    /// <summary>
    /// Two views hold the same rows: compared through cursors over all columns, over the even and the odd columns of the
    /// second view, and through one cursor of the second view per column, all open at once; row ids must agree and be unique.
    /// </summary>
    /// <param name="view1">The first view.</param>
    /// <param name="view2">The second view, same schema.</param>
    /// <param name="exactFloats">Bit-identical floats; otherwise within <see cref="SingleEps"/> (float) or 1e-9 (double).</param>
    /// <param name="checkId">Compare the row ids too.</param>
    public static void CheckSameValues(IDataView view1, IDataView view2, bool exactFloats = true, bool checkId = true)
    {
        Assert.Equal(view1.Schema.Count, view2.Schema.Count);
        using (var c1 = view1.GetRowCursor(view1.Schema))
        using (var c2 = view2.GetRowCursor(view2.Schema))
        {
            Assert.Same(view1.Schema, c1.Schema);
            Assert.Same(view2.Schema, c2.Schema);
            CheckSameValues(c1, c2, exactFloats, checkId, checkIdCollisions: true, "all columns");
        }
        foreach (var (parity, label) in new[] { (0, "even columns"), (1, "odd columns") })
        {
            using var c1 = view1.GetRowCursor(view1.Schema);
            using var c2 = view2.GetRowCursor(view2.Schema.Where(c => (c.Index & 1) == parity));
            CheckSameValues(c1, c2, exactFloats, checkId, checkIdCollisions: false, label);
        }
        CheckSameValuesColumnByColumn(view1, view2, exactFloats, checkId);
    }

    /// <summary>Compares the rows of two cursors over the columns active in both.</summary>
    public static void CheckSameValues(DataViewRowCursor c1, DataViewRowCursor c2, bool exactFloats, bool checkId, bool checkIdCollisions, string what)
    {
        Assert.Equal(c1.Schema.Count, c2.Schema.Count);
        var comparers = new List<(int Column, Func<bool> Same)>();
        for (int col = 0; col < c1.Schema.Count; col++)
        {
            if (!c1.IsColumnActive(c1.Schema[col]) || !c2.IsColumnActive(c2.Schema[col])) continue;
            Assert.True(c1.Schema[col].Type.Equals(c2.Schema[col].Type), $"{what}: column '{c1.Schema[col].Name}' has types {c1.Schema[col].Type} and {c2.Schema[col].Type}");
            comparers.Add((col, ColumnComparer(c1, c2, c1.Schema[col], exactFloats)));
        }
        var sameId = checkId ? IdComparer(c1, c2) : null;
        var idGetter = c1.GetIdGetter();
        var seen = new HashSet<DataViewRowId>();
        while (true)
        {
            bool more1 = c1.MoveNext(), more2 = c2.MoveNext();
            Assert.True(more1 == more2, $"{what}: {(more1 ? "left" : "right")} has more rows at position {(more1 ? c1.Position : c2.Position)}");
            if (!more1) break;
            Assert.Equal(c1.Position, c2.Position);
            if (checkIdCollisions)
            {
                DataViewRowId id = default;
                idGetter(ref id);
                Assert.True(seen.Add(id), $"{what}: row id {id} repeats at position {c1.Position}");
            }
            foreach (var (col, same) in comparers)
                Assert.True(same(), $"{what}: different values in column '{c1.Schema[col].Name}' of row {c1.Position}");
            if (sameId != null) Assert.True(sameId(), $"{what}: different row ids at row {c1.Position}");
        }
        // MoveNext keeps returning false after the end (docs/code/DataViewRowCursor.md, "MoveNext").
        Assert.False(c1.MoveNext());
        Assert.False(c2.MoveNext());
    }

    private static void CheckSameValuesColumnByColumn(IDataView view1, IDataView view2, bool exactFloats, bool checkId)
    {
        var cursors = new List<DataViewRowCursor>();
        try
        {
            using var c1 = view1.GetRowCursor(view1.Schema);
            for (int col = 0; col < view1.Schema.Count; col++) cursors.Add(view2.GetRowCursor(view2.Schema));
            var comparers = new Func<bool>[cursors.Count];
            var ids = new Func<bool>?[cursors.Count];
            for (int col = 0; col < cursors.Count; col++)
            {
                comparers[col] = ColumnComparer(c1, cursors[col], view1.Schema[col], exactFloats);
                ids[col] = checkId ? IdComparer(c1, cursors[col]) : null;
            }
            while (true)
            {
                bool more = c1.MoveNext();
                foreach (var c in cursors) Assert.True(c.MoveNext() == more, $"one cursor per column: row counts differ at position {c1.Position}");
                if (!more) break;
                for (int col = 0; col < cursors.Count; col++)
                {
                    Assert.True(comparers[col](), $"one cursor per column: different values in column '{view1.Schema[col].Name}' of row {c1.Position}");
                    Assert.True(ids[col]?.Invoke() ?? true, $"one cursor per column: different row ids for column '{view1.Schema[col].Name}' at row {c1.Position}");
                }
            }
        }
        finally
        {
            foreach (var c in cursors) c.Dispose();
        }
    }

    private static Func<bool> IdComparer(DataViewRow r1, DataViewRow r2)
    {
        var g1 = r1.GetIdGetter();
        var g2 = r2.GetIdGetter();
        DataViewRowId v1 = default, v2 = default;
        return () =>
        {
            g1(ref v1);
            g2(ref v2);
            return v1.Equals(v2);
        };
    }

    /// <summary>A comparison of one column's current values, by the column's raw type (ML.NET's <c>GetColumnComparer</c>).</summary>
    public static Func<bool> ColumnComparer(DataViewRow r1, DataViewRow r2, DataViewSchema.Column column, bool exactFloats)
    {
        var c1 = r1.Schema[column.Index];
        var c2 = r2.Schema[column.Index];
        Func<float, float, bool> singles = exactFloats ? (x, y) => BitConverter.SingleToInt32Bits(x) == BitConverter.SingleToInt32Bits(y) : SameSingle;
        Func<double, double, bool> doubles = exactFloats ? (x, y) => BitConverter.DoubleToInt64Bits(x) == BitConverter.DoubleToInt64Bits(y) : SameDouble;
        Func<ReadOnlyMemory<char>, ReadOnlyMemory<char>, bool> texts = (a, b) => a.Span.SequenceEqual(b.Span);
        if (column.Type is VectorDataViewType vector)
        {
            var item = vector.ItemType.RawType;
            if (item == typeof(float)) return Vectors(r1, r2, c1, c2, vector.Size, singles);
            if (item == typeof(double)) return Vectors(r1, r2, c1, c2, vector.Size, doubles);
            if (item == typeof(byte)) return Vectors<byte>(r1, r2, c1, c2, vector.Size, (x, y) => x == y);
            if (item == typeof(int)) return Vectors<int>(r1, r2, c1, c2, vector.Size, (x, y) => x == y);
            if (item == typeof(uint)) return Vectors<uint>(r1, r2, c1, c2, vector.Size, (x, y) => x == y);
            if (item == typeof(long)) return Vectors<long>(r1, r2, c1, c2, vector.Size, (x, y) => x == y);
            if (item == typeof(bool)) return Vectors<bool>(r1, r2, c1, c2, vector.Size, (x, y) => x == y);
            if (item == typeof(ReadOnlyMemory<char>)) return Vectors(r1, r2, c1, c2, vector.Size, texts);
            throw new NotSupportedException($"Column '{column.Name}': no comparison for vectors of {vector.ItemType}.");
        }
        var raw = column.Type.RawType;
        if (raw == typeof(float)) return Scalars(r1, r2, c1, c2, singles);
        if (raw == typeof(double)) return Scalars(r1, r2, c1, c2, doubles);
        if (raw == typeof(byte)) return Scalars<byte>(r1, r2, c1, c2, (x, y) => x == y);
        if (raw == typeof(int)) return Scalars<int>(r1, r2, c1, c2, (x, y) => x == y);
        if (raw == typeof(uint)) return Scalars<uint>(r1, r2, c1, c2, (x, y) => x == y);
        if (raw == typeof(long)) return Scalars<long>(r1, r2, c1, c2, (x, y) => x == y);
        if (raw == typeof(bool)) return Scalars<bool>(r1, r2, c1, c2, (x, y) => x == y);
        if (raw == typeof(ReadOnlyMemory<char>)) return Scalars(r1, r2, c1, c2, texts);
        if (raw == typeof(DataViewRowId)) return Scalars<DataViewRowId>(r1, r2, c1, c2, (x, y) => x.Equals(y));
        return () => true; // structured values (e.g. MLImage) have no value comparison in ML.NET's check either
    }

    private static bool SameSingle(float x, float y) => BitConverter.SingleToInt32Bits(x) == BitConverter.SingleToInt32Bits(y) || Math.Abs(x - y) < SingleEps;

    private static bool SameDouble(double x, double y) => BitConverter.DoubleToInt64Bits(x) == BitConverter.DoubleToInt64Bits(y) || Math.Abs(x - y) < DoubleEps;

    private static Func<bool> Scalars<T>(DataViewRow r1, DataViewRow r2, DataViewSchema.Column c1, DataViewSchema.Column c2, Func<T, T, bool> same)
    {
        var g1 = r1.GetGetter<T>(c1);
        var g2 = r2.GetGetter<T>(c2);
        T v1 = default!, v2 = default!;
        return () =>
        {
            g1(ref v1);
            g2(ref v2);
            return same(v1, v2);
        };
    }

    private static Func<bool> Vectors<T>(DataViewRow r1, DataViewRow r2, DataViewSchema.Column c1, DataViewSchema.Column c2, int size, Func<T, T, bool> same)
    {
        var g1 = r1.GetGetter<VBuffer<T>>(c1);
        var g2 = r2.GetGetter<VBuffer<T>>(c2);
        VBuffer<T> v1 = default, v2 = default;
        return () =>
        {
            g1(ref v1);
            g2(ref v2);
            if (v1.Length != v2.Length || (size > 0 && v1.Length != size)) return false;
            using var e1 = v1.DenseValues().GetEnumerator();
            using var e2 = v2.DenseValues().GetEnumerator();
            while (e1.MoveNext() && e2.MoveNext())
                if (!same(e1.Current, e2.Current)) return false;
            return true;
        };
    }

    /// <summary>
    /// The cursor-set rules (docs/code/DataViewRowCursor.md): <paramref name="n"/> is a hint and at least one cursor comes back;
    /// all cursors have the view's schema and the requested columns active; along each cursor <c>Batch</c> never decreases;
    /// no <c>Batch</c> value occurs in two cursors; and a stable sort of all the set's rows by <c>Batch</c> gives exactly the
    /// rows (values of the requested cacheable columns, and ids) of one cursor opened with an identically seeded generator —
    /// which is what ML.NET's consolidation reconstructs.
    /// </summary>
    /// <param name="view">The view.</param>
    /// <param name="columns">The columns to request.</param>
    /// <param name="n">The number of cursors to ask for.</param>
    /// <param name="seed">Null for the view's own order, else the seed of the generator given to both cursorings.</param>
    /// <returns>The number of cursors the view returned.</returns>
    public static int CheckCursorSet(IDataView view, IReadOnlyList<DataViewSchema.Column> columns, int n, int? seed)
    {
        var compared = columns.Where(c => c.Type is PrimitiveDataViewType or VectorDataViewType).ToList();
        var expected = new List<(DataViewRowId Id, object?[] Values)>();
        using (var single = view.GetRowCursor(columns, seed is null ? null : new Random(seed.Value)))
            while (single.MoveNext()) expected.Add(ReadRow(single, compared));

        var set = view.GetRowCursorSet(columns, n, seed is null ? null : new Random(seed.Value));
        var rows = new List<(long Batch, int Cursor, int Order, DataViewRowId Id, object?[] Values)>();
        try
        {
            Assert.NotEmpty(set);
            var batchOwner = new Dictionary<long, int>();
            for (int k = 0; k < set.Length; k++)
            {
                var cursor = set[k];
                Assert.Same(view.Schema, cursor.Schema);
                foreach (var c in columns) Assert.True(cursor.IsColumnActive(c), $"cursor {k} of {set.Length}: column '{c.Name}' is not active");
                long previous = long.MinValue;
                int order = 0;
                while (cursor.MoveNext())
                {
                    long batch = cursor.Batch;
                    Assert.True(batch >= previous, $"cursor {k} of {set.Length}: Batch went down from {previous} to {batch} at position {cursor.Position}");
                    if (batchOwner.TryGetValue(batch, out int owner))
                        Assert.True(owner == k, $"Batch {batch} occurs in cursors {owner} and {k} of one set; ML.NET's consolidation needs them distinct");
                    batchOwner[batch] = k;
                    previous = batch;
                    var (id, values) = ReadRow(cursor, compared);
                    rows.Add((batch, k, order++, id, values));
                }
                Assert.False(cursor.MoveNext());
            }
        }
        finally
        {
            foreach (var c in set) c.Dispose();
        }

        // Stable by batch: within one batch (one cursor) the cursor's own order.
        var consolidated = rows.OrderBy(r => r.Batch).ThenBy(r => r.Order).ToList();
        Assert.True(expected.Count == consolidated.Count, $"{set.Length} cursors hold {consolidated.Count} rows, one cursor {expected.Count}");
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Id.Equals(consolidated[i].Id),
                $"row {i} of the consolidated set (cursor {consolidated[i].Cursor} of {set.Length}, Batch {consolidated[i].Batch}) is row id {consolidated[i].Id}; one cursor has {expected[i].Id} there");
            for (int c = 0; c < compared.Count; c++)
                Assert.True(Equals(expected[i].Values[c], consolidated[i].Values[c]) || SequenceEquals(expected[i].Values[c], consolidated[i].Values[c]),
                    $"row {i}, column '{compared[c].Name}': the consolidated set differs from one cursor");
        }
        return set.Length;
    }

    private static (DataViewRowId Id, object?[] Values) ReadRow(DataViewRowCursor cursor, IReadOnlyList<DataViewSchema.Column> columns)
    {
        DataViewRowId id = default;
        cursor.GetIdGetter()(ref id);
        var values = new object?[columns.Count];
        var row = MtLoraTransformerTests.ReadRow(cursor, columns);
        for (int i = 0; i < columns.Count; i++) values[i] = row[columns[i].Name];
        return (id, values);
    }

    private static bool SequenceEquals(object? a, object? b) =>
        a is Array x && b is Array y && x.Length == y.Length && x.Cast<object>().SequenceEqual(y.Cast<object>());
}
