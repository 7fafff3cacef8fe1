using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>The element types <see cref="NpyFile"/> reads.</summary>
public enum NpyElementType
{
    /// <summary>8-bit unsigned integer (<c>|u1</c>).</summary>
    UInt8,

    /// <summary>32-bit float (<c>&lt;f4</c> or <c>&gt;f4</c>).</summary>
    Float32,

    /// <summary>64-bit float (<c>&lt;f8</c> or <c>&gt;f8</c>).</summary>
    Float64,
}

/// <summary>An array read from a <c>.npy</c> file: its shape and its values as float32, in C (row-major) order.</summary>
/// <param name="Shape">The dimensions.</param>
/// <param name="Values">The values, row-major, converted to float32 (float64 values are rounded).</param>
/// <param name="ElementType">The element type stored in the file.</param>
public sealed record NpyArray(IReadOnlyList<int> Shape, float[] Values, NpyElementType ElementType);

/// <summary>
/// A strict, safe reader of NumPy's <c>.npy</c> format (versions 1.0, 2.0 and 3.0 of
/// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html): the header is parsed as the fixed dictionary the
/// format defines (<c>descr</c>, <c>fortran_order</c>, <c>shape</c>) by a small grammar, never evaluated; only
/// little/big-endian float32/float64 and uint8 are accepted (object arrays, which would need unpickling, and every other
/// type are refused); C and Fortran order; the data must fill the file exactly.
/// </summary>
public static class NpyFile
{
    /// <summary>The most elements one file may hold (2^28: 1 GiB of float32), against hostile shapes.</summary>
    public const long MaxElements = 1L << 28;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a <c>.npy</c> file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The array.</returns>
    /// <exception cref="InvalidDataException">The file is not a well-formed .npy of a supported type; the message names the file
    /// and what was expected.</exception>
    public static NpyArray Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"'{path}': cannot read the .npy file: {e.Message}", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>Parses the bytes of a <c>.npy</c> file.</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="name">The file's name for messages.</param>
    /// <returns>The array.</returns>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed .npy of a supported type.</exception>
    public static NpyArray Parse(ReadOnlySpan<byte> bytes, string name)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw Bad(name, "it does not start with the .npy magic \\x93NUMPY");
        byte major = bytes[6];
        int headerLength, start;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]);
                start = 10;
                break;
            case 2 or 3:
                if (bytes.Length < 12) throw Bad(name, "the header is truncated");
                uint len = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
                if (len > 1 << 20) throw Bad(name, $"the header claims {len} bytes (at most 1 MiB expected)");
                headerLength = (int)len;
                start = 12;
                break;
            default:
                throw Bad(name, $"format version {major}.{bytes[7]} is not supported (1.0, 2.0 or 3.0 expected)");
        }
        if (bytes.Length < start + headerLength) throw Bad(name, "the header is truncated");
        string header;
        try { header = new UTF8Encoding(false, true).GetString(bytes.Slice(start, headerLength)); }
        catch (DecoderFallbackException) { throw Bad(name, "the header is not valid text"); }

        var (descr, fortran, shape) = ParseHeader(header, name);
        var (type, bigEndian, itemSize) = descr switch
        {
            "<f4" => (NpyElementType.Float32, false, 4),
            ">f4" => (NpyElementType.Float32, true, 4),
            "<f8" => (NpyElementType.Float64, false, 8),
            ">f8" => (NpyElementType.Float64, true, 8),
            "|u1" or "<u1" or ">u1" => (NpyElementType.UInt8, false, 1),
            _ when descr.Contains('O') => throw Bad(name, $"it holds Python objects (dtype '{descr}'), which are never loaded"),
            _ => throw Bad(name, $"dtype '{descr}' is not supported (float32, float64 or uint8 expected)"),
        };
        long count = 1;
        foreach (int d in shape)
        {
            count *= d;
            if (count > MaxElements) throw Bad(name, $"shape ({string.Join(", ", shape)}) holds more than {MaxElements} elements");
        }
        var data = bytes[(start + headerLength)..];
        if (data.Length != count * itemSize)
            throw Bad(name, $"shape ({string.Join(", ", shape)}) of {descr} needs {count * itemSize} data bytes but the file holds {data.Length}");

        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            var item = data.Slice(i * itemSize, itemSize);
            values[i] = type switch
            {
                NpyElementType.UInt8 => item[0],
                NpyElementType.Float32 => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(item) : BinaryPrimitives.ReadSingleLittleEndian(item),
                _ => (float)(bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(item) : BinaryPrimitives.ReadDoubleLittleEndian(item)),
            };
        }
        if (fortran && shape.Length > 1) values = FortranToC(values, shape);
        return new NpyArray(shape, values, type);
    }

    /// <summary>Writes a float32 array as a little-endian, C-order version 1.0 <c>.npy</c> file (atomically).</summary>
    /// <param name="path">The file.</param>
    /// <param name="shape">The dimensions.</param>
    /// <param name="values">The values, row-major; their count must be the product of the dimensions.</param>
    public static void WriteFloat32(string path, IReadOnlyList<int> shape, ReadOnlySpan<float> values)
    {
        var buffer = EncodeFloat32(shape, values);
        AtomicFile.Write(path, s => s.Write(buffer));
    }

    /// <summary>The bytes of the <c>.npy</c> file <see cref="WriteFloat32"/> writes (for a caller that writes them itself).</summary>
    internal static byte[] EncodeFloat32(IReadOnlyList<int> shape, ReadOnlySpan<float> values)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = shape.Aggregate(1L, (a, d) => a * d);
        if (shape.Any(d => d < 0) || count != values.Length)
            throw new ArgumentException($"Shape ({string.Join(", ", shape)}) does not match {values.Length} values.", nameof(values));
        string dims = shape.Count == 1 ? $"{shape[0]}," : string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + dict.Length + 1;
        string header = dict + new string(' ', (64 - total % 64) % 64) + "\n";                 // data aligned to 64 bytes
        var buffer = new byte[10 + header.Length + values.Length * 4];
        Magic.CopyTo(buffer);
        buffer[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header, buffer.AsSpan(10));
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(10 + header.Length + 4 * i), values[i]);
        return buffer;
    }

    private static float[] FortranToC(float[] values, int[] shape)
    {
        int rank = shape.Length;
        var result = new float[values.Length];
        var index = new int[rank];
        // Fortran strides: the first dimension varies fastest.
        var fStride = new long[rank];
        fStride[0] = 1;
        for (int d = 1; d < rank; d++) fStride[d] = fStride[d - 1] * shape[d - 1];
        for (long c = 0; c < values.Length; c++)
        {
            long f = 0;
            for (int d = 0; d < rank; d++) f += index[d] * fStride[d];
            result[c] = values[f];
            for (int d = rank - 1; d >= 0; d--)                                                   // C order: last varies fastest
            {
                if (++index[d] < shape[d]) break;
                index[d] = 0;
            }
        }
        return result;
    }

    /// <summary>Parses <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (2, 3), }</c>: exactly these three keys, any order.</summary>
    private static (string Descr, bool Fortran, int[] Shape) ParseHeader(string header, string name)
    {
        var p = new HeaderParser(header.TrimEnd('\n', ' ', '\0'), name);
        string? descr = null;
        bool? fortran = null;
        int[]? shape = null;
        p.Expect('{');
        while (true)
        {
            p.SkipSpaces();
            if (p.TryTake('}')) break;
            string key = p.QuotedString();
            p.SkipSpaces();
            p.Expect(':');
            p.SkipSpaces();
            switch (key)
            {
                case "descr" when descr is null: descr = p.QuotedString(); break;
                case "fortran_order" when fortran is null: fortran = p.Boolean(); break;
                case "shape" when shape is null: shape = p.Tuple(); break;
                default: throw Bad(name, $"the header has an unexpected or repeated key '{key}' (descr, fortran_order and shape expected)");
            }
            p.SkipSpaces();
            if (p.TryTake(',')) continue;
            p.SkipSpaces();
            p.Expect('}');
            break;
        }
        p.SkipSpaces();
        if (!p.AtEnd) throw Bad(name, "the header has text after its dictionary");
        if (descr is null || fortran is null || shape is null) throw Bad(name, "the header lacks descr, fortran_order or shape");
        return (descr, fortran.Value, shape);
    }

    private static InvalidDataException Bad(string name, string what) => new($"'{name}' is not a supported .npy file: {what}.");

    private ref struct HeaderParser(string text, string name)
    {
        private int _i;

        public readonly bool AtEnd => _i >= text.Length;

        public void SkipSpaces()
        {
            while (_i < text.Length && text[_i] == ' ') _i++;
        }

        public bool TryTake(char c)
        {
            if (_i < text.Length && text[_i] == c) { _i++; return true; }
            return false;
        }

        public void Expect(char c)
        {
            if (!TryTake(c)) throw Bad(name, $"malformed header at character {_i}: '{c}' expected");
        }

        public string QuotedString()
        {
            char q = _i < text.Length ? text[_i] : '\0';
            if (q is not ('\'' or '"')) throw Bad(name, $"malformed header at character {_i}: a quoted string expected");
            int end = text.IndexOf(q, _i + 1);
            if (end < 0 || end - _i > 64) throw Bad(name, $"malformed header at character {_i}: unterminated string");
            string s = text.Substring(_i + 1, end - _i - 1);
            _i = end + 1;
            return s;
        }

        public bool Boolean()
        {
            if (string.CompareOrdinal(text, _i, "True", 0, 4) == 0) { _i += 4; return true; }
            if (string.CompareOrdinal(text, _i, "False", 0, 5) == 0) { _i += 5; return false; }
            throw Bad(name, $"malformed header at character {_i}: True or False expected for fortran_order");
        }

        public int[] Tuple()
        {
            Expect('(');
            var dims = new List<int>();
            while (true)
            {
                SkipSpaces();
                if (TryTake(')')) break;
                int begin = _i;
                while (_i < text.Length && char.IsAsciiDigit(text[_i])) _i++;
                if (_i == begin || !int.TryParse(text.AsSpan(begin, _i - begin), NumberStyles.None, CultureInfo.InvariantCulture, out int d))
                    throw Bad(name, $"malformed header at character {begin}: a non-negative dimension expected in shape");
                if (dims.Count == 8) throw Bad(name, "the shape has more than 8 dimensions");
                dims.Add(d);
                SkipSpaces();
                if (TryTake(',')) continue;
                Expect(')');
                break;
            }
            return [.. dims];
        }
    }
}
