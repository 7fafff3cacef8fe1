using System.Globalization;
using System.Runtime.ExceptionServices;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data.Synthetic;

/// <summary>
/// Writes a small synthetic dataset in the exact PASCAL_MT layout the reference reads (reference spec §8), for tests,
/// demos and smoke runs without the 3 GB archive.
/// </summary>
/// <remarks>
/// <para>Layout written under the root:</para>
/// <code>
/// JPEGImages/&lt;id&gt;.jpg                 RGB JPEG
/// ImageSets/Context/{train,val}.txt    one id per line
/// ImageSets/Parts/{train,val}.txt      JSON {id: [VOC class of each object in human_parts/&lt;id&gt;.mat, -1 if not visible]}
/// semseg/pascal-context/&lt;id&gt;.png      8-bit palette PNG (VOC colour map), values 0..20
/// human_parts/&lt;id&gt;.mat                Pascal-Part: anno = struct(imname, objects(class, class_ind, mask, parts(part_name, mask)))
/// normals_distill/&lt;id&gt;.png           RGB PNG, n = 2v/255 - 1 (R = x, G = y, B = z)
/// sal_distill/&lt;id&gt;.png               8-bit gray PNG, 255 on objects
/// pascal-context/trainval/&lt;id&gt;.mat    LabelMap (uint16 H×W, PASCAL-Context ids)
/// </code>
/// <para>Scenes are learnable: indoor scenes have a wall (context 440) and a floor (158), outdoor ones sky (360) and grass
/// (187), each with its own colour and texture; objects (cat, dog, car, bottle, chair, sofa, tv monitor, table, person)
/// have their own shapes and textures; persons are figures with head, torso, arms and legs whose parts are annotated
/// (names as in Pascal-Part: head, hair, neck, torso, luarm, llarm, lhand, luleg, llleg, lfoot and the right-hand ones);
/// saliency is every object; every surface is shaded by its normal (walls face the camera, floors face up, objects are
/// capsules, ellipsoids, cylinders and boxes), so normals can be read off the shading. Sky and grass have no valid normals
/// in the reference's class list, so the normals mask matters.</para>
/// <para>In each split, image 0, 4, 8, … holds a person with annotated parts and image 1, 5, 9, … holds no person;
/// the others are random (some persons without part annotations).</para>
/// </remarks>
public static class SyntheticPascal
{
    internal const int MaxImages = 999_999;

