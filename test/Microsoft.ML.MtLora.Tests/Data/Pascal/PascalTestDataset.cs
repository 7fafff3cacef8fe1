using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Data.Pascal;

/// <summary>A person object of a hand-made Pascal-Part annotation: its instance mask and its parts (name, mask).</summary>
internal sealed record PartObject(int ClassInd, byte[] Mask, (string Name, byte[] Mask)[] Parts);

/// <summary>Writes small PASCAL_MT folders for tests: images (lossless PNG bytes under .jpg unless JPEG asked), labels, .mat files.</summary>
internal sealed class PascalTestDataset : IDisposable
{
    private readonly TempDir _dir = Fixture.TempDir();

    public string Root => _dir.Path;

    public string PathOf(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    public void WriteSplit(string split, params string[] ids)
    {
        Directory.CreateDirectory(PathOf("ImageSets", "Context"));
        File.WriteAllLines(PathOf("ImageSets", "Context", split + ".txt"), ids);
    }

    public void WritePartsIndex(string split, string json)
    {
        Directory.CreateDirectory(PathOf("ImageSets", "Parts"));
        File.WriteAllText(PathOf("ImageSets", "Parts", split + ".txt"), json);
    }

    /// <summary>An RGB image, written losslessly (PNG bytes; decoders sniff the content, not the extension).</summary>
    public void WriteImage(string id, int width, int height, Func<int, int, (byte R, byte G, byte B)> pixel)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b) = pixel(x, y);
                int i = (y * width + x) * 3;
                rgb[i] = r; rgb[i + 1] = g; rgb[i + 2] = b;
            }
        Directory.CreateDirectory(PathOf("JPEGImages"));
        IndexedPng.WriteRgb(PathOf("JPEGImages", id + ".jpg"), width, height, rgb);
    }

    /// <summary>A real JPEG (lossy) of a flat colour.</summary>
    public void WriteJpeg(string id, int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        bitmap.Erase(color);
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        Directory.CreateDirectory(PathOf("JPEGImages"));
        File.WriteAllBytes(PathOf("JPEGImages", id + ".jpg"), data.ToArray());
    }

    public void WriteSemseg(string id, int width, int height, byte[] classes, bool palette = true, string folder = "VOC12")
    {
        Directory.CreateDirectory(PathOf("semseg", folder));
        var image = new IndexedImage(width, height, classes);
        var path = PathOf("semseg", folder, id + ".png");
        if (palette) IndexedPng.WritePalette(path, image, IndexedPng.VocPalette);
        else IndexedPng.WriteGray(path, image);
    }

    public void WriteSaliency(string id, int width, int height, byte[] values)
    {
        Directory.CreateDirectory(PathOf("sal_distill"));
        IndexedPng.WriteGray(PathOf("sal_distill", id + ".png"), new IndexedImage(width, height, values));
    }

    /// <summary>Normals PNG (interleaved RGB bytes) and the PASCAL-Context LabelMap that masks them.</summary>
    public void WriteNormals(string id, int width, int height, byte[] rgb, int[] labelMap, int? labelRows = null, int? labelCols = null)
    {
        Directory.CreateDirectory(PathOf("normals_distill"));
        IndexedPng.WriteRgb(PathOf("normals_distill", id + ".png"), width, height, rgb);
        Directory.CreateDirectory(PathOf("pascal-context", "trainval"));
        var map = labelMap.Select(v => (ushort)v).ToArray();
        MatFile.Write(PathOf("pascal-context", "trainval", id + ".mat"),
            [MatNumericArray.FromRowMajor("LabelMap", labelRows ?? height, labelCols ?? width, map)]);
    }

    /// <summary>A Pascal-Part annotation: anno = struct(imname, objects(class, class_ind, mask, parts(part_name, mask))).</summary>
    public void WriteHumanParts(string id, int width, int height, params PartObject[] objects)
    {
        Directory.CreateDirectory(PathOf("human_parts"));
        var objectValues = objects.Select(o =>
        {
            MatArray parts = o.Parts.Length == 0
                ? MatNumericArray.Empty("")
                : new MatStructArray("", 1, o.Parts.Length, ["part_name", "mask"],
                    o.Parts.Select(p => new MatArray[] { new MatCharArray("", p.Name), MatNumericArray.FromRowMajor("", height, width, p.Mask) }).ToArray());
            return new MatArray[]
            {
                new MatCharArray("", o.ClassInd == 15 ? "person" : "other"),
                MatNumericArray.Scalar("", o.ClassInd),
                MatNumericArray.FromRowMajor("", height, width, o.Mask),
                parts,
            };
        }).ToArray();
        MatArray objectArray = objects.Length == 0
            ? MatNumericArray.Empty("")
            : new MatStructArray("", 1, objects.Length, ["class", "class_ind", "mask", "parts"], objectValues);
        var anno = new MatStructArray("anno", 1, 1, ["imname", "objects"], [[new MatCharArray("", id), objectArray]]);
        MatFile.Write(PathOf("human_parts", id + ".mat"), [anno]);
    }

    /// <summary>
    /// A complete sample for all four tasks with simple labels: image w×h of a gradient, semseg all class 1, saliency
    /// all 200 (→ 1), normals (255, 128, 0) with every LabelMap pixel a valid class (440 wall), no person.
    /// </summary>
    public void WriteSimpleSample(string id, int width = 6, int height = 4)
    {
        int n = width * height;
        WriteImage(id, width, height, (x, y) => ((byte)(x * 10), (byte)(y * 10), 50));
        WriteSemseg(id, width, height, Enumerable.Repeat((byte)1, n).ToArray());
        WriteSaliency(id, width, height, Enumerable.Repeat((byte)200, n).ToArray());
        var rgb = new byte[n * 3];
        for (int i = 0; i < n; i++) { rgb[3 * i] = 255; rgb[3 * i + 1] = 128; rgb[3 * i + 2] = 0; }
        WriteNormals(id, width, height, rgb, Enumerable.Repeat(440, n).ToArray());
        WriteHumanParts(id, width, height);
    }

    public void Dispose() => _dir.Dispose();
}
