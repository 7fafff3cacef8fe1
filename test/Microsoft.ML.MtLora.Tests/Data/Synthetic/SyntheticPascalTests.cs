using Microsoft.ML.Data;
using System.Text.Json;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Synthetic;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Data.Synthetic;

/// <summary>The synthetic PASCAL_MT generator, read back with the format readers and the reference's label rules.</summary>
public class SyntheticPascalTests
{
    // The reference's part grouping (spec §8), written out here independently of the generator.
    private static readonly Dictionary<string, int> PartIds = new()
    {
        ["hair"] = 1, ["head"] = 1, ["lear"] = 1, ["rear"] = 1, ["lebrow"] = 1, ["rebrow"] = 1, ["leye"] = 1, ["reye"] = 1, ["mouth"] = 1, ["nose"] = 1,
        ["neck"] = 2, ["torso"] = 2, ["luarm"] = 3, ["ruarm"] = 3, ["llarm"] = 4, ["rlarm"] = 4, ["lhand"] = 4, ["rhand"] = 4,
        ["luleg"] = 5, ["ruleg"] = 5, ["llleg"] = 6, ["rlleg"] = 6, ["lfoot"] = 6, ["rfoot"] = 6,
    };

    // VOC class -> PASCAL-Context id (context_classes.json) for the classes drawn.
    private static readonly Dictionary<int, int> ContextOfVoc = new()
    {
        [5] = 34, [7] = 59, [8] = 65, [9] = 72, [11] = 397, [12] = 113, [15] = 284, [18] = 368, [20] = 427,
    };

    private static readonly Dictionary<int, string> VocNames = new()
    {
        [5] = "bottle", [7] = "car", [8] = "cat", [9] = "chair", [11] = "diningtable", [12] = "dog", [15] = "person", [18] = "sofa", [20] = "tvmonitor",
    };

    private const int Wall = 440, Floor = 158, Sky = 360, Grass = 187;

    private static SyntheticPascalSummary Make(string dir, int seed = 5, int train = 6, int val = 4, int w = 64, int h = 48) =>
        SyntheticPascal.Generate(dir, new SyntheticPascalOptions { TrainCount = train, ValCount = val, Width = w, Height = h, Seed = seed });

    private static (byte[] Rgb, int W, int H) DecodeRgb(string path)
    {
        using var bmp = SKBitmap.Decode(path) ?? throw new InvalidDataException($"Skia cannot decode {path}");
        var rgb = new byte[bmp.Width * bmp.Height * 3];
        for (int y = 0; y < bmp.Height; y++)
            for (int x = 0; x < bmp.Width; x++)
            {
                var c = bmp.GetPixel(x, y);
                int o = 3 * (y * bmp.Width + x);
                (rgb[o], rgb[o + 1], rgb[o + 2]) = (c.Red, c.Green, c.Blue);
            }
        return (rgb, bmp.Width, bmp.Height);
    }

