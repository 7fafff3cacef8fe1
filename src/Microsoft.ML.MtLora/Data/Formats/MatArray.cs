namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// One MATLAB array read from or written to a MAT v5 file: numeric (<see cref="MatNumericArray"/>), character
/// (<see cref="MatCharArray"/>), struct (<see cref="MatStructArray"/>) or cell (<see cref="MatCellArray"/>).
/// </summary>
/// <remarks>MATLAB stores every array column-major: element (r, c) of an R×C array has linear index <c>r + c·R</c>.</remarks>
public abstract class MatArray
{
    private protected MatArray(string name, IReadOnlyList<int> dimensions)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dimensions);
        if (dimensions.Count < 2)
            throw new ArgumentException($"A MATLAB array has at least 2 dimensions; got {dimensions.Count}.", nameof(dimensions));
        long count = 1;
        foreach (var d in dimensions)
        {
            if (d < 0) throw new ArgumentException($"Dimension {d} is negative.", nameof(dimensions));
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException($"The dimensions [{string.Join("x", dimensions)}] hold too many elements.", nameof(dimensions));
        }
        Name = name;
        Dimensions = dimensions.ToArray();
        Count = (int)count;
    }

    /// <summary>The variable name for a top-level variable; empty for arrays nested in structs and cells.</summary>
    public string Name { get; }

    /// <summary>The MATLAB dimensions (at least 2, e.g. <c>[rows, cols]</c>); the data is stored column-major.</summary>
    public IReadOnlyList<int> Dimensions { get; }

    /// <summary>The number of elements: the product of <see cref="Dimensions"/> (0 for an empty array).</summary>
    public int Count { get; }

    /// <summary>Whether the array is 2-D with shape <paramref name="rows"/> × <paramref name="cols"/>.</summary>
    internal bool Is2D(out int rows, out int cols)
    {
        rows = Dimensions[0];
        cols = Dimensions[1];
        for (int i = 2; i < Dimensions.Count; i++)
            if (Dimensions[i] != 1) return false;
        return true;
    }

    /// <summary>The dimensions as MATLAB prints them, e.g. <c>1x3</c>.</summary>
    internal string ShapeText => string.Join("x", Dimensions);

    internal static int[] Dims2(int rows, int cols, string paramName)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(paramName, $"The shape {rows}x{cols} must not be negative.");
        return [rows, cols];
    }
}

/// <summary>The numeric classes of MATLAB arrays that this library reads and writes.</summary>
public enum MatClass
{
    /// <summary>IEEE double (<c>double</c>, MATLAB's default).</summary>
    Double,
    /// <summary>IEEE single (<c>float</c>).</summary>
    Single,
    /// <summary>Signed 8-bit integer (<c>sbyte</c>).</summary>
    Int8,
    /// <summary>Unsigned 8-bit integer (<c>byte</c>); also the storage of MATLAB <c>logical</c> arrays.</summary>
    UInt8,
    /// <summary>Signed 16-bit integer (<c>short</c>).</summary>
    Int16,
    /// <summary>Unsigned 16-bit integer (<c>ushort</c>).</summary>
    UInt16,
    /// <summary>Signed 32-bit integer (<c>int</c>).</summary>
    Int32,
    /// <summary>Unsigned 32-bit integer (<c>uint</c>).</summary>
    UInt32,
    /// <summary>Signed 64-bit integer (<c>long</c>).</summary>
    Int64,
    /// <summary>Unsigned 64-bit integer (<c>ulong</c>).</summary>
    UInt64,
}

/// <summary>A real numeric (or logical) MATLAB array.</summary>
public sealed class MatNumericArray : MatArray
{
    /// <summary>Creates a numeric array from column-major data.</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="dimensions">The MATLAB dimensions, at least 2.</param>
    /// <param name="data">Column-major data: a <c>double[]</c>, <c>float[]</c>, <c>sbyte[]</c>, <c>byte[]</c>, <c>short[]</c>,
    /// <c>ushort[]</c>, <c>int[]</c>, <c>uint[]</c>, <c>long[]</c> or <c>ulong[]</c> with one value per element.</param>
    /// <param name="isLogical">Marks a MATLAB <c>logical</c> array (the data must then be a <c>byte[]</c> of 0/1).</param>
    public MatNumericArray(string name, IReadOnlyList<int> dimensions, Array data, bool isLogical = false)
        : base(name, dimensions)
    {
        ArgumentNullException.ThrowIfNull(data);
        Class = ClassOf(data.GetType().GetElementType()!)
            ?? throw new ArgumentException($"Unsupported element type {data.GetType().GetElementType()}; expected one of the 10 MATLAB numeric types.", nameof(data));
        if (data.Length != Count)
            throw new ArgumentException($"The data holds {data.Length} values; dimensions [{ShapeText}] need {Count}.", nameof(data));
        if (isLogical && Class != MatClass.UInt8)
            throw new ArgumentException($"A logical array is stored as bytes; got {Class}.", nameof(isLogical));
        Data = data;
        IsLogical = isLogical;
    }

