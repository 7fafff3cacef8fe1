using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>MAT v5 data element types (the <c>mi*</c> constants of the MAT-file format).</summary>
internal static class MiType
{
    public const uint Int8 = 1, UInt8 = 2, Int16 = 3, UInt16 = 4, Int32 = 5, UInt32 = 6, Single = 7, Double = 9,
        Int64 = 12, UInt64 = 13, Matrix = 14, Compressed = 15, Utf8 = 16, Utf16 = 17, Utf32 = 18;

    public static string Describe(uint type) => type switch
    {
        Int8 => "miINT8", UInt8 => "miUINT8", Int16 => "miINT16", UInt16 => "miUINT16", Int32 => "miINT32",
        UInt32 => "miUINT32", Single => "miSINGLE", Double => "miDOUBLE", Int64 => "miINT64", UInt64 => "miUINT64",
        Matrix => "miMATRIX", Compressed => "miCOMPRESSED", Utf8 => "miUTF8", Utf16 => "miUTF16", Utf32 => "miUTF32",
        _ => $"unknown type {type}",
    };

    /// <summary>Bytes per value of a numeric data type, or 0 for a type that is not numeric.</summary>
    public static int Size(uint type) => type switch
    {
        Int8 or UInt8 => 1,
        Int16 or UInt16 => 2,
        Int32 or UInt32 or Single => 4,
        Double or Int64 or UInt64 => 8,
        _ => 0,
    };
}

/// <summary>MATLAB array classes (the <c>mx*_CLASS</c> constants).</summary>
internal static class MxClass
{
    public const int Cell = 1, Struct = 2, Object = 3, Char = 4, Sparse = 5, Double = 6, Single = 7, Int8 = 8, UInt8 = 9,
        Int16 = 10, UInt16 = 11, Int32 = 12, UInt32 = 13, Int64 = 14, UInt64 = 15, Function = 16, Opaque = 17;

    public const uint FlagComplex = 0x0800, FlagGlobal = 0x0400, FlagLogical = 0x0200;

    public static MatClass? ToMatClass(int mx) => mx switch
    {
        Double => MatClass.Double, Single => MatClass.Single, Int8 => MatClass.Int8, UInt8 => MatClass.UInt8,
        Int16 => MatClass.Int16, UInt16 => MatClass.UInt16, Int32 => MatClass.Int32, UInt32 => MatClass.UInt32,
        Int64 => MatClass.Int64, UInt64 => MatClass.UInt64, _ => null,
    };

    public static int FromMatClass(MatClass c) => c switch
    {
        MatClass.Double => Double, MatClass.Single => Single, MatClass.Int8 => Int8, MatClass.UInt8 => UInt8,
        MatClass.Int16 => Int16, MatClass.UInt16 => UInt16, MatClass.Int32 => Int32, MatClass.UInt32 => UInt32,
        MatClass.Int64 => Int64, _ => UInt64,
    };

    public static uint NaturalMiType(MatClass c) => c switch
    {
        MatClass.Double => MiType.Double, MatClass.Single => MiType.Single, MatClass.Int8 => MiType.Int8,
        MatClass.UInt8 => MiType.UInt8, MatClass.Int16 => MiType.Int16, MatClass.UInt16 => MiType.UInt16,
        MatClass.Int32 => MiType.Int32, MatClass.UInt32 => MiType.UInt32, MatClass.Int64 => MiType.Int64,
        _ => MiType.UInt64,
    };
}

/// <summary>Parses MAT v5 bytes. Every read is bounds-checked, so bad data gives an <see cref="InvalidDataException"/>
/// naming the file and the element, never an index or null-reference error.</summary>
internal sealed class MatFileReader
{
    private const int HeaderBytes = 128;
    private const int MaxFieldlessStructElements = 1 << 20;
    private readonly string _file;
    private readonly bool _bigEndian;