    [Fact]
    public void WritesThePascalMtLayoutAndSplitLists()
    {
        using var dir = Fixture.TempDir();
        var s = Make(dir.Path);
        Assert.Equal(["2008_000001", "2008_000002", "2008_000003", "2008_000004", "2008_000005", "2008_000006"], s.TrainIds);
        Assert.Equal(["2008_000007", "2008_000008", "2008_000009", "2008_000010"], s.ValIds);
        Assert.Equal(string.Join("", s.TrainIds.Select(i => i + "\n")), File.ReadAllText(Path.Combine(dir.Path, "ImageSets/Context/train.txt")));
        Assert.Equal(string.Join("", s.ValIds.Select(i => i + "\n")), File.ReadAllText(Path.Combine(dir.Path, "ImageSets/Context/val.txt")));

        foreach (var id in s.TrainIds.Concat(s.ValIds))
        {
            foreach (var rel in new[] { $"JPEGImages/{id}.jpg", $"semseg/pascal-context/{id}.png", $"human_parts/{id}.mat",
                                        $"normals_distill/{id}.png", $"sal_distill/{id}.png", $"pascal-context/trainval/{id}.mat" })
                Assert.True(File.Exists(Path.Combine(dir.Path, rel)), rel);
            var (_, w, h) = DecodeRgb(Path.Combine(dir.Path, $"JPEGImages/{id}.jpg"));
            Assert.Equal((64, 48), (w, h));
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*", SearchOption.AllDirectories));

        // ImageSets/Parts: the json.dump format, {id: [class_ind of each object in human_parts/<id>.mat, -1 if empty]}.
        foreach (var (split, ids) in new[] { ("train", s.TrainIds), ("val", s.ValIds) })
        {
            var text = File.ReadAllText(Path.Combine(dir.Path, $"ImageSets/Parts/{split}.txt"));
            Assert.StartsWith("{\"" + ids[0] + "\": [", text);
            using var json = JsonDocument.Parse(text);
            Assert.Equal(ids, json.RootElement.EnumerateObject().Select(p => p.Name));
            foreach (var p in json.RootElement.EnumerateObject())
            {
                var objects = Objects(dir.Path, p.Name);
                var expected = Enumerable.Range(0, objects.Count).Select(o =>
                    ((byte[])((MatNumericArray)objects.Get(o, 2)).Data).Any(v => v != 0) ? (int)((MatNumericArray)objects.Get(o, 1)).GetDouble(0) : -1);
                Assert.Equal(expected, p.Value.EnumerateArray().Select(e => e.GetInt32()));
            }
            // Image 0 of each split holds an annotated person, image 1 no person (the generator's plan).
            Assert.Contains(15, json.RootElement.GetProperty(ids[0]).EnumerateArray().Select(e => e.GetInt32()));
            Assert.DoesNotContain(15, json.RootElement.GetProperty(ids[1]).EnumerateArray().Select(e => e.GetInt32()));
        }
        Assert.True(s.TrainWithHumanParts >= 2);
        Assert.True(s.ValWithHumanParts >= 1);
    }

    private static MatStructArray Objects(string root, string id)
    {
        var anno = Assert.IsType<MatStructArray>(MatFile.Read(Path.Combine(root, $"human_parts/{id}.mat"))["anno"]);
        Assert.Equal(["imname", "objects"], anno.FieldNames);
        Assert.Equal(id, Assert.IsType<MatCharArray>(anno.Get(0, 0)).Value);
        var objects = Assert.IsType<MatStructArray>(anno.Get(0, 1));
        Assert.Equal(["class", "class_ind", "mask", "parts"], objects.FieldNames);
        return objects;
    }

    [Fact]
    public void LabelsAgreeAcrossTasksAndFollowTheReferenceEncodings()
    {
        using var dir = Fixture.TempDir();
        const int w = 80, h = 60;
        var s = Make(dir.Path, seed: 11, train: 10, val: 6, w: w, h: h);
        var partIdsSeen = new HashSet<int>();
        int personsWithParts = 0, personsWithoutParts = 0, wallPixels = 0, floorPixels = 0, skyPixels = 0;
        foreach (var id in s.TrainIds.Concat(s.ValIds))
        {
            var sem = IndexedPng.Read(Path.Combine(dir.Path, $"semseg/pascal-context/{id}.png"));
            var sal = IndexedPng.Read(Path.Combine(dir.Path, $"sal_distill/{id}.png"));
            var lm = Assert.IsType<MatNumericArray>(MatFile.Read(Path.Combine(dir.Path, $"pascal-context/trainval/{id}.mat"))["LabelMap"]);
            Assert.Equal(MatClass.UInt16, lm.Class);
            var labels = lm.ToRowMajorInt32(out int rows, out int cols);
            Assert.Equal((h, w), (rows, cols));
            var (normalsRgb, nw, nh) = DecodeRgb(Path.Combine(dir.Path, $"normals_distill/{id}.png"));
            Assert.Equal((w, h), (nw, nh));
            var (image, _, _) = DecodeRgb(Path.Combine(dir.Path, $"JPEGImages/{id}.jpg"));

            // Semantic classes 0..20 only; objects are salient; LabelMap carries the matching PASCAL-Context ids.
            var owner = new int[w * h];
            Array.Fill(owner, -1);
            var objects = Objects(dir.Path, id);
            for (int o = 0; o < objects.Count; o++)
            {
                int cls = (int)((MatNumericArray)objects.Get(o, 1)).GetDouble(0);
                Assert.Equal(VocNames[cls], ((MatCharArray)objects.Get(o, 0)).Value);
                var maskArray = (MatNumericArray)objects.Get(o, 2);
                Assert.Equal(MatClass.UInt8, maskArray.Class);
                var mask = maskArray.ToRowMajorInt32(out int mr, out int mc);
                Assert.Equal((h, w), (mr, mc));
                for (int i = 0; i < mask.Length; i++)
                {
                    if (mask[i] == 0) continue;
                    Assert.Equal(-1, owner[i]); // instance masks do not overlap
                    owner[i] = o;
                    Assert.Equal(cls, sem.Pixels[i]);
                    Assert.Equal(ContextOfVoc[cls], labels[i]);
                }

                var parts = objects.Get(o, 3);
                if (cls != 15)
                {
                    Assert.Equal(0, parts.Count);
                    continue;
                }
                if (parts.Count == 0) { personsWithoutParts++; continue; }
                personsWithParts++;
                // Reference positional access: part[0] = part_name, part[1] = mask. Parts tile the person exactly.
                var ps = Assert.IsType<MatStructArray>(parts);
                Assert.Equal(["part_name", "mask"], ps.FieldNames);
                var covered = new int[w * h];
                for (int p = 0; p < ps.Count; p++)
                {
                    var name = ((MatCharArray)ps.Get(p, 0)).Value;
                    Assert.True(PartIds.ContainsKey(name), name);
                    var pm = ((MatNumericArray)ps.Get(p, 1)).ToRowMajorInt32(out _, out _);
                    for (int i = 0; i < pm.Length; i++)
                        if (pm[i] != 0)
                        {
                            covered[i]++;
                            partIdsSeen.Add(PartIds[name]);
                        }
                }
                for (int i = 0; i < mask.Length; i++) Assert.Equal(mask[i], covered[i]);
            }

            for (int i = 0; i < w * h; i++)
            {
                Assert.InRange(sem.Pixels[i], 0, 20);
                Assert.Equal(sem.Pixels[i] > 0 ? 255 : 0, sal.Pixels[i]);
                Assert.Equal(sem.Pixels[i] > 0, owner[i] >= 0);
                if (sem.Pixels[i] == 0) Assert.True(labels[i] is Wall or Floor or Sky or Grass, $"background id {labels[i]}");

                // Normals decode to unit vectors (n = 2v/255 - 1); walls face the camera and floors face up.
                var n = new double[3];
                for (int ch = 0; ch < 3; ch++) n[ch] = 2.0 * normalsRgb[3 * i + ch] / 255 - 1;
                Assert.InRange(Math.Sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]), 0.97, 1.03);
                if (labels[i] == Wall) { wallPixels++; Assert.True(n[2] > 0.99, $"wall normal {string.Join(",", n)}"); }
                if (labels[i] == Floor) { floorPixels++; Assert.True(n[1] > 0.75 && Math.Abs(n[0]) < 0.02, $"floor normal {string.Join(",", n)}"); }
            }

            // What the labels say is visible: the sky is blue, the grass green (means over the region).
            double Mean(int label, int channel) => Enumerable.Range(0, w * h).Where(i => labels[i] == label).Average(i => (double)image[3 * i + channel]);
            if (labels.Contains(Sky)) { skyPixels++; Assert.True(Mean(Sky, 2) > Mean(Sky, 0) + 40); }
            if (labels.Contains(Grass)) Assert.True(Mean(Grass, 1) > Mean(Grass, 0) + 30);
        }
        Assert.Equal([1, 2, 3, 4, 5, 6], partIdsSeen.Order());
        Assert.True(personsWithParts >= 4, $"{personsWithParts} persons with parts");
        Assert.True(wallPixels > 0 && floorPixels > 0 && skyPixels > 0, "both indoor and outdoor scenes");
        _ = personsWithoutParts;
    }

    [Fact]
    public void SameSeedSameBytesOtherSeedOtherScenes()
    {
        using var a = Fixture.TempDir();
        using var b = Fixture.TempDir();
        using var c = Fixture.TempDir();
        Make(a.Path, seed: 3);
        Make(b.Path, seed: 3);
        Make(c.Path, seed: 4);
        var files = Directory.GetFiles(a.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(a.Path, f)).Order().ToList();
        Assert.Equal(6 * 10 + 4, files.Count);
        Assert.Equal(files, Directory.GetFiles(b.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(b.Path, f)).Order());
        foreach (var f in files)
            Assert.True(File.ReadAllBytes(Path.Combine(a.Path, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(b.Path, f))), f);
        Assert.False(File.ReadAllBytes(Path.Combine(a.Path, "JPEGImages/2008_000003.jpg")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(c.Path, "JPEGImages/2008_000003.jpg"))));
    }

    [Fact]
    public void OptionsAreValidatedByName()
    {
        using var dir = Fixture.TempDir();
        var defaults = new SyntheticPascalOptions();
        Assert.Equal((160, 120), (defaults.Width, defaults.Height));
        Assert.Contains("TrainCount", Assert.Throws<ArgumentException>(() => SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { TrainCount = -1 })).Message);
        Assert.Contains("Width", Assert.Throws<ArgumentException>(() => SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { Width = 8 })).Message);
        Assert.Contains("TrainCount + ValCount", Assert.Throws<ArgumentException>(() => SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { TrainCount = 0, ValCount = 0 })).Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Realistic_sizes_look_like_pascal_photos_with_some_grayscale_jpegs_and_matching_labels()
    {
        using var dir = Fixture.TempDir();
        var s = SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { TrainCount = 24, ValCount = 0, RealisticSizes = true, Seed = 2 });
        Assert.True(s.RealisticSizes);
        int portrait = 0, landscape = 0, gray = 0;
        string? grayId = null;
        foreach (var id in s.TrainIds)
        {
            using var codec = SKCodec.Create(Path.Combine(dir.Path, "JPEGImages", id + ".jpg"));
            int w = codec.Info.Width, h = codec.Info.Height;
            Assert.Equal(500, Math.Max(w, h));
            Assert.InRange(Math.Min(w, h), 281, 400);
            if (w > h) landscape++; else portrait++;
            if (codec.Info.ColorType == SKColorType.Gray8) { gray++; grayId ??= id; }
            // Every label follows the image's size.
            var semseg = IndexedPng.Read(Path.Combine(dir.Path, "semseg", "pascal-context", id + ".png"));
            Assert.Equal((w, h), (semseg.Width, semseg.Height));
            var labelMap = (MatNumericArray)MatFile.Read(Path.Combine(dir.Path, "pascal-context", "trainval", id + ".mat"))["LabelMap"];
            Assert.Equal([h, w], labelMap.Dimensions);
        }
        Assert.True(portrait > 0 && landscape > portrait, $"{landscape} landscape, {portrait} portrait");
        Assert.True(gray > 0, "no grayscale JPEG among 24 images");
        Assert.True(gray < 6, $"{gray} grayscale JPEGs among 24 images");

        // A grayscale JPEG reads as RGB with R = G = B, as PIL's convert('RGB') gives.
        var view = new MLContext().Data.LoadPascalContext(dir.Path, "train");
        using var cursor = view.GetRowCursor(view.Schema);
        var image = cursor.GetGetter<MLImage>(view.Schema["Image"]);
        var idGetter = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
        bool seen = false;
        while (cursor.MoveNext())
        {
            ReadOnlyMemory<char> id = default;
            idGetter(ref id);
            if (id.ToString() != grayId) continue;
            MLImage img = null!;
            image(ref img);
            using (img)
            {
                var px = img.Pixels;
                for (int i = 0; i < px.Length; i += 4) Assert.True(px[i] == px[i + 1] && px[i + 1] == px[i + 2], $"pixel {i / 4} is not gray");
            }
            seen = true;
        }
        Assert.True(seen);
    }
}