    /// <summary>The numeric class (which typed array <see cref="Data"/> is).</summary>
    public MatClass Class { get; }

    /// <summary>Whether MATLAB marks the array as <c>logical</c> (stored as 0/1 bytes).</summary>
    public bool IsLogical { get; }

    /// <summary>The values as stored, column-major, in the typed array of <see cref="Class"/> (e.g. <c>ushort[]</c> for <see cref="MatClass.UInt16"/>).</summary>
    public Array Data { get; }

    /// <summary>The element at a column-major linear index, converted to <see cref="double"/>.</summary>
    /// <param name="linearIndex">0 ≤ index &lt; <see cref="MatArray.Count"/>.</param>
    public double GetDouble(int linearIndex)
    {
        if ((uint)linearIndex >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(linearIndex), linearIndex, $"The array '{Name}' has {Count} elements.");
        return ValueAsDouble(Data, Class, linearIndex);
    }

    // Note: the CLR lets byte[] pass as sbyte[] (and ushort[]/short[], uint[]/int[], ulong[]/long[]) in type tests,
    // so typed arrays are told apart by their exact class, never by pattern matching.
    internal static double ValueAsDouble(Array data, MatClass cls, int i) => cls switch
    {
        MatClass.Double => ((double[])data)[i],
        MatClass.Single => ((float[])data)[i],
        MatClass.Int8 => ((sbyte[])data)[i],
        MatClass.UInt8 => ((byte[])data)[i],
        MatClass.Int16 => ((short[])data)[i],
        MatClass.UInt16 => ((ushort[])data)[i],
        MatClass.Int32 => ((int[])data)[i],
        MatClass.UInt32 => ((uint[])data)[i],
        MatClass.Int64 => ((long[])data)[i],
        _ => ((ulong[])data)[i],
    };

    internal static long ValueAsInt64(Array data, MatClass cls, int i) => cls switch
    {
        MatClass.Double => (long)((double[])data)[i],
        MatClass.Single => (long)((float[])data)[i],
        MatClass.Int8 => ((sbyte[])data)[i],
        MatClass.UInt8 => ((byte[])data)[i],
        MatClass.Int16 => ((short[])data)[i],
        MatClass.UInt16 => ((ushort[])data)[i],
        MatClass.Int32 => ((int[])data)[i],
        MatClass.UInt32 => ((uint[])data)[i],
        MatClass.Int64 => ((long[])data)[i],
        _ => unchecked((long)((ulong[])data)[i]),
    };

    internal static MatClass ClassOfData(Array data) =>
        ClassOf(data.GetType().GetElementType()!) ?? throw new ArgumentException($"Unsupported data type {data.GetType()}.");

    /// <summary>
    /// Converts a 2-D array to row-major 32-bit integers (element (r, c) at <c>r·cols + c</c>), as a label map is used.
    /// </summary>
    /// <param name="rows">The number of rows (MATLAB's first dimension, the image height for a label map).</param>
    /// <param name="cols">The number of columns (the image width).</param>
    /// <exception cref="InvalidDataException">The array is not 2-D, or holds a value that is not an integer in the <see cref="int"/> range.</exception>
    public int[] ToRowMajorInt32(out int rows, out int cols)
    {
        if (!Is2D(out rows, out cols))
            throw new InvalidDataException($"MAT array '{Name}' has dimensions [{ShapeText}]; expected a 2-D array.");
        int r = rows, c = cols;
        var result = new int[Count];
        switch (Class)
        {
            case MatClass.UInt8: Transpose((byte[])Data, result, r, c, v => v); break;
            case MatClass.UInt16: Transpose((ushort[])Data, result, r, c, v => v); break;
            case MatClass.Int16: Transpose((short[])Data, result, r, c, v => v); break;
            case MatClass.Int8: Transpose((sbyte[])Data, result, r, c, v => v); break;
            case MatClass.Int32: Transpose((int[])Data, result, r, c, v => v); break;
            default:
                for (int j = 0; j < c; j++)
                    for (int i = 0; i < r; i++)
                    {
                        double v = GetDouble(i + j * r);
                        if (v != Math.Floor(v) || v < int.MinValue || v > int.MaxValue)
                            throw new InvalidDataException($"MAT array '{Name}' holds {v} at ({i}, {j}); expected integers in the Int32 range.");
                        result[i * c + j] = (int)v;
                    }
                break;
        }
        return result;
    }

    private static void Transpose<T>(T[] columnMajor, int[] rowMajor, int rows, int cols, Func<T, int> convert)
    {
        for (int j = 0; j < cols; j++)
        {
            int src = j * rows;
            for (int i = 0; i < rows; i++) rowMajor[i * cols + j] = convert(columnMajor[src + i]);
        }
    }

