using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// Reads and writes the single-channel PNG files of dense label maps: palette PNGs read as palette <b>indices</b>
/// (what PIL's <c>np.array(Image.open(path))</c> returns, and what the reference uses as class ids), and 8-bit
/// grayscale PNGs read as values.
/// </summary>
/// <remarks>
/// General image decoders (SkiaSharp, ML.NET's <c>LoadImages</c>) turn palette PNGs into colours and lose the indices,
/// which is why this small decoder exists. It supports palette bit depths 1, 2, 4 and 8, 8-bit grayscale and 16-bit
/// grayscale, interlaced (Adam7) or not. A 16-bit file is read by value, as PIL reads it (mode <c>I;16</c>), and refused
/// when a value does not fit a byte, so a class id is never changed. Transparency (<c>tRNS</c>) and colour management
/// chunks are ignored. Everything else (RGB, gray+alpha, corrupt CRC or zlib data, truncated files, images over
/// 178,956,970 pixels, PIL's decompression-bomb limit) is refused with an <see cref="InvalidDataException"/> that names
/// the file and says what was found and what was expected. Memory: the file's bytes plus one byte per pixel, and the
/// pixel buffer is only allocated when the compressed data can hold that many pixels (deflate packs at most 1,032 bytes
/// into one), so a few bytes of header cannot claim gigabytes.
/// </remarks>
public static class IndexedPng
{
    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    internal const byte ColorTypeGray = 0;
    private const byte ColorTypeRgb = 2;
    internal const byte ColorTypePalette = 3;
    private const long MaxDeflateRatio = 1032;

    private static readonly byte[] VocPaletteBytes = BuildVocPalette();

    /// <summary>
    /// The standard 256-colour PASCAL VOC colour map (768 bytes, RGB triplets): the bits of each index are spread over
    /// the high bits of R, G and B (index 1 = (128,0,0), 2 = (0,128,0), 15 = (192,128,128), 255 = (224,224,192)).
    /// </summary>
    public static ReadOnlySpan<byte> VocPalette => VocPaletteBytes;

    private static byte[] BuildVocPalette()
    {
        var map = new byte[768];
        for (int i = 0; i < 256; i++)
        {
            int r = 0, g = 0, b = 0, c = i;
            for (int j = 0; j < 8; j++)
            {
                r |= (c & 1) << (7 - j);
                g |= ((c >> 1) & 1) << (7 - j);
                b |= ((c >> 2) & 1) << (7 - j);
                c >>= 3;
            }
            map[3 * i] = (byte)r;
            map[3 * i + 1] = (byte)g;
            map[3 * i + 2] = (byte)b;
        }
        return map;
    }

