using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Tests.Cli;
using MtLora.Cli.Commands;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// predict over real folders: every readable image is predicted, each bad file is named on its own line, the exit code
/// says whether any failed; a truncated PNG is refused as a truncated JPEG is; a huge image is read downscaled with
/// bounded memory, or refused above a stated size, never decoded whole.
/// </summary>
[Collection(SerialCollection.Name)]
public class PredictFolderTests(TrainedCliModel trained) : IClassFixture<TrainedCliModel>
{
    private static readonly string[] Tasks = ["semseg", "human_parts", "sal", "normals"];

    private string[] GoodImages => Directory.GetFiles(Path.Combine(trained.DataRoot, "JPEGImages"), "*.jpg").Order(StringComparer.Ordinal).Take(2).ToArray();

    /// <summary>A noisy PNG, so that its pixel data (IDAT) is most of the file and cutting it in half cuts the pixels.</summary>
    private static byte[] Png(int width, int height)
    {
        using var bitmap = new SKBitmap(width, height);
        var random = new Random(5);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)));
        return Microsoft.ML.MtLora.Visualization.PngFile.Encode(bitmap);
    }

    /// <summary>A folder with two good JPEGs and four bad files (truncated PNG and JPEG, garbage, empty).</summary>
    private (TempDir Dir, string[] Bad) MixedFolder()
    {
        var dir = Fixture.TempDir();
        foreach (var good in GoodImages) File.Copy(good, Path.Combine(dir.Path, Path.GetFileName(good)));
        var png = Png(64, 48);
        var jpeg = File.ReadAllBytes(GoodImages[0]);
        var bad = new[] { "cut.png", "cut.jpg", "garbage.jpg", "empty.png" }.Select(n => Path.Combine(dir.Path, n)).ToArray();
        File.WriteAllBytes(bad[0], png[..(png.Length / 2)]);
        File.WriteAllBytes(bad[1], jpeg[..(jpeg.Length / 2)]);
        File.WriteAllText(bad[2], "this is not a JPEG");
        File.WriteAllBytes(bad[3], []);
        return (dir, bad);
    }

    [Fact]
    public void AFolderWithBadFilesPredictsEveryGoodImageNamesEachBadOneAndExits1()
    {
        var (dir, bad) = MixedFolder();
        using var cleanup = dir;
        using var outDir = Fixture.TempDir();
        var (code, stdout, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", dir.Path, "--out", outDir.Path, "--grid");
        Assert.Equal(1, code);

        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (var file in bad)
            Assert.Single(lines, l => l.StartsWith($"mtlora predict: cannot read '{file}': ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"mtlora predict: cannot read '{bad[0]}': the file is truncated or damaged", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"mtlora predict: cannot read '{bad[1]}': the file is truncated or damaged", StringComparison.Ordinal));
        Assert.Equal("mtlora predict: error: 4 of 6 images could not be read (each named above); 2 were predicted.", lines[^1]);

        var json = JsonNode.Parse(stdout)!;
        Assert.Equal(2, json["images"]!.GetValue<int>());
        Assert.Equal(bad.Order(StringComparer.Ordinal), json["failed"]!.AsArray().Select(f => f!["file"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        foreach (var good in GoodImages)
            foreach (var task in Tasks.Append("grid"))
                Assert.True(File.Exists(Path.Combine(outDir.Path, $"{Path.GetFileNameWithoutExtension(good)}.{task}.png")));
        Assert.Equal(2 * 5, Directory.GetFiles(outDir.Path).Length); // nothing for the bad files, and no temporaries
    }

    [Fact]
    public void WhenNoImageCanBeReadTheExitCodeIs2()
    {
        var (dir, bad) = MixedFolder();
        using var cleanup = dir;
        foreach (var good in GoodImages) File.Delete(Path.Combine(dir.Path, Path.GetFileName(good)));
        using var outDir = Fixture.TempDir();
        var (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", dir.Path, "--out", outDir.Path);
        Assert.Equal(2, code);
        Assert.EndsWith("mtlora predict: error: 4 of 4 images could not be read (each named above); 0 were predicted.", stderr.Trim());

        // One truncated PNG given alone: one line naming it and the cause, and exit 2.
        (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", bad[0], "--out", outDir.Path);
        Assert.Equal(2, code);
        Assert.Contains($"mtlora predict: cannot read '{bad[0]}': the file is truncated or damaged (SkiaSharp: IncompleteInput)", stderr);
        Assert.Empty(Directory.GetFiles(outDir.Path));
    }

    [Fact]
    public void AFullDiskStopsWithOneLineNamingThePngAndLeavesNoTemporary()
    {
        using var outDir = Fixture.TempDir();
        int code;
        string stderr;
        using (FullDisk.For(p => p.EndsWith(".sal.png", StringComparison.Ordinal), capacity: 0))
            (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", GoodImages[0], "--out", outDir.Path);
        Assert.Equal(2, code);
        var name = Path.GetFileNameWithoutExtension(GoodImages[0]);
        Assert.Equal($"mtlora predict: error: cannot write '{Path.Combine(outDir.Path, name + ".sal.png")}': No space left on device.", stderr.Trim());
        Assert.Empty(FullDisk.Temporaries(outDir.Path));

        // --out naming a file is refused before any image is read.
        var file = Path.Combine(outDir.Path, "a-file");
        File.WriteAllText(file, "");
        (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", GoodImages[0], "--out", file);
        Assert.Equal(2, code);
        Assert.Contains("--out: '", stderr);
        Assert.Contains("is a file; expected a folder", stderr);
    }

    [Fact]
    public void AnImageAboveTheLimitIsPredictedDownscaledWithANote()
    {
        using var dir = Fixture.TempDir();
        var big = Path.Combine(dir.Path, "big.bmp");
        TestImages.WriteBmp(big, 4200, 4100); // 17.2 MP, above 16.8: read at half size, line by line
        using var outDir = Fixture.TempDir();
        var (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", big, "--out", outDir.Path);
        Assert.True(code == 0, stderr);
        Assert.Contains($"mtlora predict: note: '{big}': the image is 4200x4100 (17.2 MP), above predict's 16.8 MP: read and predicted at 2100x2050.", stderr);
        using var semseg = SKBitmap.Decode(Path.Combine(outDir.Path, "big.semseg.png"));
        Assert.Equal((2100, 2050), (semseg.Width, semseg.Height));
    }

    [Fact]
    public void ALargeBmpIsReadLineByLineIntoABoundedAveragedImage()
    {
        using var dir = Fixture.TempDir();
        var path = Path.Combine(dir.Path, "big.bmp");
        TestImages.WriteBmp(path, 6000, 6000); // 36 MP: 144 MB decoded whole

        long allocated = GC.GetAllocatedBytesForCurrentThread();
        using var image = PredictImageReader.Read(path, out var note);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.Equal((3000, 3000), (image.Width, image.Height)); // 6000 / 2: the smallest factor within 16.8 MP
        Assert.Contains("6000x6000 (36.0 MP)", note);
        Assert.InRange(allocated, 0, 60_000_000); // the 36 MB result and one row, not the 144 MB of the whole image

        // Each output pixel is the mean of its 2×2 block; the test pattern is constant on those blocks. The BMP's rows
        // are stored bottom-up, so this also checks the orientation.
        var pixels = image.Pixels;
        foreach (var (x, y) in new[] { (0, 0), (1, 0), (0, 1), (1234, 987), (2999, 2999) })
        {
            int i = (y * 3000 + x) * 4;
            var (r, g, b) = TestImages.Value(2 * x, 2 * y);
            Assert.Equal([r, g, b, 255], pixels.Slice(i, 4).ToArray());
        }
    }

    [Fact]
    public void AJpegAboveTheLimitIsDecodedAtAReducedScaleByTheDecoder()
    {
        using var dir = Fixture.TempDir();
        var path = Path.Combine(dir.Path, "photo.jpg");
        using (var bitmap = new SKBitmap(5000, 4000))
        {
            bitmap.Erase(new SKColor(30, 160, 90));
            using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(path, data.ToArray());
        }
        using var image = PredictImageReader.Read(path, out var note);
        Assert.Equal((2500, 2000), (image.Width, image.Height));
        Assert.Contains("5000x4000 (20.0 MP)", note);
        var p = image.Pixels.Slice((1000 * 2500 + 1000) * 4, 4).ToArray();
        Assert.InRange(p[0], 25, 35); // RGBA: the colour survives the scaled decode (JPEG rounding aside)
        Assert.InRange(p[1], 155, 165);
    }

    [Theory]
    [InlineData(16000, 16000, "the image is 16000x16000 (256.0 MP), above the 16.8 MP predict reads whole (e.g. 4096x4096), and a Png file cannot be read downscaled (JPEG and BMP can); shrink it first")]
    [InlineData(20000, 20000, "the image is 20000x20000 (400 MP), above the largest predict reads (268 MP, e.g. 16384x16384); shrink it first")]
    public void APngAboveTheLimitIsRefusedBeforeItIsDecoded(int width, int height, string expected)
    {
        using var dir = Fixture.TempDir();
        var path = Path.Combine(dir.Path, "bomb.png");
        TestImages.WritePngStart(path, width, height); // what a decompression bomb starts with: a huge size, a few bytes of data
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => PredictImageReader.Read(path, out _));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - allocated, 0, 1_000_000);
        Assert.Equal(expected, e.Message);

        using var outDir = Fixture.TempDir();
        var (code, _, stderr) = CliVerbTests.Invoke("predict", "--model", trained.ModelPath, "--image", path, "--out", outDir.Path);
        Assert.Equal(2, code);
        Assert.Contains($"mtlora predict: cannot read '{path}': {expected}.", stderr);
    }

    /// <summary>Large test images written row by row (never whole in memory).</summary>
    private static class TestImages
    {
        /// <summary>The test pattern: constant on 4×4 blocks.</summary>
        public static (byte R, byte G, byte B) Value(int x, int y) => ((byte)((x / 4 + y / 4) % 256), (byte)(x / 4 % 256), (byte)(y / 4 % 256));

        /// <summary>A 24-bit BMP (rows stored bottom-up, as BMPs are).</summary>
        public static void WriteBmp(string path, int width, int height)
        {
            int stride = (width * 3 + 3) / 4 * 4;
            using var file = new BufferedStream(File.Create(path), 1 << 20);
            var header = new byte[54];
            header[0] = (byte)'B';
            header[1] = (byte)'M';
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(2), 54 + stride * height);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(10), 54);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(14), 40);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(18), width);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(22), height);
            BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(26), 1);
            BinaryPrimitives.WriteInt16LittleEndian(header.AsSpan(28), 24);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(34), stride * height);
            file.Write(header);
            var row = new byte[stride];
            for (int y = height - 1; y >= 0; y--)
            {
                for (int x = 0; x < width; x++)
                {
                    var (r, g, b) = Value(x, y);
                    (row[3 * x], row[3 * x + 1], row[3 * x + 2]) = (b, g, r);
                }
                file.Write(row);
            }
        }

        /// <summary>The start of a PNG: signature, IHDR of the given size, and an IDAT holding its first row only.</summary>
        public static void WritePngStart(string path, int width, int height)
        {
            using var idat = new MemoryStream();
            using (var z = new ZLibStream(idat, CompressionLevel.Fastest, leaveOpen: true)) z.Write(new byte[width + 1]);
            using var file = File.Create(path);
            file.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
            var ihdr = new byte[13];
            BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
            BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
            ihdr[8] = 8; // bit depth; colour type 0 (gray), compression 0, filter 0, no interlace
            Chunk(file, "IHDR", ihdr);
            Chunk(file, "IDAT", idat.ToArray());
        }

        private static void Chunk(Stream s, string type, byte[] data)
        {
            Span<byte> head = stackalloc byte[8];
            BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
            Encoding.ASCII.GetBytes(type, head[4..]);
            s.Write(head);
            s.Write(data);
            Span<byte> crc = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.Update(Crc32.Update(0xFFFFFFFFu, head[4..]), data) ^ 0xFFFFFFFFu);
            s.Write(crc);
        }
    }
}