    /// <summary>Creates a 2-D array from row-major data (converted to MATLAB's column-major order).</summary>
    /// <typeparam name="T">One of the 10 MATLAB numeric types, or <see cref="bool"/> for a logical array.</typeparam>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="rows">Number of rows (e.g. image height).</param>
    /// <param name="cols">Number of columns (e.g. image width).</param>
    /// <param name="rowMajor">The values, element (r, c) at <c>r·cols + c</c>.</param>
    public static MatNumericArray FromRowMajor<T>(string name, int rows, int cols, T[] rowMajor) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(rowMajor);
        var dims = Dims2(rows, cols, nameof(rows));
        if ((long)rows * cols != rowMajor.Length)
            throw new ArgumentException($"The data holds {rowMajor.Length} values; a {rows}x{cols} array needs {(long)rows * cols}.", nameof(rowMajor));
        if (typeof(T) == typeof(bool))
        {
            var flags = (bool[])(object)rowMajor;
            var bytes = new byte[flags.Length];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) bytes[i + j * rows] = flags[i * cols + j] ? (byte)1 : (byte)0;
            return new MatNumericArray(name, dims, bytes, isLogical: true);
        }
        if (ClassOf(typeof(T)) is null)
            throw new ArgumentException($"Unsupported element type {typeof(T)}; expected a MATLAB numeric type or bool.", nameof(rowMajor));
        var data = new T[rowMajor.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) data[i + j * rows] = rowMajor[i * cols + j];
        return new MatNumericArray(name, dims, data);
    }

    /// <summary>A 1×1 double array.</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="value">The value.</param>
    public static MatNumericArray Scalar(string name, double value) => new(name, [1, 1], new[] { value });

    /// <summary>The 0×0 double array, MATLAB's <c>[]</c>.</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    public static MatNumericArray Empty(string name) => new(name, [0, 0], Array.Empty<double>());

    internal static MatClass? ClassOf(Type elementType) =>
        elementType == typeof(double) ? MatClass.Double :
        elementType == typeof(float) ? MatClass.Single :
        elementType == typeof(sbyte) ? MatClass.Int8 :
        elementType == typeof(byte) ? MatClass.UInt8 :
        elementType == typeof(short) ? MatClass.Int16 :
        elementType == typeof(ushort) ? MatClass.UInt16 :
        elementType == typeof(int) ? MatClass.Int32 :
        elementType == typeof(uint) ? MatClass.UInt32 :
        elementType == typeof(long) ? MatClass.Int64 :
        elementType == typeof(ulong) ? MatClass.UInt64 :
        null;
}

/// <summary>A MATLAB character array (a string is a 1×N character array).</summary>
public sealed class MatCharArray : MatArray
{
    private readonly char[] _columnMajor;

    /// <summary>Creates a 1×N character array (0×0 for the empty string, as MATLAB stores <c>''</c>).</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="value">The text.</param>
    public MatCharArray(string name, string value)
        : base(name, value is null ? throw new ArgumentNullException(nameof(value)) : value.Length == 0 ? [0, 0] : [1, value.Length])
    {
        _columnMajor = value.ToCharArray();
        Value = value;
    }

    internal MatCharArray(string name, IReadOnlyList<int> dimensions, char[] columnMajor) : base(name, dimensions)
    {
        _columnMajor = columnMajor;
        if (Is2D(out int rows, out int cols) && rows > 1)
        {
            // A multi-row char array is a column of equal-length strings: return the rows, one per line.
            var lines = new string[rows];
            var line = new char[cols];
            for (int r = 0; r < rows; r++)
            {
                for (int c = 0; c < cols; c++) line[c] = columnMajor[r + c * rows];
                lines[r] = new string(line);
            }
            Value = string.Join('\n', lines);
        }
        else
        {
            Value = new string(columnMajor);
        }
    }

    /// <summary>The text; for a multi-row character array, its rows joined with <c>'\n'</c>.</summary>
    public string Value { get; }

    internal ReadOnlySpan<char> ColumnMajor => _columnMajor;
}

/// <summary>A MATLAB struct array: <see cref="MatArray.Count"/> elements, each with one value per field.</summary>
public sealed class MatStructArray : MatArray
{
    private readonly MatArray[][] _values;
    private readonly string[] _fieldNames;

