using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.MtLora.Tests.Data.Formats;

/// <summary>
/// Builds MAT v5 bytes by hand, following the MAT-File Format document (not the library's writer), in either byte order.
/// </summary>
internal sealed class MatBytes(bool bigEndian = false)
{
    public const uint MiInt8 = 1, MiUInt8 = 2, MiInt16 = 3, MiUInt16 = 4, MiInt32 = 5, MiUInt32 = 6, MiDouble = 9,
        MiMatrix = 14, MiCompressed = 15, MiUtf8 = 16;

    public byte[] U32(uint v)
    {
        var b = new byte[4];
        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v); else BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    public byte[] I32s(params int[] values) => values.SelectMany(v => U32((uint)v)).ToArray();

    public byte[] Doubles(params double[] values) => values.SelectMany(v =>
    {
        var b = BitConverter.GetBytes(v);
        if (bigEndian == BitConverter.IsLittleEndian) Array.Reverse(b);
        return b;
    }).ToArray();

    public byte[] U16s(params ushort[] values) => values.SelectMany(v =>
    {
        var b = new byte[2];
        if (bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, v); else BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }).ToArray();

    /// <summary>A data element with an 8-byte tag, padded to 8 bytes.</summary>
    public byte[] Element(uint type, byte[] data)
    {
        int pad = (8 - data.Length % 8) % 8;
        return [.. U32(type), .. U32((uint)data.Length), .. data, .. new byte[pad]];
    }

    /// <summary>A small data element: 2 bytes length and 2 bytes type in one 32-bit word, then up to 4 data bytes.</summary>
    public byte[] Small(uint type, byte[] data)
    {
        if (data.Length > 4) throw new ArgumentException("too long for the small format");
        return [.. U32(((uint)data.Length << 16) | type), .. data, .. new byte[4 - data.Length]];
    }

    public byte[] Flags(int cls, uint flags = 0) => Element(MiUInt32, [.. U32((uint)cls | flags), .. U32(0)]);

    public byte[] Dims(params int[] dims) => Element(MiInt32, I32s(dims));

    public byte[] Name(string name) => name.Length <= 4 && name.Length > 0
        ? Small(MiInt8, Encoding.ASCII.GetBytes(name))
        : Element(MiInt8, Encoding.ASCII.GetBytes(name));

    public byte[] Matrix(params byte[][] parts)
    {
        var body = parts.SelectMany(p => p).ToArray();
        return Element(MiMatrix, body);
    }

    public static byte[] Compressed(MatBytes m, byte[] element)
    {
        using var packed = new MemoryStream();
        using (var z = new ZLibStream(packed, CompressionLevel.Fastest, leaveOpen: true)) z.Write(element);
        var data = packed.ToArray();
        // Compressed elements are not padded.
        return [.. m.U32(MiCompressed), .. m.U32((uint)data.Length), .. data];
    }

    public byte[] Header(string text = "MATLAB 5.0 MAT-file, hand-made for a test")
    {
        var h = new byte[128];
        Array.Fill(h, (byte)' ', 0, 116);
        Encoding.ASCII.GetBytes(text, h);
        Array.Clear(h, 116, 8);
        if (bigEndian) { h[124] = 0x01; h[125] = 0x00; h[126] = (byte)'M'; h[127] = (byte)'I'; }
        else { h[124] = 0x00; h[125] = 0x01; h[126] = (byte)'I'; h[127] = (byte)'M'; }
        return h;
    }

    public byte[] File(params byte[][] elements) => [.. Header(), .. elements.SelectMany(e => e)];
}