    /// <summary>Reads a palette PNG as palette indices, or a grayscale PNG as gray values.</summary>
    /// <param name="path">The PNG file.</param>
    /// <exception cref="InvalidDataException">The file is not a PNG this reader supports, or it is corrupt or truncated.</exception>
    public static IndexedImage Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Read(stream, path);
    }

    /// <summary>Reads a palette PNG as palette indices, or a grayscale PNG as gray values, from a stream.</summary>
    /// <param name="stream">The PNG bytes, read to the end.</param>
    /// <param name="name">The name used in error messages (usually the file path).</param>
    /// <exception cref="InvalidDataException">The data is not a PNG this reader supports, or it is corrupt or truncated.</exception>
    public static IndexedImage Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        name ??= "<stream>";
        byte[] bytes;
        if (stream is MemoryStream ms && ms.TryGetBuffer(out var segment) && ms.Position == 0)
        {
            bytes = segment.AsSpan(0, (int)ms.Length).ToArray();
        }
        else
        {
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            bytes = copy.ToArray();
        }
        var (width, height, pixels) = Decode(bytes, name, keep16: false);
        return new IndexedImage(width, height, pixels);
    }

    /// <summary>
    /// Reads a 16-bit grayscale PNG keeping all 16 bits of each sample (SkiaSharp 2.88 decodes such files to 8 bits), for
    /// label maps stored in 16-bit units such as depth in millimetres.
    /// </summary>
    /// <param name="path">The PNG file.</param>
    /// <returns>The size and the W·H samples, row-major.</returns>
    /// <exception cref="InvalidDataException">The file is not a 16-bit grayscale PNG, or it is corrupt or truncated.</exception>
    internal static (int Width, int Height, ushort[] Values) ReadGray16(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (width, height, pixels) = Decode(File.ReadAllBytes(path), path, keep16: true);
        var values = new ushort[(long)width * height];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadUInt16BigEndian(pixels.AsSpan(2 * i));
        return (width, height, values);
    }

    /// <summary>The size, bit depth and colour type of a PNG from its IHDR chunk (the first 33 bytes; nothing else is read).</summary>
    /// <param name="path">The PNG file.</param>
    /// <returns>The header fields.</returns>
    /// <exception cref="InvalidDataException">The file does not start with a PNG signature and an IHDR chunk.</exception>
    internal static (int Width, int Height, int BitDepth, int ColorType) ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Span<byte> head = stackalloc byte[33];
        int read;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64))
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (read < head.Length || !head[..8].SequenceEqual(Signature) || !head.Slice(12, 4).SequenceEqual("IHDR"u8))
            throw Bad(path, "not a PNG file (expected the PNG signature followed by an IHDR chunk).");
        uint w = BinaryPrimitives.ReadUInt32BigEndian(head[16..]), h = BinaryPrimitives.ReadUInt32BigEndian(head[20..]);
        if (w == 0 || h == 0 || w > int.MaxValue || h > int.MaxValue)
            throw Bad(path, $"image size {w}x{h} is not usable; expected at least one pixel.");
        return ((int)w, (int)h, head[24], head[25]);
    }

    /// <summary>A one-line description of a PNG colour type and bit depth, for error messages.</summary>
    internal static string Describe(int bitDepth, int colorType) => colorType switch
    {
        ColorTypeGray => $"{bitDepth}-bit grayscale",
        ColorTypeRgb => $"{bitDepth}-bit RGB",
        ColorTypePalette => $"{bitDepth}-bit palette",
        4 => $"{bitDepth}-bit gray+alpha",
        6 => $"{bitDepth}-bit RGBA",
        _ => $"colour type {colorType}, {bitDepth}-bit",
    };

    private static InvalidDataException Bad(string name, string message) => new($"PNG '{name}': {message}");

    private static (int Width, int Height, byte[] Pixels) Decode(byte[] data, string name, bool keep16)
    {
        if (data.Length < Signature.Length || !data.AsSpan(0, Signature.Length).SequenceEqual(Signature))
            throw Bad(name, $"not a PNG file (the first bytes are {Convert.ToHexString(data.AsSpan(0, Math.Min(8, data.Length)))}; expected the PNG signature 89504E470D0A1A0A).");

        int pos = Signature.Length;
        int width = 0, height = 0, bitDepth = 0, colorType = -1, interlace = 0;
        bool seenHeader = false, seenEnd = false;
        using var idat = new MemoryStream();
        while (pos < data.Length)
        {
            if (data.Length - pos < 12) throw Bad(name, $"truncated: a chunk header at byte {pos} needs 12 bytes, {data.Length - pos} remain.");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
            var typeSpan = data.AsSpan(pos + 4, 4);
            string type = Encoding.ASCII.GetString(typeSpan);
            if (length > int.MaxValue || length > (uint)(data.Length - pos - 12))
                throw Bad(name, $"truncated: chunk '{type}' at byte {pos} declares {length} bytes of data, only {Math.Max(0, data.Length - pos - 12)} remain.");
            var chunk = data.AsSpan(pos + 8, (int)length);
            uint storedCrc = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos + 8 + (int)length));
            uint crc = Crc32.Update(0xFFFFFFFFu, typeSpan);
            crc = Crc32.Update(crc, chunk) ^ 0xFFFFFFFFu;
            if (crc != storedCrc)
                throw Bad(name, $"corrupt: chunk '{type}' at byte {pos} has CRC {storedCrc:X8}, its data gives {crc:X8}.");
            pos += 12 + (int)length;

            if (!seenHeader)
            {
                if (type != "IHDR") throw Bad(name, $"the first chunk is '{type}'; expected 'IHDR'.");
                if (length != 13) throw Bad(name, $"the IHDR chunk has {length} bytes; expected 13.");
                uint w = BinaryPrimitives.ReadUInt32BigEndian(chunk);
                uint h = BinaryPrimitives.ReadUInt32BigEndian(chunk[4..]);
                bitDepth = chunk[8];
                colorType = chunk[9];
                int compression = chunk[10], filter = chunk[11];
                interlace = chunk[12];
                if (w == 0 || h == 0 || w > int.MaxValue || h > int.MaxValue)
                    throw Bad(name, $"image size {w}x{h} is not usable; expected at least one pixel.");
                if ((long)w * h > ImageLimits.MaxPixels) throw Bad(name, ImageLimits.TooLarge(w, h));
                width = (int)w;
                height = (int)h;
                if (keep16 && (colorType != ColorTypeGray || bitDepth != 16))
                    throw Bad(name, $"found a {Describe(bitDepth, colorType)} image; expected a 16-bit grayscale PNG.");
                CheckFormat(name, bitDepth, colorType);
                if (compression != 0) throw Bad(name, $"compression method {compression}; expected 0 (deflate).");
                if (filter != 0) throw Bad(name, $"filter method {filter}; expected 0.");
                if (interlace > 1) throw Bad(name, $"interlace method {interlace}; expected 0 (none) or 1 (Adam7).");
                seenHeader = true;
                continue;
            }

            if (type == "IDAT") idat.Write(chunk);
            else if (type == "IEND") { seenEnd = true; break; }
            else if (type == "IHDR") throw Bad(name, $"a second IHDR chunk at byte {pos - 12 - (int)length}.");
            else if ((typeSpan[0] & 0x20) == 0 && type != "PLTE")
                throw Bad(name, $"unknown critical chunk '{type}'; a decoder must not skip it.");
        }
        if (!seenHeader) throw Bad(name, "truncated: no IHDR chunk.");
        if (!seenEnd) throw Bad(name, "truncated: the file ends before the IEND chunk.");
        if (idat.Length == 0) throw Bad(name, "no IDAT chunk (no image data).");
        // Deflate expands at most 1,032:1 (RFC 1951: one 258-byte match per ~2 bits), so data too short for the pixels the
        // header claims is refused before the pixel buffer is allocated.
        long sampleBytes = (long)width * height * bitDepth / 8;
        if (sampleBytes > idat.Length * MaxDeflateRatio + 1024)
            throw Bad(name, $"truncated: {idat.Length} bytes of compressed data cannot hold the {width}x{height} pixels the header claims.");

        var pixels = new byte[(long)width * height * (keep16 ? 2 : 1)];
        idat.Position = 0;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            if (interlace == 0)
            {
                DecodePass(z, name, pixels, width, width, height, bitDepth, 0, 0, 1, 1, keep16);
            }
            else
            {
                // Adam7: (x0, y0, dx, dy) of each of the 7 passes.
                ReadOnlySpan<int> passes = [0, 0, 8, 8, 4, 0, 8, 8, 0, 4, 4, 8, 2, 0, 4, 4, 0, 2, 2, 4, 1, 0, 2, 2, 0, 1, 1, 2];
                for (int p = 0; p < 7; p++)
                {
                    int x0 = passes[4 * p], y0 = passes[4 * p + 1], dx = passes[4 * p + 2], dy = passes[4 * p + 3];
                    int pw = width > x0 ? (width - x0 + dx - 1) / dx : 0;
                    int ph = height > y0 ? (height - y0 + dy - 1) / dy : 0;
                    if (pw > 0 && ph > 0) DecodePass(z, name, pixels, width, pw, ph, bitDepth, x0, y0, dx, dy, keep16);
                }
            }
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith("PNG '", StringComparison.Ordinal))
        {
            throw Bad(name, $"corrupt compressed image data ({e.Message}).");
        }
        return (width, height, pixels);
    }

    private static void CheckFormat(string name, int bitDepth, int colorType)
    {
        switch (colorType)
        {
            case ColorTypePalette:
                if (bitDepth is 1 or 2 or 4 or 8) return;
                throw Bad(name, $"palette image with bit depth {bitDepth}; expected 1, 2, 4 or 8.");
            case ColorTypeGray:
                if (bitDepth is 8 or 16) return;
                throw Bad(name, $"grayscale image with bit depth {bitDepth}; expected 8 or 16 (label maps are 8-bit).");
            default:
                string found = colorType switch
                {
                    ColorTypeRgb => "an RGB image (colour type 2)",
                    4 => "a gray+alpha image (colour type 4)",
                    6 => "an RGBA image (colour type 6)",
                    _ => $"colour type {colorType}",
                };
                throw Bad(name, $"found {found}; expected a palette (colour type 3) or grayscale (colour type 0) label image.");
        }
    }

    private static void DecodePass(Stream z, string name, byte[] pixels, int width, int passWidth, int passHeight,
        int bitDepth, int x0, int y0, int dx, int dy, bool keep16)
    {
        int rowBytes = (int)(((long)passWidth * bitDepth + 7) / 8);
        int bpp = Math.Max(1, bitDepth / 8);
        var prev = new byte[rowBytes];
        var cur = new byte[rowBytes];
        Span<byte> filterByte = stackalloc byte[1];
        for (int r = 0; r < passHeight; r++)
        {
            ReadExactly(z, name, filterByte);
            ReadExactly(z, name, cur);
            Unfilter(name, filterByte[0], cur, prev, bpp, y0 + r * dy);
            int outRow = (y0 + r * dy) * width;
            switch (bitDepth)
            {
                case 8:
                    if (dx == 1) cur.AsSpan(0, passWidth).CopyTo(pixels.AsSpan(outRow));
                    else for (int i = 0; i < passWidth; i++) pixels[outRow + x0 + i * dx] = cur[i];
                    break;
                case 16 when keep16:
                    for (int i = 0; i < passWidth; i++)
                    {
                        int o = 2 * (outRow + x0 + i * dx);
                        pixels[o] = cur[2 * i];
                        pixels[o + 1] = cur[2 * i + 1];
                    }
                    break;
                case 16:
                    for (int i = 0; i < passWidth; i++)
                    {
                        // Big-endian samples, read by value as PIL does; a value above 255 cannot be a class id or 8-bit level.
                        if (cur[2 * i] != 0)
                            throw Bad(name, $"pixel (x {x0 + i * dx}, y {y0 + r * dy}) holds the 16-bit value {(cur[2 * i] << 8) | cur[2 * i + 1]}; " +
                                "a label map holds values 0..255 (16-bit files are read by value when every value is below 256).");
                        pixels[outRow + x0 + i * dx] = cur[2 * i + 1];
                    }
                    break;
                default:
                    int mask = (1 << bitDepth) - 1;
                    for (int i = 0; i < passWidth; i++)
                    {
                        int bit = i * bitDepth;
                        pixels[outRow + x0 + i * dx] = (byte)((cur[bit >> 3] >> (8 - bitDepth - (bit & 7))) & mask);
                    }
                    break;
            }
            (prev, cur) = (cur, prev);
        }
    }

    private static void ReadExactly(Stream z, string name, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = z.Read(buffer[done..]);
            if (n == 0) throw Bad(name, "truncated: the compressed image data ends before the last row.");
            done += n;
        }
    }

    private static void Unfilter(string name, byte filter, Span<byte> cur, ReadOnlySpan<byte> prev, int bpp, int row)
    {
        switch (filter)
        {
            case 0:
                break;
            case 1:
                for (int i = bpp; i < cur.Length; i++) cur[i] += cur[i - bpp];
                break;
            case 2:
                for (int i = 0; i < cur.Length; i++) cur[i] += prev[i];
                break;
            case 3:
                for (int i = 0; i < cur.Length; i++) cur[i] += (byte)(((i >= bpp ? cur[i - bpp] : 0) + prev[i]) >> 1);
                break;
            case 4:
                for (int i = 0; i < cur.Length; i++)
                    cur[i] += Paeth(i >= bpp ? cur[i - bpp] : (byte)0, prev[i], i >= bpp ? prev[i - bpp] : (byte)0);
                break;
            default:
                throw Bad(name, $"corrupt: row {row} has filter type {filter}; expected 0..4.");
        }
    }

    private static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Writes an 8-bit palette (indexed) PNG. The file is written to a temporary name and then moved into place.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="image">The palette indices.</param>
    /// <param name="paletteRgb">RGB triplets, 1 to 256 entries (for example <see cref="VocPalette"/>); every index in the image must have an entry.</param>
    public static void WritePalette(string path, IndexedImage image, ReadOnlySpan<byte> paletteRgb)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (paletteRgb.Length == 0 || paletteRgb.Length % 3 != 0 || paletteRgb.Length > 768)
            throw new ArgumentException($"The palette has {paletteRgb.Length} bytes; expected 3 to 768 bytes of RGB triplets.", nameof(paletteRgb));
        int entries = paletteRgb.Length / 3;
        byte max = 0;
        foreach (var v in image.Pixels) if (v > max) max = v;
        if (max >= entries)
            throw new ArgumentException($"The image holds index {max} but the palette has only {entries} entries.", nameof(paletteRgb));
        var bytes = Encode(image.Width, image.Height, ColorTypePalette, image.Pixels, paletteRgb.ToArray());
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Writes an 8-bit grayscale PNG. The file is written to a temporary name and then moved into place.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="image">The gray values.</param>
    public static void WriteGray(string path, IndexedImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var bytes = Encode(image.Width, image.Height, ColorTypeGray, image.Pixels, null);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>
    /// Writes an 8-bit RGB PNG (lossless), for example distilled surface normals stored as <c>v = (n + 1)·255/2</c>.
    /// The file is written to a temporary name and then moved into place.
    /// </summary>
    /// <param name="path">The target file.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="rgb">Row-major interleaved R, G, B bytes: <c>width × height × 3</c>.</param>
    public static void WriteRgb(string path, int width, int height, byte[] rgb)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"The image size {width}x{height} must be positive.");
        if ((long)width * height * 3 != rgb.Length)
            throw new ArgumentException($"The RGB buffer holds {rgb.Length} bytes; a {width}x{height} image needs {(long)width * height * 3}.", nameof(rgb));
        var bytes = Encode(width, height, ColorTypeRgb, rgb, null);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Encodes a non-interlaced 8-bit PNG in memory.</summary>
    internal static byte[] Encode(int width, int height, byte colorType, byte[] samples, byte[]? palette)
    {
        int channels = colorType == ColorTypeRgb ? 3 : 1;
        int rowBytes = width * channels;
        using var output = new MemoryStream();
        output.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)height);
        header[8] = 8;
        header[9] = colorType;
        header[10] = 0;
        header[11] = 0;
        header[12] = 0;
        WriteChunk(output, "IHDR", header);
        if (palette is not null) WriteChunk(output, "PLTE", palette);

        using (var compressed = new MemoryStream())
        {
            using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                var prev = new byte[rowBytes];
                var filtered = new byte[rowBytes];
                var best = new byte[rowBytes];
                for (int y = 0; y < height; y++)
                {
                    var row = samples.AsSpan(y * rowBytes, rowBytes);
                    byte filter = 0;
                    if (colorType == ColorTypePalette)
                    {
                        // The PNG specification recommends no filtering for palette images.
                        row.CopyTo(best);
                    }
                    else
                    {
                        // Heuristic of the specification: the filter whose output has the smallest sum of |signed bytes|.
                        long bestScore = long.MaxValue;
                        for (byte f = 0; f <= 4; f++)
                        {
                            Filter(f, row, prev, filtered, channels);
                            long score = 0;
                            foreach (var b in filtered) score += Math.Abs((int)(sbyte)b);
                            if (score < bestScore) { bestScore = score; filter = f; filtered.CopyTo(best, 0); }
                        }
                    }
                    z.WriteByte(filter);
                    z.Write(best);
                    row.CopyTo(prev);
                }
            }
            WriteChunk(output, "IDAT", compressed.GetBuffer().AsSpan(0, (int)compressed.Length));
        }
        WriteChunk(output, "IEND", ReadOnlySpan<byte>.Empty);
        return output.ToArray();
    }

    private static void Filter(byte filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prev, Span<byte> output, int bpp)
    {
        for (int i = 0; i < row.Length; i++)
        {
            byte a = i >= bpp ? row[i - bpp] : (byte)0, b = prev[i], c = i >= bpp ? prev[i - bpp] : (byte)0;
            output[i] = filter switch
            {
                0 => row[i],
                1 => (byte)(row[i] - a),
                2 => (byte)(row[i] - b),
                3 => (byte)(row[i] - ((a + b) >> 1)),
                _ => (byte)(row[i] - Paeth(a, b, c)),
            };
        }
    }

    private static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        output.Write(head);
        output.Write(data);
        uint crc = Crc32.Update(0xFFFFFFFFu, head[4..]);
        crc = Crc32.Update(crc, data) ^ 0xFFFFFFFFu;
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        output.Write(tail);
    }
}