    /// <summary>Creates a 2-D struct array.</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="rows">Number of rows (1 for the usual 1×N struct array).</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="fieldNames">The field names, in file order (MATLAB identifiers of at most 63 characters).</param>
    /// <param name="valuesPerElement">One entry per element in column-major order; each holds one value per field, in field order.</param>
    public MatStructArray(string name, int rows, int cols, IReadOnlyList<string> fieldNames, MatArray[][] valuesPerElement)
        : base(name, Dims2(rows, cols, nameof(rows)))
    {
        ArgumentNullException.ThrowIfNull(fieldNames);
        ArgumentNullException.ThrowIfNull(valuesPerElement);
        foreach (var field in fieldNames) MatNames.CheckIdentifier(field, "field name");
        if (fieldNames.Distinct(StringComparer.Ordinal).Count() != fieldNames.Count)
            throw new ArgumentException($"The field names [{string.Join(", ", fieldNames)}] repeat a name.", nameof(fieldNames));
        if (valuesPerElement.Length != Count)
            throw new ArgumentException($"{valuesPerElement.Length} elements given; a {rows}x{cols} struct array has {Count}.", nameof(valuesPerElement));
        for (int i = 0; i < valuesPerElement.Length; i++)
        {
            if (valuesPerElement[i] is null || valuesPerElement[i].Length != fieldNames.Count)
                throw new ArgumentException($"Element {i} has {valuesPerElement[i]?.Length ?? 0} values; expected one per field ({fieldNames.Count}).", nameof(valuesPerElement));
            foreach (var v in valuesPerElement[i])
                if (v is null) throw new ArgumentException($"Element {i} has a null field value.", nameof(valuesPerElement));
        }
        _fieldNames = fieldNames.ToArray();
        _values = valuesPerElement.Select(v => v.ToArray()).ToArray();
    }

    internal MatStructArray(string name, IReadOnlyList<int> dimensions, string[] fieldNames, MatArray[][] values)
        : base(name, dimensions)
    {
        _fieldNames = fieldNames;
        _values = values;
    }

    /// <summary>The field names in file order (the reference indexes fields by this position).</summary>
    public IReadOnlyList<string> FieldNames => _fieldNames;

    /// <summary>The value of a field of one element.</summary>
    /// <param name="index">The element's column-major linear index.</param>
    /// <param name="field">The field name.</param>
    /// <exception cref="KeyNotFoundException">The struct has no such field.</exception>
    public MatArray Get(int index, string field)
    {
        int f = Array.IndexOf(_fieldNames, field);
        if (f < 0)
            throw new KeyNotFoundException($"Struct '{Name}' has no field '{field}'; its fields are [{string.Join(", ", _fieldNames)}].");
        return Get(index, f);
    }

    /// <summary>The value of a field of one element, by field position (as the reference indexes <c>obj[1]</c>, <c>obj[2]</c>…).</summary>
    /// <param name="index">The element's column-major linear index.</param>
    /// <param name="fieldIndex">The field's position in <see cref="FieldNames"/>.</param>
    public MatArray Get(int index, int fieldIndex)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Struct '{Name}' has {Count} elements ([{ShapeText}]).");
        if ((uint)fieldIndex >= (uint)_fieldNames.Length)
            throw new ArgumentOutOfRangeException(nameof(fieldIndex), fieldIndex, $"Struct '{Name}' has {_fieldNames.Length} fields.");
        return _values[index][fieldIndex];
    }
}

/// <summary>A MATLAB cell array: each element is any array.</summary>
public sealed class MatCellArray : MatArray
{
    private readonly MatArray[] _cells;

    /// <summary>Creates a 2-D cell array.</summary>
    /// <param name="name">The variable name (empty for nested arrays).</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="cols">Number of columns.</param>
    /// <param name="cells">The cells in column-major order.</param>
    public MatCellArray(string name, int rows, int cols, IReadOnlyList<MatArray> cells)
        : base(name, Dims2(rows, cols, nameof(rows)))
    {
        ArgumentNullException.ThrowIfNull(cells);
        if (cells.Count != Count)
            throw new ArgumentException($"{cells.Count} cells given; a {rows}x{cols} cell array has {Count}.", nameof(cells));
        if (cells.Any(c => c is null)) throw new ArgumentException("A cell is null.", nameof(cells));
        _cells = cells.ToArray();
    }

    internal MatCellArray(string name, IReadOnlyList<int> dimensions, MatArray[] cells) : base(name, dimensions) => _cells = cells;

    /// <summary>The cell at a column-major linear index.</summary>
    /// <param name="index">0 ≤ index &lt; <see cref="MatArray.Count"/>.</param>
    public MatArray this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(index), index, $"Cell array '{Name}' has {Count} cells ([{ShapeText}]).");
            return _cells[index];
        }
    }
}

internal static class MatNames
{
    /// <summary>MATLAB's rule for variable and field names: a letter, then letters, digits or underscores, at most 63 characters.</summary>
    public static void CheckIdentifier(string? name, string what)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 63 || !char.IsAsciiLetter(name[0]) ||
            !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            throw new ArgumentException($"'{name}' is not a valid MATLAB {what}: expected a letter, then letters, digits or '_', at most 63 characters.");
    }
}
