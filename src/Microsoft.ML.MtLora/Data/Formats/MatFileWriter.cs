using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// Encodes MAT v5 files, little-endian, laid out as the MAT-file format specifies (and as scipy's savemat writes):
/// <list type="number">
/// <item>128-byte header: 116 bytes of text padded with spaces, 8 bytes of subsystem offset (zero), version 0x0100, 'IM'.</item>
/// <item>Per variable, a miMATRIX element (or a miCOMPRESSED element holding its zlib stream) of sub-elements, each padded
/// to 8 bytes: array flags (miUINT32 × 2: class | flags, 0), dimensions (miINT32), name (miINT8), then the class's data:
/// numeric real part in the class's own type; char data as miUTF8; struct field name length (miINT32),
/// field names (miINT8, null-padded) and one unnamed miMATRIX per element and field; cells one unnamed miMATRIX each.</item>
/// </list>
/// The output does not depend on the time or machine, so the same arrays give the same bytes.
/// </summary>
internal static class MatFileWriter
{
    private const string HeaderText = "MATLAB 5.0 MAT-file, Platform: .NET, written by Microsoft.ML.MtLora";

    public static byte[] Encode(IReadOnlyList<MatArray> variables, bool compress)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var v in variables)
        {
            if (v is null) throw new ArgumentException("A variable is null.", nameof(variables));
            MatNames.CheckIdentifier(v.Name, "variable name");
            if (!names.Add(v.Name)) throw new ArgumentException($"The variable name '{v.Name}' appears twice.", nameof(variables));
        }

        using var output = new MemoryStream();
        var header = new byte[128];
        Array.Fill(header, (byte)' ', 0, 116);
        Encoding.ASCII.GetBytes(HeaderText, header);
        Array.Clear(header, 116, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(124), 0x0100);
        header[126] = (byte)'I';
        header[127] = (byte)'M';
        output.Write(header);

        foreach (var v in variables)
        {
            using var matrix = new MemoryStream();
            WriteMatrix(matrix, v, v.Name);
            if (compress)
            {
                using var packed = new MemoryStream();
                using (var z = new ZLibStream(packed, CompressionLevel.Optimal, leaveOpen: true))
                    z.Write(matrix.GetBuffer(), 0, (int)matrix.Length);
                WriteTag(output, MiType.Compressed, (int)packed.Length);
                output.Write(packed.GetBuffer(), 0, (int)packed.Length);
            }
            else
            {
                output.Write(matrix.GetBuffer(), 0, (int)matrix.Length);
            }
        }
        return output.ToArray();
    }

    private static void WriteMatrix(Stream output, MatArray array, string name)
    {
        using var body = new MemoryStream();
        uint flags = array switch
        {
            MatNumericArray n => (uint)MxClass.FromMatClass(n.Class) | (n.IsLogical ? MxClass.FlagLogical : 0),
            MatCharArray => MxClass.Char,
            MatStructArray => MxClass.Struct,
            MatCellArray => MxClass.Cell,
            _ => throw new ArgumentException($"Unsupported array type {array.GetType().Name}."),
        };
        Span<byte> flagBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(flagBytes, flags);
        WriteElement(body, MiType.UInt32, flagBytes);

        var dims = new byte[4 * array.Dimensions.Count];
        for (int i = 0; i < array.Dimensions.Count; i++) BinaryPrimitives.WriteInt32LittleEndian(dims.AsSpan(4 * i), array.Dimensions[i]);
        WriteElement(body, MiType.Int32, dims);
        WriteElement(body, MiType.Int8, Encoding.ASCII.GetBytes(name));

        switch (array)
        {
            case MatNumericArray n:
                WriteElement(body, MxClass.NaturalMiType(n.Class), RawBytes(n.Data));
                break;
            case MatCharArray c:
                // UTF-8, as scipy writes it: MATLAB and scipy read it back exactly (scipy decodes miUINT16 as bytes).
                WriteElement(body, MiType.Utf8, Encoding.UTF8.GetBytes(c.ColumnMajor.ToArray()));
                break;
            case MatStructArray s:
            {
                // MATLAB writes 32-byte field name slots (64 when a name needs it); the name must end with a null.
                int slot = s.FieldNames.Count == 0 || s.FieldNames.Max(f => f.Length) < 32 ? 32 : 64;
                Span<byte> len = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(len, slot);
                WriteElement(body, MiType.Int32, len);
                var fieldBytes = new byte[slot * s.FieldNames.Count];
                for (int f = 0; f < s.FieldNames.Count; f++) Encoding.ASCII.GetBytes(s.FieldNames[f], fieldBytes.AsSpan(f * slot));
                WriteElement(body, MiType.Int8, fieldBytes);
                for (int i = 0; i < s.Count; i++)
                    for (int f = 0; f < s.FieldNames.Count; f++) WriteMatrix(body, s.Get(i, f), "");
                break;
            }
            case MatCellArray cell:
                for (int i = 0; i < cell.Count; i++) WriteMatrix(body, cell[i], "");
                break;
        }

        WriteTag(output, MiType.Matrix, (int)body.Length);
        output.Write(body.GetBuffer(), 0, (int)body.Length);
    }

    private static ReadOnlySpan<byte> RawBytes(Array data) => data switch
    {
        double[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        float[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        sbyte[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        byte[] a => a,
        short[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ushort[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        int[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        uint[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        long[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ulong[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        _ => throw new ArgumentException($"Unsupported data type {data.GetType()}."),
    };

    /// <summary>Writes one data element, in the small format when 1 to 4 bytes (as MATLAB does), padded to 8 bytes.</summary>
    private static void WriteElement(Stream output, uint type, ReadOnlySpan<byte> data)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The MAT writer needs a little-endian machine.");
        if (data.Length is > 0 and <= 4)
        {
            Span<byte> small = stackalloc byte[8];
            small.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(small, ((uint)data.Length << 16) | type);
            data.CopyTo(small[4..]);
            output.Write(small);
            return;
        }
        WriteTag(output, type, data.Length);
        output.Write(data);
        int pad = (8 - data.Length % 8) % 8;
        for (int i = 0; i < pad; i++) output.WriteByte(0);
    }

    private static void WriteTag(Stream output, uint type, int length)
    {
        Span<byte> tag = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(tag, type);
        BinaryPrimitives.WriteUInt32LittleEndian(tag[4..], (uint)length);
        output.Write(tag);
    }
}
