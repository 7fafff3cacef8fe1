using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Data.Formats;

/// <summary>The label PNG reader and writers, checked against PNGs built by hand per the PNG specification and against SkiaSharp.</summary>
public class IndexedPngTests
{
    // ---- hand-made PNGs (independent of the library's encoder; the hardening tests craft theirs with these too) ----

    internal static byte[] Chunk(string type, byte[] data)
    {
        var typeBytes = Encoding.ASCII.GetBytes(type);
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc([.. typeBytes, .. data]));
        return [.. len, .. typeBytes, .. data, .. crc];
    }

    /// <summary>Bitwise CRC-32 (no table), written independently of the library's.</summary>
    private static uint Crc(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB88320 : c >> 1;
        }
        return ~c;
    }

    internal static byte[] Ihdr(int w, int h, int depth, int colorType, int interlace = 0)
    {
        var d = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(d, (uint)w);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), (uint)h);
        d[8] = (byte)depth; d[9] = (byte)colorType; d[12] = (byte)interlace;
        return Chunk("IHDR", d);
    }

    internal static byte[] Zlib(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
        return ms.ToArray();
    }

    internal static byte[] Png(params byte[][] chunks) =>
        [137, 80, 78, 71, 13, 10, 26, 10, .. chunks.SelectMany(c => c), .. Chunk("IEND", [])];

    /// <summary>Packs samples of a row at a bit depth, most significant bits first.</summary>
    private static byte[] Pack(ReadOnlySpan<byte> samples, int depth)
    {
        if (depth == 8) return samples.ToArray();
        var row = new byte[(samples.Length * depth + 7) / 8];
        for (int i = 0; i < samples.Length; i++)
            row[i * depth / 8] |= (byte)(samples[i] << (8 - depth - (i * depth % 8)));
        return row;
    }

    /// <summary>Applies PNG filter <paramref name="type"/> to a packed row (bpp = 1 byte for these images).</summary>
    private static byte[] FilterRow(int type, byte[] row, byte[] prev, int bpp = 1)
    {
        var o = new byte[row.Length + 1];
        o[0] = (byte)type;
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
            int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
            int paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            int pred = type switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, _ => paeth };
            o[i + 1] = (byte)(row[i] - pred);
        }
        return o;
    }

    private static byte[] Scanlines(byte[] pixels, int w, int h, int depth, int bpp = 1)
    {
        var raw = new List<byte>();
        var prev = new byte[(w * depth * bpp + 7) / 8];
        for (int y = 0; y < h; y++)
        {
            var row = depth == 16
                ? pixels.AsSpan(y * w, w).ToArray().SelectMany(v => new[] { (byte)0, v }).ToArray() // big-endian 16-bit values 0..255
                : Pack(pixels.AsSpan(y * w, w), depth);
            raw.AddRange(FilterRow(y % 5, row, prev, depth == 16 ? 2 : 1));
            prev = row;
        }
        return raw.ToArray();
    }

    private static byte[] TestPixels(int w, int h, int maxValue)
    {
        var rng = new Random(7);
        return Enumerable.Range(0, w * h).Select(_ => (byte)rng.Next(maxValue + 1)).ToArray();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void HandMadePaletteImagesGiveIndicesForEveryFilterType(int depth)
    {
        int w = 13, h = 10;
        var pixels = TestPixels(w, h, (1 << depth) - 1);
        var plte = Chunk("PLTE", IndexedPng.VocPalette[..(3 << depth)].ToArray());
        var trns = Chunk("tRNS", [0, 128]);
        var png = Png(Ihdr(w, h, depth, 3), plte, trns, Chunk("IDAT", Zlib(Scanlines(pixels, w, h, depth))));

        var img = IndexedPng.Read(new MemoryStream(png), "hand.png");
        Assert.Equal((w, h), (img.Width, img.Height));
        Assert.Equal(pixels, img.Pixels);
    }

    [Fact]
    public void HandMadeGrayImages8And16Bit()
    {
        int w = 9, h = 7;
        var pixels = TestPixels(w, h, 255);
        var gray8 = Png(Ihdr(w, h, 8, 0), Chunk("gAMA", [0, 0, 177, 143]), Chunk("IDAT", Zlib(Scanlines(pixels, w, h, 8))));
        Assert.Equal(pixels, IndexedPng.Read(new MemoryStream(gray8), "g8.png").Pixels);

        var gray16 = Png(Ihdr(w, h, 16, 0), Chunk("IDAT", Zlib(Scanlines(pixels, w, h, 16))));
        Assert.Equal(pixels, IndexedPng.Read(new MemoryStream(gray16), "g16.png").Pixels);
    }

    [Fact]
    public void SixteenBitLabelsAreReadByValueAsPilDoes()
    {
        // PIL reads a 16-bit grayscale PNG by value (mode I;16): classes 11, 15 and 18 stay 11, 15 and 18. Keeping the high
        // byte, as this reader once did, turned them all into 0.
        byte[] classes = [11, 15, 18, 0, 255, 3];
        var raw = new List<byte>();
        for (int y = 0; y < 2; y++)
        {
            raw.Add(0); // filter: none
            for (int x = 0; x < 3; x++) raw.AddRange([0, classes[y * 3 + x]]);
        }
        var png = Png(Ihdr(3, 2, 16, 0), Chunk("IDAT", Zlib(raw.ToArray())));
        Assert.Equal(classes, IndexedPng.Read(new MemoryStream(png), "g16.png").Pixels);

        // A value that does not fit a byte is refused, naming the pixel and the value, rather than changed.
        raw[1 + 2 * 2] = 1; // pixel (2, 0) = 0x0112 = 274
        png = Png(Ihdr(3, 2, 16, 0), Chunk("IDAT", Zlib(raw.ToArray())));
        var e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(png), "wide.png"));
        Assert.Contains("wide.png", e.Message);
        Assert.Contains("(x 2, y 0)", e.Message);
        Assert.Contains("274", e.Message);
    }

    [Fact]
    public void AHeaderClaimingMorePixelsThanTheDataCanHoldIsRefusedBeforeAllocating()
    {
        // 60000 x 60000 = 3.6 gigapixels from a 70-byte file: over PIL's decompression-bomb limit.
        var bomb = Png(Ihdr(60000, 60000, 8, 0), Chunk("IDAT", Zlib(new byte[1])));
        var e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(bomb), "bomb.png"));
        Assert.Contains("178,956,970-pixel limit", e.Message);

        // 10000 x 10000 is under the limit, but 9 bytes of deflate data cannot hold 100 MB of pixels (at most 1,032:1).
        var small = Png(Ihdr(10000, 10000, 8, 0), Chunk("IDAT", Zlib(new byte[1])));
        e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(small), "small.png"));
        Assert.Contains("cannot hold the 10000x10000 pixels", e.Message);
    }

    [Theory]
    [InlineData(8, 0, 11, 9)]
    [InlineData(2, 3, 7, 5)]
    [InlineData(8, 3, 1, 1)]
    [InlineData(4, 3, 3, 17)]
    public void HandMadeInterlacedImages(int depth, int colorType, int w, int h)
    {
        var pixels = TestPixels(w, h, (1 << depth) - 1);
        var raw = new List<byte>();
        int[][] passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
        foreach (var p in passes)
        {
            var xs = Enumerable.Range(0, w).Where(x => x >= p[0] && (x - p[0]) % p[2] == 0).ToArray();
            var ys = Enumerable.Range(0, h).Where(y => y >= p[1] && (y - p[1]) % p[3] == 0).ToArray();
            if (xs.Length == 0 || ys.Length == 0) continue;
            var prev = new byte[(xs.Length * depth + 7) / 8];
            for (int r = 0; r < ys.Length; r++)
            {
                var row = Pack(xs.Select(x => pixels[ys[r] * w + x]).ToArray(), depth);
                raw.AddRange(FilterRow((r + p[0]) % 5, row, prev));
                prev = row;
            }
        }
        var chunks = new List<byte[]> { Ihdr(w, h, depth, colorType, interlace: 1) };
        if (colorType == 3) chunks.Add(Chunk("PLTE", IndexedPng.VocPalette.ToArray()));
        // Split the data over two IDAT chunks, which the decoder must join.
        var z = Zlib(raw.ToArray());
        chunks.Add(Chunk("IDAT", z[..(z.Length / 2)]));
        chunks.Add(Chunk("IDAT", z[(z.Length / 2)..]));
        Assert.Equal(pixels, IndexedPng.Read(new MemoryStream(Png([.. chunks])), "adam7.png").Pixels);
    }

    // ---- errors ----

    private static byte[] ValidPalettePng() =>
        Png(Ihdr(4, 3, 8, 3), Chunk("PLTE", IndexedPng.VocPalette.ToArray()), Chunk("IDAT", Zlib(Scanlines(TestPixels(4, 3, 20), 4, 3, 8))));

    [Fact]
    public void RgbIsRefusedWithWhatWasFoundAndExpected()
    {
        var rgb = Png(Ihdr(2, 2, 8, 2), Chunk("IDAT", Zlib(new byte[2 * 7])));
        var e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(rgb), "normals.png"));
        Assert.Contains("normals.png", e.Message);
        Assert.Contains("RGB", e.Message);
        Assert.Contains("palette", e.Message);
    }

    [Fact]
    public void CorruptAndTruncatedFilesAreRefused()
    {
        var good = ValidPalettePng();
        Assert.Equal(12, IndexedPng.Read(new MemoryStream(good), "ok.png").Pixels.Length);

        var badCrc = (byte[])good.Clone();
        badCrc[8 + 8 + 5] ^= 0xFF; // inside IHDR's data
        Assert.Contains("CRC", Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(badCrc), "crc.png")).Message);

        var badZlib = Png(Ihdr(4, 3, 8, 3), Chunk("IDAT", [0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0x00, 0x12]));
        var z = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(badZlib), "z.png"));
        Assert.Contains("z.png", z.Message);

        var shortData = Png(Ihdr(4, 3, 8, 3), Chunk("IDAT", Zlib(new byte[10])));
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(shortData), "s.png")).Message);

        var badFilter = Png(Ihdr(1, 1, 8, 0), Chunk("IDAT", Zlib([7, 0])));
        Assert.Contains("filter type 7", Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(badFilter), "f.png")).Message);

        var jpeg = new byte[] { 0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0, 0, 0 };
        var j = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(jpeg), "photo.jpg"));
        Assert.Contains("photo.jpg", j.Message);
        Assert.Contains("signature", j.Message);

        // Every truncation point gives an InvalidDataException naming the file, nothing else.
        for (int cut = 0; cut < good.Length; cut++)
        {
            var e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(new MemoryStream(good[..cut]), $"cut{cut}.png"));
            Assert.Contains($"cut{cut}.png", e.Message);
        }
    }

    // ---- writers, checked with SkiaSharp (libpng-compatible decoder) ----

    [Fact]
    public void PalettePngRoundTripsAndDecodesToVocColours()
    {
        using var dir = Fixture.TempDir();
        int w = 23, h = 11;
        var pixels = TestPixels(w, h, 20);
        pixels[0] = 255;
        var path = dir.File("sem.png");
        IndexedPng.WritePalette(path, new IndexedImage(w, h, pixels), IndexedPng.VocPalette);

        Assert.Equal(pixels, IndexedPng.Read(path).Pixels);
        using var bmp = SKBitmap.Decode(path);
        Assert.NotNull(bmp);
        var voc = IndexedPng.VocPalette.ToArray();
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = bmp.GetPixel(x, y);
                int i = pixels[y * w + x];
                Assert.Equal((voc[3 * i], voc[3 * i + 1], voc[3 * i + 2]), (c.Red, c.Green, c.Blue));
            }
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void GrayAndRgbPngsDecodeExactlyWithSkia()
    {
        using var dir = Fixture.TempDir();
        int w = 17, h = 6;
        var gray = TestPixels(w, h, 255);
        IndexedPng.WriteGray(dir.File("g.png"), new IndexedImage(w, h, gray));
        Assert.Equal(gray, IndexedPng.Read(dir.File("g.png")).Pixels);
        using (var codec = SKCodec.Create(dir.File("g.png")))
        {
            var info = new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque);
            Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, out byte[] buffer));
            Assert.Equal(gray, buffer);
        }

        var rgb = new byte[w * h * 3];
        new Random(3).NextBytes(rgb);
        IndexedPng.WriteRgb(dir.File("n.png"), w, h, rgb);
        using var bmp = SKBitmap.Decode(dir.File("n.png"));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var c = bmp.GetPixel(x, y);
                int o = 3 * (y * w + x);
                Assert.Equal((rgb[o], rgb[o + 1], rgb[o + 2]), (c.Red, c.Green, c.Blue));
            }
        var e = Assert.Throws<InvalidDataException>(() => IndexedPng.Read(dir.File("n.png")));
        Assert.Contains("n.png", e.Message);
    }

    [Fact]
    public void VocPaletteMatchesTheStandardColourMap()
    {
        var p = IndexedPng.VocPalette.ToArray();
        Assert.Equal(768, p.Length);
        (byte, byte, byte) At(int i) => (p[3 * i], p[3 * i + 1], p[3 * i + 2]);
        Assert.Equal(((byte)0, (byte)0, (byte)0), At(0));
        Assert.Equal(((byte)128, (byte)0, (byte)0), At(1));      // aeroplane
        Assert.Equal(((byte)0, (byte)128, (byte)0), At(2));      // bicycle
        Assert.Equal(((byte)64, (byte)0, (byte)128), At(12));    // dog
        Assert.Equal(((byte)192, (byte)128, (byte)128), At(15)); // person
        Assert.Equal(((byte)0, (byte)64, (byte)128), At(20));    // tvmonitor
        Assert.Equal(((byte)224, (byte)224, (byte)192), At(255)); // void / ignore
    }

    [Fact]
    public void WriterValidatesArguments()
    {
        using var dir = Fixture.TempDir();
        var img = new IndexedImage(2, 1, [0, 5]);
        Assert.Throws<ArgumentException>(() => IndexedPng.WritePalette(dir.File("p.png"), img, IndexedPng.VocPalette[..12]));
        Assert.Throws<ArgumentException>(() => IndexedPng.WritePalette(dir.File("p.png"), img, new byte[5]));
        Assert.Throws<ArgumentException>(() => new IndexedImage(2, 2, new byte[3]));
        Assert.Throws<ArgumentException>(() => IndexedPng.WriteRgb(dir.File("r.png"), 2, 2, new byte[11]));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Crc32KnownValue() => Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
}