    // The variable and the element last entered, to say where damaged data stops.
    private string? _lastRoot;
    private string? _lastPath;
    private bool _locating;

    private MatFileReader(string file, bool bigEndian)
    {
        _file = file;
        _bigEndian = bigEndian;
    }

    /// <summary>A data element: its type, its data range in the buffer, and where the next element starts.</summary>
    private readonly record struct Tag(uint Type, int DataStart, int Length, int Next);

    public static IReadOnlyDictionary<string, MatArray> Read(byte[] data, string file)
    {
        if (data.Length < HeaderBytes)
        {
            if (LooksLikeV4(data))
                throw new NotSupportedException($"MAT file '{file}' looks like a Level 4 MAT-file; only Level 5 files (save -v6 or -v7) are supported.");
            throw new InvalidDataException($"MAT file '{file}': {data.Length} bytes, too short for the 128-byte MAT v5 header.");
        }

        bool bigEndian;
        if (data[126] == (byte)'I' && data[127] == (byte)'M') bigEndian = false;
        else if (data[126] == (byte)'M' && data[127] == (byte)'I') bigEndian = true;
        else if (LooksLikeV4(data))
            throw new NotSupportedException($"MAT file '{file}' looks like a Level 4 MAT-file; only Level 5 files (save -v6 or -v7) are supported.");
        else
            throw new InvalidDataException($"MAT file '{file}': the endian indicator at byte 126 is 0x{data[126]:X2}{data[127]:X2}; expected 'IM' or 'MI' (not a MAT v5 file).");

        var reader = new MatFileReader(file, bigEndian);
        int version = reader.U16(data, 124);
        if (version == 0x0200 || Encoding.ASCII.GetString(data, 0, 10).StartsWith("MATLAB 7.3", StringComparison.Ordinal))
            throw new NotSupportedException($"MAT file '{file}' is a v7.3 (HDF5) MAT-file; re-save it with save -v7 (or scipy.io.savemat) to read it here.");
        if (version != 0x0100)
            throw new InvalidDataException($"MAT file '{file}': header version 0x{version:X4}; expected 0x0100 (MAT v5).");

        var variables = new Dictionary<string, MatArray>(StringComparer.Ordinal);
        int pos = HeaderBytes;
        int index = 0;
        while (pos < data.Length)
        {
            string where = $"variable #{index + 1} at byte {pos}";
            var tag = reader.ReadTopLevelTag(data, pos, where);
            MatArray array;
            if (tag.Type == MiType.Compressed)
            {
                var inner = reader.Inflate(data, tag, where);
                var innerTag = reader.ReadTopLevelTag(inner, 0, where);
                if (innerTag.Type != MiType.Matrix)
                    throw reader.Bad(where, $"the compressed element holds a {MiType.Describe(innerTag.Type)} element; expected miMATRIX.");
                array = reader.ReadMatrix(inner, innerTag, null, where);
            }
            else if (tag.Type == MiType.Matrix)
            {
                array = reader.ReadMatrix(data, tag, null, where);
            }
            else
            {
                throw reader.Bad(where, $"top-level element of type {MiType.Describe(tag.Type)}; expected miMATRIX (14) or miCOMPRESSED (15).");
            }
            // MATLAB stores subsystem data (function workspaces, objects) as an unnamed variable; scipy names it so.
            variables[array.Name.Length == 0 ? "__function_workspace__" : array.Name] = array;
            pos = tag.Next;
            index++;
        }
        return variables;
    }

    private static bool LooksLikeV4(byte[] data) =>
        data.Length >= 4 && (data[0] == 0 || data[1] == 0 || data[2] == 0 || data[3] == 0);

    private InvalidDataException Bad(string where, string message) => new($"MAT file '{_file}', {where}: {message}");

    private NotSupportedException Unsupported(string where, string message) => new($"MAT file '{_file}', {where}: {message}");

