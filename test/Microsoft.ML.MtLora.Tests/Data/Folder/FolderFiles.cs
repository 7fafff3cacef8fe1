using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Data.Folder;

/// <summary>
/// Writes the files of a dense-task folder byte by byte, independently of the library's own encoders: PNGs of any colour
/// type and bit depth (unfiltered rows, zlib, CRC-32 from the PNG specification's algorithm), .npy files (format 1.0:
/// magic, header dict padded to 64 bytes, raw little-endian data) and images through SkiaSharp.
/// </summary>
internal static class FolderFiles
{
    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>A PNG of <paramref name="colorType"/> (0 gray, 2 RGB, 3 palette) and <paramref name="bitDepth"/> (8 or 16);
    /// <paramref name="samples"/> are the row-major samples (16-bit ones as ushort values).</summary>
    public static void Png(string path, int width, int height, int colorType, int bitDepth, IReadOnlyList<int> samples, byte[]? palette = null)
    {
        int channels = colorType == 2 ? 3 : 1, bytesPerSample = bitDepth / 8;
        Assert.Equal(width * height * channels, samples.Count);
        using var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0); // filter type None
            for (int i = 0; i < width * channels; i++)
            {
                int v = samples[y * width * channels + i];
                if (bytesPerSample == 2) raw.WriteByte((byte)(v >> 8));
                raw.WriteByte((byte)v);
            }
        }
        using var z = new MemoryStream();
        using (var deflate = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true)) deflate.Write(raw.ToArray());
        using var png = new MemoryStream();
        png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        var header = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), (uint)height);
        header[8] = (byte)bitDepth;
        header[9] = (byte)colorType;
        Chunk(png, "IHDR", header);
        if (palette is not null) Chunk(png, "PLTE", palette);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", []);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, png.ToArray());
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var head = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, head.AsSpan(4));
        png.Write(head);
        png.Write(data);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc([.. head.AsSpan(4), .. data]));
        png.Write(crc);
    }

    /// <summary>An 8-bit grayscale PNG.</summary>
    public static void Gray8(string path, int width, int height, params int[] values) => Png(path, width, height, 0, 8, values);

    /// <summary>A 16-bit grayscale PNG.</summary>
    public static void Gray16(string path, int width, int height, params int[] values) => Png(path, width, height, 0, 16, values);

    /// <summary>An 8-bit palette PNG with a 256-entry gray palette (index i = (i, i, i)) holding the given indices.</summary>
    public static void Palette(string path, int width, int height, params int[] indices) =>
        Png(path, width, height, 3, 8, indices, Enumerable.Range(0, 768).Select(i => (byte)(i / 3)).ToArray());

    /// <summary>An 8-bit RGB PNG from interleaved R, G, B values.</summary>
    public static void Rgb(string path, int width, int height, params int[] rgb) => Png(path, width, height, 2, 8, rgb);

    /// <summary>A .npy (format 1.0) of little-endian float32 (<c>&lt;f4</c>), float64 (<c>&lt;f8</c>) or uint8 (<c>|u1</c>) values.</summary>
    public static void Npy(string path, string descr, int[] shape, params double[] values)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + dict.Length + 1;
        dict = dict.PadRight(dict.Length + (64 - total % 64) % 64) + "\n";
        using var s = new MemoryStream();
        s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        var len = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)dict.Length);
        s.Write(len);
        s.Write(Encoding.ASCII.GetBytes(dict));
        foreach (var v in values)
        {
            switch (descr)
            {
                case "<f4": { var b = new byte[4]; BinaryPrimitives.WriteSingleLittleEndian(b, (float)v); s.Write(b); break; }
                case "<f8": { var b = new byte[8]; BinaryPrimitives.WriteDoubleLittleEndian(b, v); s.Write(b); break; }
                default: s.WriteByte((byte)v); break;
            }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, s.ToArray());
    }

    /// <summary>An opaque image of deterministic noise, encoded by SkiaSharp as PNG or (by extension) JPEG.</summary>
    public static void Image(string path, int width, int height, int seed)
    {
        var rng = new Random(seed);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)rng.Next(256), (byte)(8 * x), (byte)(8 * y)));
        bool jpeg = path.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase);
        using var data = bitmap.Encode(jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Png, 95);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, data.ToArray());
    }
}