    /// <summary>Generates the dataset. Existing files of the same names are replaced (each file atomically).</summary>
    /// <param name="outDir">The dataset root to create or fill.</param>
    /// <param name="options">Sizes, counts and seed.</param>
    /// <returns>The ids written and a few counts.</returns>
    public static SyntheticPascalSummary Generate(string outDir, SyntheticPascalOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(outDir);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var root = Path.GetFullPath(outDir);
        foreach (var sub in new[] { "JPEGImages", "ImageSets/Context", "ImageSets/Parts", "semseg/pascal-context", "human_parts",
                                     "normals_distill", "sal_distill", "pascal-context/trainval" })
            Directory.CreateDirectory(Path.Combine(root, sub));

        // Ids like the real ones (2008_000001, ...): train first, then val.
        int total = options.TrainCount + options.ValCount;
        var ids = Enumerable.Range(1, total).Select(i => string.Create(CultureInfo.InvariantCulture, $"2008_{i:D6}")).ToArray();
        var results = new ImageResult[total];
        try
        {
            Parallel.For(0, total, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                int indexInSplit = i < options.TrainCount ? i : i - options.TrainCount;
                var plan = (indexInSplit % 4) switch { 0 => PersonPlan.AnnotatedPerson, 1 => PersonPlan.NoPerson, _ => PersonPlan.Random };
                results[i] = WriteImage(root, ids[i], options, ImageSeed(options.Seed, i), plan);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw;
        }

        var trainIds = ids[..options.TrainCount];
        var valIds = ids[options.TrainCount..];
        WriteSplit(root, "train", trainIds, results[..options.TrainCount]);
        WriteSplit(root, "val", valIds, results[options.TrainCount..]);
        return new SyntheticPascalSummary(root, trainIds, valIds,
            results[..options.TrainCount].Count(r => r.HasHumanParts), results[options.TrainCount..].Count(r => r.HasHumanParts), options);
    }

    private readonly record struct ImageResult(int[] PartsCategories, bool HasHumanParts);

    /// <summary>A per-image seed that does not depend on the process (unlike <see cref="System.HashCode"/>).</summary>
    internal static int ImageSeed(int seed, int index)
    {
        unchecked
        {
            ulong z = ((ulong)(uint)seed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (int)(z ^ (z >> 31));
        }
    }

    /// <summary>PASCAL VOC photo sizes (width, height), landscape ones listed as often as they are common.</summary>
    private static readonly (int Width, int Height)[] LandscapeSizes = [(500, 375), (500, 375), (500, 375), (500, 375), (500, 333), (500, 333), (500, 400), (500, 281), (500, 366)];

    private static readonly (int Width, int Height)[] PortraitSizes = [(375, 500), (375, 500), (333, 500), (400, 500)];

    /// <summary>The size and colour of one image: the options' size, or with RealisticSizes a PASCAL-like draw.</summary>
    private static (int Width, int Height, bool Gray) ImageShape(SyntheticPascalOptions options, int seed)
    {
        if (!options.RealisticSizes) return (options.Width, options.Height, false);
        var rng = new Random(seed ^ 0x5123);
        var sizes = rng.NextDouble() < 0.75 ? LandscapeSizes : PortraitSizes;
        var (w, h) = sizes[rng.Next(sizes.Length)];
        return (w, h, rng.Next(20) == 0);
    }

    private static ImageResult WriteImage(string root, string id, SyntheticPascalOptions options, int seed, PersonPlan plan)
    {
        var (w, h, gray) = ImageShape(options, seed);
        var rng = new Random(seed);
        var scene = SyntheticScene.Compose(w, h, rng, plan);
        var canvas = scene.Canvas;

        WriteJpeg(Path.Combine(root, "JPEGImages", id + ".jpg"), w, h, canvas.RenderRgb(rng), options.JpegQuality, gray);
        IndexedPng.WritePalette(Path.Combine(root, "semseg", "pascal-context", id + ".png"), new IndexedImage(w, h, canvas.Semseg), IndexedPng.VocPalette);
        var saliency = canvas.Owner.Select(o => o >= 0 ? (byte)255 : (byte)0).ToArray();
        IndexedPng.WriteGray(Path.Combine(root, "sal_distill", id + ".png"), new IndexedImage(w, h, saliency));
        IndexedPng.WriteRgb(Path.Combine(root, "normals_distill", id + ".png"), w, h, canvas.RenderNormals());
        MatFile.Write(Path.Combine(root, "pascal-context", "trainval", id + ".mat"), [MatNumericArray.FromRowMajor("LabelMap", h, w, canvas.Context)]);

        var (anno, categories, hasHumanParts) = BuildPartsAnnotation(id, scene);
        MatFile.Write(Path.Combine(root, "human_parts", id + ".mat"), [anno]);
        return new ImageResult(categories, hasHumanParts);
    }

    /// <summary>
    /// The Pascal-Part annotation, fields in the order the reference indexes positionally:
    /// anno = (imname, objects); object = (class, class_ind, mask, parts); part = (part_name, mask).
    /// </summary>
    private static (MatStructArray Anno, int[] Categories, bool HasHumanParts) BuildPartsAnnotation(string id, SyntheticScene scene)
    {
        var canvas = scene.Canvas;
        int w = canvas.Width, h = canvas.Height;
        var objects = new MatArray[scene.Objects.Count][];
        var categories = new int[scene.Objects.Count];
        bool hasHumanParts = false;
        for (int o = 0; o < scene.Objects.Count; o++)
        {
            var obj = scene.Objects[o];
            var mask = new byte[w * h];
            int area = 0;
            for (int i = 0; i < mask.Length; i++)
                if (canvas.Owner[i] == o) { mask[i] = 1; area++; }

            MatArray parts = MatNumericArray.Empty("");
            if (obj.PartsAnnotated && obj.Parts.Count > 0)
            {
                var values = new MatArray[obj.Parts.Count][];
                for (int p = 0; p < obj.Parts.Count; p++)
                {
                    var (name, index) = obj.Parts[p];
                    var partMask = new byte[w * h];
                    for (int i = 0; i < partMask.Length; i++)
                        if (canvas.Part[i] == index) { partMask[i] = 1; hasHumanParts = true; }
                    values[p] = [new MatCharArray("", name), MatNumericArray.FromRowMajor("", h, w, partMask)];
                }
                parts = new MatStructArray("", 1, values.Length, ["part_name", "mask"], values);
            }
            objects[o] =
            [
                new MatCharArray("", ClassName(obj.Voc)),
                MatNumericArray.Scalar("", obj.Voc),
                MatNumericArray.FromRowMajor("", h, w, mask),
                parts,
            ];
            // The reference lists an object's class only when its mask is not empty (area_thres = 0), otherwise -1.
            categories[o] = area > 0 ? obj.Voc : -1;
        }
        MatArray objectArray = objects.Length > 0
            ? new MatStructArray("", 1, objects.Length, ["class", "class_ind", "mask", "parts"], objects)
            : new MatStructArray("", 0, 0, ["class", "class_ind", "mask", "parts"], []);
        var anno = new MatStructArray("anno", 1, 1, ["imname", "objects"], [[new MatCharArray("", id), objectArray]]);
        return (anno, categories, hasHumanParts);
    }

    private static string ClassName(byte voc) => voc switch
    {
        SyntheticClasses.VocBottle => "bottle", SyntheticClasses.VocCar => "car", SyntheticClasses.VocCat => "cat",
        SyntheticClasses.VocChair => "chair", SyntheticClasses.VocTable => "diningtable", SyntheticClasses.VocDog => "dog",
        SyntheticClasses.VocPerson => "person", SyntheticClasses.VocSofa => "sofa", SyntheticClasses.VocTv => "tvmonitor",
        _ => "unknown",
    };

    /// <summary>An RGB JPEG, or with <paramref name="gray"/> a one-channel grayscale JPEG of the luma (BT.601).</summary>
    internal static void WriteJpeg(string path, int width, int height, byte[] rgb, int quality, bool gray)
    {
        byte[] pixels;
        SKImageInfo info;
        if (gray)
        {
            pixels = new byte[width * height];
            for (int i = 0; i < pixels.Length; i++)
                pixels[i] = (byte)Math.Clamp((int)MathF.Round(0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2]), 0, 255);
            info = new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque);
        }
        else
        {
            pixels = new byte[width * height * 4];
            for (int i = 0, j = 0; i < rgb.Length; i += 3, j += 4)
            {
                pixels[j] = rgb[i];
                pixels[j + 1] = rgb[i + 1];
                pixels[j + 2] = rgb[i + 2];
                pixels[j + 3] = 255;
            }
            info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        }
        using var image = SKImage.FromPixelCopy(info, pixels, info.RowBytes)
            ?? throw new InvalidOperationException($"SkiaSharp could not wrap a {width}x{height} image for '{path}'.");
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, quality)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode '{path}' as JPEG.");
        var bytes = data.ToArray();
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>ImageSets/Context/&lt;split&gt;.txt and ImageSets/Parts/&lt;split&gt;.txt (as the reference's json.dump writes it).</summary>
    private static void WriteSplit(string root, string split, string[] ids, ImageResult[] results)
    {
        var list = new StringBuilder();
        foreach (var id in ids) list.Append(id).Append('\n');
        var listBytes = Encoding.ASCII.GetBytes(list.ToString());
        AtomicFile.Write(Path.Combine(root, "ImageSets", "Context", split + ".txt"), s => s.Write(listBytes));

        // Python's json.dump(dict): {"id": [15, 8], "id2": []} with ", " and ": " separators.
        var json = new StringBuilder("{");
        for (int i = 0; i < ids.Length; i++)
        {
            if (i > 0) json.Append(", ");
            json.Append('"').Append(ids[i]).Append("\": [");
            json.Append(string.Join(", ", results[i].PartsCategories.Select(c => c.ToString(CultureInfo.InvariantCulture))));
            json.Append(']');
        }
        json.Append('}');
        var jsonBytes = Encoding.ASCII.GetBytes(json.ToString());
        AtomicFile.Write(Path.Combine(root, "ImageSets", "Parts", split + ".txt"), s => s.Write(jsonBytes));
    }
}