    private uint U32(byte[] buf, int pos) =>
        _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(pos, 4)) : BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(pos, 4));

    private int U16(byte[] buf, int pos) =>
        _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(buf.AsSpan(pos, 2)) : BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(pos, 2));

    /// <summary>
    /// Reads a top-level tag. When its data runs past the end of the file, parses what is there first, so the error
    /// names the variable and the element where the data stops.
    /// </summary>
    private Tag ReadTopLevelTag(byte[] data, int pos, string where)
    {
        if (data.Length - pos >= 8 && U32(data, pos) is MiType.Matrix or MiType.Compressed && (U32(data, pos) >> 16) == 0)
        {
            uint type = U32(data, pos);
            uint bytes = U32(data, pos + 4);
            int available = data.Length - pos - 8;
            if (bytes > (uint)available)
            {
                string detail = $"truncated: the variable's element declares {bytes} bytes, only {available} remain";
                var clipped = new Tag(type, pos + 8, available, data.Length);
                _lastPath = null;
                _locating = true;
                try
                {
                    if (type == MiType.Matrix) ReadMatrix(data, clipped, null, where);
                    else
                    {
                        var inner = InflatePartial(data, clipped, out _);
                        var innerTag = new Tag(MiType.Matrix, 8, Math.Max(0, inner.Length - 8), inner.Length);
                        if (inner.Length >= 8) ReadMatrix(inner, innerTag, null, where);
                    }
                }
                catch (InvalidDataException) { }
                catch (NotSupportedException) { }
                finally { _locating = false; }
                throw Bad(_lastPath is null ? where : $"variable '{_lastRoot}' (data ends inside element {_lastPath})", detail + ".");
            }
        }
        return ReadTag(data, pos, data.Length, where, topLevel: true);
    }

    private Tag ReadTag(byte[] buf, int pos, int end, string where, bool topLevel = false)
    {
        if (end - pos < 8)
            throw Bad(where, $"truncated: a data element tag at byte {pos} needs 8 bytes, {Math.Max(0, end - pos)} remain.");
        uint first = U32(buf, pos);
        if ((first >> 16) != 0)
        {
            // Small data element format: 2 bytes of length, 2 of type and up to 4 bytes of data in one 8-byte word.
            uint length = first >> 16;
            if (length > 4)
                throw Bad(where, $"corrupt: a small data element at byte {pos} declares {length} bytes; at most 4 fit.");
            return new Tag(first & 0xFFFF, pos + 4, (int)length, pos + 8);
        }
        uint bytes = U32(buf, pos + 4);
        if (bytes > (uint)(end - pos - 8))
        {
            // While locating where damaged data stops, follow truncated matrices inwards instead of stopping here.
            if (_locating && first == MiType.Matrix) bytes = (uint)(end - pos - 8);
            else throw Bad(where, $"truncated: a {MiType.Describe(first)} element at byte {pos} declares {bytes} bytes, only {end - pos - 8} remain.");
        }
        int dataStart = pos + 8;
        long next = dataStart + (long)bytes;
        // Elements are padded to 8 bytes, except compressed ones (MATLAB and scipy write them back to back).
        if (first != MiType.Compressed) next = (next + 7) & ~7L;
        if (next > end)
        {
            if (!topLevel && next - end >= 8) throw Bad(where, $"corrupt: the element at byte {pos} runs past its parent.");
            next = end;
        }
        return new Tag(first, dataStart, (int)bytes, (int)next);
    }

    private byte[] Inflate(byte[] buf, Tag tag, string where)
    {
        var output = InflatePartial(buf, tag, out var error);
        if (error is null) return output;
        // Parse what did decompress, to name the variable and the element where the damage starts.
        _lastPath = null;
        _locating = true;
        try
        {
            if (output.Length >= 8) ReadMatrix(output, new Tag(MiType.Matrix, 8, output.Length - 8, output.Length), null, where);
        }
        catch (InvalidDataException) { }
        catch (NotSupportedException) { }
        finally { _locating = false; }
        throw Bad(_lastPath is null ? where : $"variable '{_lastRoot}' (readable up to element {_lastPath})", $"corrupt compressed data ({error}).");
    }

    private byte[] InflatePartial(byte[] buf, Tag tag, out string? error)
    {
        error = null;
        byte[] output = [];
        int filled = 0;
        using var rest = new MemoryStream();
        try
        {
            using var input = new MemoryStream(buf, tag.DataStart, tag.Length, writable: false);
            using var z = new ZLibStream(input, CompressionMode.Decompress);
            // The stream holds one miMATRIX element whose tag gives the inflated size, so the output is allocated once at
            // that size (growing a MemoryStream instead re-allocates and copies large arrays, which dominated reading
            // Pascal-Part files of many full-size masks). A size beyond what deflate can expand to (1032:1) is not trusted.
            var head = new byte[8];
            filled = z.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            output = head;
            if (filled == head.Length)
            {
                long declared = 8 + (long)U32(head, 4);
                if (declared <= Math.Min(Array.MaxLength, 1032L * tag.Length + 1024))
                {
                    output = new byte[declared];
                    head.CopyTo(output, 0);
                    filled += z.ReadAtLeast(output.AsSpan(8), output.Length - 8, throwOnEndOfStream: false);
                }
            }
            if (filled == output.Length)
            {
                var chunk = new byte[1 << 16];
                int n;
                while ((n = z.Read(chunk)) > 0) rest.Write(chunk, 0, n);
            }
        }
        catch (InvalidDataException e) { error = e.Message; }
        catch (IOException e) { error = e.Message; }
        if (rest.Length == 0) return filled == output.Length ? output : output[..filled];
        var all = new byte[filled + rest.Length];
        output.AsSpan(0, filled).CopyTo(all);
        rest.ToArray().CopyTo(all, filled);
        return all;
    }

    /// <summary>Reads the sub-elements of a <c>miMATRIX</c> element.</summary>
    /// <param name="buf">The buffer holding the element.</param>
    /// <param name="tag">The miMATRIX tag.</param>
    /// <param name="path">The MATLAB path of this array (e.g. <c>anno.objects(2)</c>), or null at top level.</param>
    /// <param name="where">The top-level position, used until the variable's name is known.</param>
    private MatArray ReadMatrix(byte[] buf, Tag tag, string? path, string where)
    {
        // An empty miMATRIX (0 bytes) is how MATLAB stores [] inside structs and cells.
        if (tag.Length == 0) return MatNumericArray.Empty("");

        int end = tag.DataStart + tag.Length;
        string here = path is null ? where : $"element {path}";

        var flagsTag = ReadTag(buf, tag.DataStart, end, here);
        if (flagsTag.Type != MiType.UInt32 || flagsTag.Length != 8)
            throw Bad(here, $"array flags are {MiType.Describe(flagsTag.Type)} of {flagsTag.Length} bytes; expected miUINT32 of 8 bytes.");
        uint flags = U32(buf, flagsTag.DataStart);
        int cls = (int)(flags & 0xFF);

        var dimsTag = ReadTag(buf, flagsTag.Next, end, here);
        if (dimsTag.Type != MiType.Int32 || dimsTag.Length % 4 != 0 || dimsTag.Length == 0)
            throw Bad(here, $"dimensions are {MiType.Describe(dimsTag.Type)} of {dimsTag.Length} bytes; expected miINT32 with one value per dimension.");
        var dims = new int[Math.Max(2, dimsTag.Length / 4)];
        Array.Fill(dims, 1);
        long count = 1;
        for (int i = 0; i < dimsTag.Length / 4; i++)
        {
            int d = (int)U32(buf, dimsTag.DataStart + 4 * i);
            if (d < 0) throw Bad(here, $"dimension {i + 1} is {d}; expected a non-negative size.");
            dims[i] = d;
            count *= d;
            if (count > Array.MaxLength) throw Bad(here, $"dimensions [{string.Join("x", dims)}] hold too many elements.");
        }

        var nameTag = ReadTag(buf, dimsTag.Next, end, here);
        if (nameTag.Type != MiType.Int8 && nameTag.Type != MiType.UInt8)
            throw Bad(here, $"the array name is {MiType.Describe(nameTag.Type)}; expected miINT8.");
        string name = Encoding.Latin1.GetString(buf, nameTag.DataStart, nameTag.Length).TrimEnd('\0');
        if (path is null)
        {
            path = name.Length == 0 ? "(unnamed)" : name;
            here = $"variable '{path}'";
            _lastRoot = path;
        }
        _lastPath = path;
        string shape = string.Join("x", dims);

        if ((flags & MxClass.FlagComplex) != 0 && cls != MxClass.Sparse)
            throw Unsupported(here, $"complex arrays are not supported ([{shape}] of class {cls}).");

        int pos = nameTag.Next;
        switch (cls)
        {
            case MxClass.Cell:
            {
                // Each cell takes at least an 8-byte tag: check before allocating, so corrupt sizes fail fast.
                if (count * 8 > end - pos)
                    throw Bad(here, $"truncated: a [{shape}] cell array needs at least {count * 8} bytes, {end - pos} remain.");
                var cells = new MatArray[(int)count];
                for (int i = 0; i < cells.Length; i++)
                    cells[i] = ReadChild(buf, ref pos, end, $"{path}{{{i + 1}}}");
                return new MatCellArray(name, dims, cells);
            }
            case MxClass.Struct:
            {
                var lenTag = ReadTag(buf, pos, end, here);
                if (lenTag.Type != MiType.Int32 || lenTag.Length != 4)
                    throw Bad(here, $"the field name length is {MiType.Describe(lenTag.Type)} of {lenTag.Length} bytes; expected miINT32 of 4 bytes.");
                int nameLength = (int)U32(buf, lenTag.DataStart);
                var namesTag = ReadTag(buf, lenTag.Next, end, here);
                if (namesTag.Type != MiType.Int8 && namesTag.Type != MiType.UInt8)
                    throw Bad(here, $"the field names are {MiType.Describe(namesTag.Type)}; expected miINT8.");
                if (nameLength <= 0 ? namesTag.Length != 0 : namesTag.Length % nameLength != 0)
                    throw Bad(here, $"the field names take {namesTag.Length} bytes, not a multiple of the field name length {nameLength}.");
                int fieldCount = nameLength <= 0 ? 0 : namesTag.Length / nameLength;
                var fields = new string[fieldCount];
                for (int f = 0; f < fieldCount; f++)
                {
                    var raw = buf.AsSpan(namesTag.DataStart + f * nameLength, nameLength);
                    int zero = raw.IndexOf((byte)0);
                    fields[f] = Encoding.Latin1.GetString(zero < 0 ? raw : raw[..zero]);
                }
                pos = namesTag.Next;
                if (fieldCount > 0 ? count * fieldCount * 8 > end - pos : count > MaxFieldlessStructElements)
                    throw Bad(here, $"truncated: a [{shape}] struct array with {fieldCount} fields does not fit in the {end - pos} remaining bytes.");
                var values = new MatArray[(int)count][];
                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = new MatArray[fieldCount];
                    string element = count == 1 ? path : $"{path}({i + 1})";
                    for (int f = 0; f < fieldCount; f++)
                        values[i][f] = ReadChild(buf, ref pos, end, $"{element}.{fields[f]}");
                }
                return new MatStructArray(name, dims, fields, values);
            }
            case MxClass.Char:
            {
                var dataTag = ReadTag(buf, pos, end, here);
                var chars = DecodeChars(buf, dataTag, here);
                if (chars.Length != count)
                    throw Bad(here, $"the character data holds {chars.Length} characters; dimensions [{shape}] need {count}.");
                return new MatCharArray(name, dims, chars);
            }
            case MxClass.Object:
                throw Unsupported(here, "MATLAB objects (class instances) are not supported.");
            case MxClass.Sparse:
                throw Unsupported(here, $"sparse arrays are not supported ([{shape}]); convert with full() before saving.");
            case MxClass.Function:
                throw Unsupported(here, "function handles are not supported.");
            case MxClass.Opaque:
                throw Unsupported(here, "opaque MATLAB classes (string, table, datetime, ...) are not supported; save char arrays or numeric arrays.");
            default:
            {
                var matClass = MxClass.ToMatClass(cls) ?? throw Bad(here, $"unknown array class {cls}.");
                var dataTag = ReadTag(buf, pos, end, here);
                var data = DecodeNumeric(buf, dataTag, matClass, (int)count, here, shape);
                bool logical = (flags & MxClass.FlagLogical) != 0;
                if (logical && matClass != MatClass.UInt8)
                {
                    // MATLAB always stores logicals as uint8; keep other classes as plain numbers.
                    logical = false;
                }
                return new MatNumericArray(name, dims, data, logical);
            }
        }
    }

    private MatArray ReadChild(byte[] buf, ref int pos, int end, string path)
    {
        string here = $"element {path}";
        _lastPath = path;
        var tag = ReadTag(buf, pos, end, here);
        if (tag.Type != MiType.Matrix)
            throw Bad(here, $"a {MiType.Describe(tag.Type)} element where a miMATRIX was expected.");
        var array = ReadMatrix(buf, tag, path, here);
        pos = tag.Next;
        return array;
    }

    private char[] DecodeChars(byte[] buf, Tag tag, string here)
    {
        var bytes = buf.AsSpan(tag.DataStart, tag.Length);
        switch (tag.Type)
        {
            case MiType.UInt16:
            case MiType.Utf16:
            case MiType.Int16:
                if (bytes.Length % 2 != 0) throw Bad(here, $"UTF-16 character data of odd length {bytes.Length}.");
                var chars = new char[bytes.Length / 2];
                for (int i = 0; i < chars.Length; i++)
                    chars[i] = (char)(_bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(bytes[(2 * i)..]) : BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]));
                return chars;
            case MiType.Utf8:
                return Encoding.UTF8.GetString(bytes).ToCharArray();
            case MiType.UInt8:
            case MiType.Int8:
                return Encoding.Latin1.GetString(bytes).ToCharArray();
            case MiType.Utf32:
                if (bytes.Length % 4 != 0) throw Bad(here, $"UTF-32 character data of length {bytes.Length}, not a multiple of 4.");
                return (_bigEndian ? new UTF32Encoding(true, false) : Encoding.UTF32).GetString(bytes).ToCharArray();
            default:
                throw Bad(here, $"character data stored as {MiType.Describe(tag.Type)}; expected miUINT16, miUTF8, miUTF16 or miUTF32.");
        }
    }

    private Array DecodeNumeric(byte[] buf, Tag tag, MatClass matClass, int count, string here, string shape)
    {
        int size = MiType.Size(tag.Type);
        if (size == 0)
            throw Bad(here, $"numeric data stored as {MiType.Describe(tag.Type)}; expected a numeric data type.");
        if (tag.Length != (long)count * size)
            throw Bad(here, $"the data holds {tag.Length} bytes of {MiType.Describe(tag.Type)}; dimensions [{shape}] need {(long)count * size}.");
        var bytes = buf.AsSpan(tag.DataStart, tag.Length);
        Array stored = tag.Type switch
        {
            MiType.Int8 => Cast<sbyte>(bytes),
            MiType.UInt8 => Cast<byte>(bytes),
            MiType.Int16 => Cast<short>(bytes),
            MiType.UInt16 => Cast<ushort>(bytes),
            MiType.Int32 => Cast<int>(bytes),
            MiType.UInt32 => Cast<uint>(bytes),
            MiType.Single => Cast<float>(bytes),
            MiType.Double => Cast<double>(bytes),
            MiType.Int64 => Cast<long>(bytes),
            _ => Cast<ulong>(bytes),
        };
        if (_bigEndian && size > 1) SwapInPlace(stored, size);
        return ConvertTo(stored, matClass);
    }

    /// <summary>A copy of the data as T[] (not zeroed first: every element is written; label masks are large arrays).</summary>
    private static T[] Cast<T>(ReadOnlySpan<byte> bytes) where T : unmanaged
    {
        var values = MemoryMarshal.Cast<byte, T>(bytes);
        var copy = GC.AllocateUninitializedArray<T>(values.Length);
        values.CopyTo(copy);
        return copy;
    }

    private static void SwapInPlace(Array data, int size)
    {
        switch (size)
        {
            case 2:
                var s16 = data is short[] s ? MemoryMarshal.Cast<short, ushort>(s.AsSpan()) : ((ushort[])data).AsSpan();
                BinaryPrimitives.ReverseEndianness(s16, s16);
                break;
            case 4:
                var s32 = data switch
                {
                    int[] a => MemoryMarshal.Cast<int, uint>(a.AsSpan()),
                    float[] a => MemoryMarshal.Cast<float, uint>(a.AsSpan()),
                    _ => ((uint[])data).AsSpan(),
                };
                BinaryPrimitives.ReverseEndianness(s32, s32);
                break;
            default:
                var s64 = data switch
                {
                    long[] a => MemoryMarshal.Cast<long, ulong>(a.AsSpan()),
                    double[] a => MemoryMarshal.Cast<double, ulong>(a.AsSpan()),
                    _ => ((ulong[])data).AsSpan(),
                };
                BinaryPrimitives.ReverseEndianness(s64, s64);
                break;
        }
    }

    /// <summary>
    /// MATLAB may store data in a smaller type than the array's class (e.g. a double array of small integers as
    /// miUINT8); scipy's loadmat returns the class type, so convert to it.
    /// </summary>
    private static Array ConvertTo(Array stored, MatClass matClass)
    {
        var storedClass = MatNumericArray.ClassOfData(stored);
        if (storedClass == matClass) return stored;
        int n = stored.Length;
        double ValueAsDouble(Array a, int i) => MatNumericArray.ValueAsDouble(a, storedClass, i);
        long ValueAsInt64(Array a, int i) => MatNumericArray.ValueAsInt64(a, storedClass, i);
        switch (matClass)
        {
            case MatClass.Double: { var r = new double[n]; for (int i = 0; i < n; i++) r[i] = ValueAsDouble(stored, i); return r; }
            case MatClass.Single: { var r = new float[n]; for (int i = 0; i < n; i++) r[i] = (float)ValueAsDouble(stored, i); return r; }
            case MatClass.UInt64: { var r = new ulong[n]; for (int i = 0; i < n; i++) r[i] = unchecked((ulong)ValueAsInt64(stored, i)); return r; }
        }
        var wide = new long[n];
        for (int i = 0; i < n; i++) wide[i] = ValueAsInt64(stored, i);
        return matClass switch
        {
            MatClass.Int8 => wide.Select(v => unchecked((sbyte)v)).ToArray(),
            MatClass.UInt8 => wide.Select(v => unchecked((byte)v)).ToArray(),
            MatClass.Int16 => wide.Select(v => unchecked((short)v)).ToArray(),
            MatClass.UInt16 => wide.Select(v => unchecked((ushort)v)).ToArray(),
            MatClass.Int32 => wide.Select(v => unchecked((int)v)).ToArray(),
            MatClass.UInt32 => wide.Select(v => unchecked((uint)v)).ToArray(),
            _ => (Array)wide,
        };
    }
}
