using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Tests.Data.Formats;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// What the hardening tests attack: a small synthetic PASCAL_MT folder and a model.zip of the tiny4 reference network,
/// made once per test class, and the crafted files (damaged dataset files, PNGs, MAT files) the attacks write.
/// </summary>
public sealed class HardeningData : IDisposable
{
    private readonly TempDir _dir = Fixture.TempDir();

    public HardeningData()
    {
        DataRoot = Path.Combine(_dir.Path, "data");
        SyntheticPascal.Generate(DataRoot, new SyntheticPascalOptions { TrainCount = 2, ValCount = 2, Width = 48, Height = 40, Seed = 5 });
        // Without the parts index every human-parts .mat is read, as the loader does for a download without one.
        Directory.Delete(Path.Combine(DataRoot, "ImageSets", "Parts"), recursive: true);
        ModelPath = Path.Combine(_dir.Path, "model.zip");
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        ml.Model.Save(model, ml.Data.LoadPascalContext(DataRoot, "val").Schema, ModelPath);
    }

    /// <summary>A clean generated PASCAL_MT root: 2 train and 2 val images of 48x40, no parts index.</summary>
    public string DataRoot { get; }

    /// <summary>A model.zip of the tiny4 reference network (all four tasks, 128 px).</summary>
    public string ModelPath { get; }

    /// <summary>A copy of the clean data set in a new folder of <paramref name="dir"/>.</summary>
    internal string CopyData(TempDir dir)
    {
        var root = Path.Combine(dir.Path, "data");
        foreach (var file in Directory.GetFiles(DataRoot, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(root, Path.GetRelativePath(DataRoot, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return root;
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>Crafted damaged files, written the way a broken download, a wrong tool or an attacker leaves them.</summary>
internal static class CraftedFiles
{
    /// <summary>The first id of a split.</summary>
    public static string FirstId(string root, string split) => File.ReadLines(Path.Combine(root, "ImageSets", "Context", split + ".txt")).First().Trim();

    /// <summary>The semseg label path the loader reads for an id (VOC12 first, as the reference).</summary>
    public static string SemsegPath(string root, string id)
    {
        var voc = Path.Combine(root, "semseg", "VOC12", id + ".png");
        return File.Exists(voc) ? voc : Path.Combine(root, "semseg", "pascal-context", id + ".png");
    }

    /// <summary>Damages one file of sample <paramref name="id"/> as <paramref name="fault"/> says; returns the damaged file.</summary>
    public static string Damage(string root, string id, string fault)
    {
        string jpeg = Path.Combine(root, "JPEGImages", id + ".jpg");
        string semseg = SemsegPath(root, id);
        string parts = Path.Combine(root, "human_parts", id + ".mat");
        string context = Path.Combine(root, "pascal-context", "trainval", id + ".mat");
        switch (fault)
        {
            case "truncated-jpeg": Cut(jpeg, 0.5); return jpeg;
            case "empty-jpeg": File.WriteAllBytes(jpeg, []); return jpeg;
            case "garbage-jpeg":
                var garbage = new byte[3000];
                new Random(11).NextBytes(garbage);
                File.WriteAllBytes(jpeg, garbage);
                return jpeg;
            case "rgb-semseg": IndexedPng.WriteRgb(semseg, 48, 40, new byte[48 * 40 * 3]); return semseg;
            case "truncated-png": Cut(semseg, 0.6); return semseg;
            case "idat-crc":
                var png = File.ReadAllBytes(semseg);
                png[IndexOf(png, "IDAT"u8) + 6] ^= 0x20;
                File.WriteAllBytes(semseg, png);
                return semseg;
            case "png-16bit-300":
                var values = new ushort[48 * 40];
                values[5] = 300;
                File.WriteAllBytes(semseg, Gray16Png(48, 40, values));
                return semseg;
            case "class-id-30":
                var classes = new byte[48 * 40];
                classes[100] = 30;
                IndexedPng.WritePalette(semseg, new IndexedImage(48, 40, classes), IndexedPng.VocPalette);
                return semseg;
            case "png-bomb":
                File.WriteAllBytes(semseg, IndexedPngTests.Png(IndexedPngTests.Ihdr(60000, 60000, 8, 0), IndexedPngTests.Chunk("IDAT", IndexedPngTests.Zlib(new byte[16]))));
                return semseg;
            case "truncated-parts-mat": Cut(parts, 0.5); return parts;
            case "wrong-struct-parts-mat":
                // 'anno' without the 'objects' struct array: its second field is a number.
                MatFile.Write(parts, [new MatStructArray("anno", 1, 1, ["imname", "stuff"], [[new MatCharArray("", id), MatNumericArray.Scalar("", 7)]])]);
                return parts;
            case "truncated-context-mat": Cut(context, 0.5); return context;
            case "v73-context-mat": File.WriteAllBytes(context, V73Header()); return context;
            default: throw new ArgumentOutOfRangeException(nameof(fault), fault, null);
        }
    }

    /// <summary>Keeps the first <paramref name="fraction"/> of a file.</summary>
    public static void Cut(string path, double fraction)
    {
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * fraction)]);
    }

    public static int IndexOf(byte[] data, ReadOnlySpan<byte> what) => data.AsSpan().IndexOf(what);

    /// <summary>A MATLAB v7.3 file starts like this: a MAT header whose version is 0x0200, then HDF5 data.</summary>
    public static byte[] V73Header()
    {
        var header = new byte[512];
        Encoding.ASCII.GetBytes("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .").CopyTo(header, 0);
        header[124] = 0x00;
        header[125] = 0x02;
        header[126] = (byte)'I';
        header[127] = (byte)'M';
        new byte[] { 0x89, (byte)'H', (byte)'D', (byte)'F', 0x0d, 0x0a, 0x1a, 0x0a }.CopyTo(header, 128);
        return header;
    }

    /// <summary>A 16-bit grayscale PNG (big-endian samples), as PIL or OpenCV write class maps of type uint16.</summary>
    public static byte[] Gray16Png(int width, int height, ushort[] values)
    {
        var raw = new byte[height * (1 + 2 * width)];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                BinaryPrimitives.WriteUInt16BigEndian(raw.AsSpan(y * (1 + 2 * width) + 1 + 2 * x), values[y * width + x]);
        return IndexedPngTests.Png(IndexedPngTests.Ihdr(width, height, 16, 0), IndexedPngTests.Chunk("IDAT", IndexedPngTests.Zlib(raw)));
    }
}
