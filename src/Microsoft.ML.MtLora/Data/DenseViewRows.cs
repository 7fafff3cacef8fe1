using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Data;

/// <summary>What the dataset views (<see cref="Pascal.PascalContextDataView"/>, <see cref="Nyud.NyudDataView"/>) share: the
/// active-column check, the row order of a cursor and the getters' buffer filling and type check.</summary>
internal static class DenseViewRows
{
    /// <summary>The active flags of a cursor over <paramref name="schema"/>, each requested column checked to belong to it.</summary>
    public static bool[] ActiveColumns(DataViewSchema schema, IEnumerable<DataViewSchema.Column> columnsNeeded)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var active = new bool[schema.Count];
        foreach (var c in columnsNeeded)
        {
            if (c.Index < 0 || c.Index >= schema.Count || schema[c.Index].Name != c.Name)
                throw new ArgumentException($"Column '{c.Name}' does not belong to this view's schema.", nameof(columnsNeeded));
            active[c.Index] = true;
        }
        return active;
    }

    /// <summary>The row order: file order, or a Fisher–Yates permutation drawn from <paramref name="rand"/>.</summary>
    public static int[] Order(int count, Random? rand)
    {
        var order = new int[count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (rand is not null)
        {
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = rand.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }
        return order;
    }

    /// <summary>The ids of a split list (one per line, trimmed, blank lines skipped) with their 1-based line numbers; an id
    /// that is not a plain file name fails with an error naming the list and the line.</summary>
    public static List<(string Id, int Line)> ReadIdList(string list)
    {
        var ids = new List<(string Id, int Line)>();
        var lines = File.ReadAllLines(list);
        for (int i = 0; i < lines.Length; i++)
        {
            string id = lines[i].Trim();
            if (id.Length == 0) continue;
            if (id.IndexOfAny(['/', '\\']) >= 0 || id is "." or "..")
                throw new InvalidDataException($"'{list}' line {i + 1}: id '{id}' is not a file name.");
            ids.Add((id, i + 1));
        }
        return ids;
    }

    /// <summary>Copies <paramref name="data"/> into <paramref name="value"/>, reusing its buffer when large enough.</summary>
    public static void Fill<T>(ref VBuffer<T> value, T[] data)
    {
        var editor = VBufferEditor.Create(ref value, data.Length);
        data.AsSpan().CopyTo(editor.Values);
        value = editor.Commit();
    }

    /// <summary>Checks that a getter may be made for <paramref name="column"/>: it is in the schema and the cursor reads it.</summary>
    public static void CheckGetter(bool[] active, DataViewSchema.Column column)
    {
        if (column.Index < 0 || column.Index >= active.Length)
            throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view's schema.");
        if (!active[column.Index])
            throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created; pass it in columnsNeeded.");
    }

    /// <summary>The getter as the type the caller asked for, or an error naming the column and both types.</summary>
    public static ValueGetter<TValue> Typed<TValue>(Delegate getter, DataViewSchema.Column column) =>
        getter as ValueGetter<TValue>
        ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; it cannot be read as {typeof(TValue).Name}.");
}
