using System.Diagnostics;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.Data.Pascal;
using SkiaSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>Reads PASCAL-sized samples (500x375, all four tasks) into 448x448 batches of 16 and reports images/s.</summary>
public class DenseBatchThroughputTests(ITestOutputHelper output)
{
    private const int Width = 500, Height = 375, Count = 16;

    private static void WriteRealisticSample(PascalTestDataset ds, string id, int seed)
    {
        var rng = new Random(seed);
        using (var bitmap = new SKBitmap(Width, Height, SKColorType.Rgba8888, SKAlphaType.Opaque))
        {
            var px = new byte[Width * Height * 4];
            for (int y = 0; y < Height; y++)
                for (int x = 0; x < Width; x++)
                {
                    int i = (y * Width + x) * 4;
                    px[i] = (byte)(x / 2 + rng.Next(30));
                    px[i + 1] = (byte)(y / 2 + rng.Next(30));
                    px[i + 2] = (byte)((x + y) / 4 + rng.Next(30));
                    px[i + 3] = 255;
                }
            System.Runtime.InteropServices.Marshal.Copy(px, 0, bitmap.GetPixels(), px.Length);
            using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
            Directory.CreateDirectory(ds.PathOf("JPEGImages"));
            File.WriteAllBytes(ds.PathOf("JPEGImages", id + ".jpg"), data.ToArray());
        }
        int n = Width * Height;
        var semseg = new byte[n];
        var sal = new byte[n];
        var rgb = new byte[3 * n];
        var labelMap = new int[n];
        var person = new byte[n];
        var head = new byte[n];
        for (int y = 0; y < Height; y++)
            for (int x = 0; x < Width; x++)
            {
                int i = y * Width + x;
                bool inBox = x > 150 && x < 350 && y > 50 && y < 350;
                semseg[i] = inBox ? (byte)15 : (byte)0;
                sal[i] = inBox ? (byte)230 : (byte)10;
                rgb[3 * i] = (byte)(128 + x / 8);
                rgb[3 * i + 1] = (byte)(128 + y / 8);
                rgb[3 * i + 2] = 60;
                labelMap[i] = y < 100 ? 360 : 440;
                person[i] = inBox ? (byte)1 : (byte)0;
                head[i] = inBox && y < 120 ? (byte)1 : (byte)0;
            }
        ds.WriteSemseg(id, Width, Height, semseg);
        ds.WriteSaliency(id, Width, Height, sal);
        ds.WriteNormals(id, Width, Height, rgb, labelMap);
        ds.WriteHumanParts(id, Width, Height, new PartObject(15, person, [("head", head), ("torso", person.Zip(head, (p, h) => (byte)(p & (1 - h))).ToArray())]));
    }

    [Fact]
    public void Batches_of_16_at_448_are_produced_and_timed()
    {
        using var ds = new PascalTestDataset();
        var ids = Enumerable.Range(0, Count).Select(i => $"2008_{i:D6}").ToArray();
        ds.WriteSplit("train", ids);
        for (int i = 0; i < Count; i++) WriteRealisticSample(ds, ids[i], i);
        var view = new MLContext().Data.LoadPascalContext(ds.Root, "train");

        foreach (var augment in new[] { true, false })
        {
            var options = new DenseBatchReaderOptions { BatchSize = Count, ImageSize = 448, Augment = augment, Shuffle = augment, Seed = 1 };
            var reader = new DenseBatchReader(view, options);
            using (var warm = reader.ReadEpoch(0).Single()) { }
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            const int epochs = 1;
            for (int e = 1; e <= epochs; e++)
            {
                using var batch = reader.ReadEpoch(e).Single();
                Assert.Equal([Count, 3L, 448, 448], batch.Images.shape);
                Assert.Equal([Count, 3L, 448, 448], batch.Targets[DenseTask.SurfaceNormals].shape);
                Assert.True(batch.Targets[DenseTask.HumanParts].lt(255).any().item<bool>());
            }
            double perSecond = epochs * Count / watch.Elapsed.TotalSeconds;
            double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            output.WriteLine($"{(augment ? "training (flip+rotate/scale)" : "evaluation")}: {perSecond:F1} images/s wall, " +
                $"{epochs * Count / cpuSeconds:F1} images per CPU-second; batch {Count} at 448 from 500x375 JPEG + 4 label files, " +
                $"{Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        }
    }
}
