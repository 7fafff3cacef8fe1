using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Data.Nyud;

/// <summary>
/// The NYUD-v2 multi-task layout (NYUD_MT) as the reference's <c>data/mtl_ds.py::NYUD_MT</c> reads it:
/// <c>gt_sets/{split}.txt</c> lists the ids; each id has <c>images/&lt;id&gt;.jpg</c>, <c>segmentation/&lt;id&gt;.png</c>,
/// <c>depth/&lt;id&gt;.npy</c>, <c>normals/&lt;id&gt;.npy</c> and <c>edge/&lt;id&gt;.npy</c> (the reference asserts all five
/// exist whatever tasks are asked for), and the label decoding of its <c>_load_*</c> methods.
/// </summary>
public static class NyudLayout
{
    /// <summary>The number of semantic classes after the reference's shift (the file's 1..40 → 0..39).</summary>
    public const int SemanticClasses = 40;

    /// <summary>The ids of a split, in file order, each checked to have its five files.</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="split">The split name (<c>train</c> or <c>val</c>): <c>gt_sets/{split}.txt</c>.</param>
    /// <returns>The ids.</returns>
    /// <exception cref="FileNotFoundException">The split list or a file of a listed id is missing; the message names the file
    /// and the list line.</exception>
    public static IReadOnlyList<string> ReadSplit(string root, string split)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrEmpty(split);
        string list = Path.Combine(root, "gt_sets", split + ".txt");
        if (!File.Exists(list))
            throw new FileNotFoundException($"NYUD split list '{list}' was not found (expected gt_sets/{split}.txt under the NYUD_MT root).", list);
        var ids = new List<string>();
        foreach (var (id, line) in DenseViewRows.ReadIdList(list))
        {
            foreach (var (path, what) in Files(root, id))
                if (!File.Exists(path))
                    throw new FileNotFoundException($"'{list}' line {line} lists '{id}' but its {what} '{path}' does not exist.", path);
            ids.Add(id);
        }
        return ids;
    }

    /// <summary>The five files of an id, with what each holds.</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <returns>(path, description) pairs: image, segmentation, depth, normals, edge.</returns>
    public static IEnumerable<(string Path, string What)> Files(string root, string id)
    {
        yield return (ImagePath(root, id), "image");
        yield return (Path.Combine(root, "segmentation", id + ".png"), "segmentation");
        yield return (Path.Combine(root, "depth", id + ".npy"), "depth");
        yield return (Path.Combine(root, "normals", id + ".npy"), "normals");
        yield return (Path.Combine(root, "edge", id + ".npy"), "edge");
    }

    /// <summary>The image of an id: <c>images/&lt;id&gt;.jpg</c>.</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <returns>The path.</returns>
    public static string ImagePath(string root, string id) => Path.Combine(root, "images", id + ".jpg");

    /// <summary>
    /// The semantic labels of an id: the PNG's 0 (unlabelled) becomes the ignore label 255 and 1..40 become 0..39
    /// (<c>NYUD_MT._load_semseg</c>: <c>_semseg[_semseg == 0] = 256; _semseg - 1</c>).
    /// </summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <param name="width">The image width (the map must match it).</param>
    /// <param name="height">The image height.</param>
    /// <returns>W·H class ids, row-major.</returns>
    /// <exception cref="InvalidDataException">Wrong size, or a value above 40; the message names the file.</exception>
    public static byte[] ReadSemseg(string root, string id, int width, int height)
    {
        string path = Path.Combine(root, "segmentation", id + ".png");
        var png = IndexedPng.Read(path);
        if (png.Width != width || png.Height != height)
            throw new InvalidDataException($"'{path}' is {png.Width}×{png.Height} but its image is {width}×{height}.");
        var map = new byte[png.Pixels.Length];
        for (int i = 0; i < map.Length; i++)
        {
            byte v = png.Pixels[i];
            if (v > SemanticClasses)
                throw new InvalidDataException($"'{path}': pixel (x {i % width}, y {i / width}) holds {v}; expected 0 (unlabelled) or 1..{SemanticClasses}.");
            map[i] = v == 0 ? DenseTasks.IgnoreLabel : (byte)(v - 1);
        }
        return map;
    }

    /// <summary>The depth of an id in metres, H·W (<c>depth/&lt;id&gt;.npy</c>, shape (H, W) or (H, W, 1)).</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <param name="width">The image width.</param>
    /// <param name="height">The image height.</param>
    /// <returns>The depths, row-major.</returns>
    /// <exception cref="InvalidDataException">Wrong shape, or a NaN, infinite or negative depth; the message names the file.</exception>
    public static float[] ReadDepth(string root, string id, int width, int height)
    {
        string path = Path.Combine(root, "depth", id + ".npy");
        var a = NpyFile.Read(path);
        CheckShape(a, path, width, height, 1);
        int bad = Array.FindIndex(a.Values, v => !(v >= 0) || float.IsInfinity(v));
        if (bad >= 0)
            throw new InvalidDataException($"'{path}': pixel (x {bad % width}, y {bad / width}) holds depth {a.Values[bad]}; expected a finite value ≥ 0 (metres).");
        return a.Values;
    }

    /// <summary>The surface normals of an id as 3·H·W planar floats (x, y, z planes), from <c>normals/&lt;id&gt;.npy</c> of shape (H, W, 3).</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <param name="width">The image width.</param>
    /// <param name="height">The image height.</param>
    /// <returns>The normals, planar CHW.</returns>
    /// <exception cref="InvalidDataException">Wrong shape or a non-finite value; the message names the file.</exception>
    public static float[] ReadNormals(string root, string id, int width, int height)
    {
        string path = Path.Combine(root, "normals", id + ".npy");
        var a = NpyFile.Read(path);
        CheckShape(a, path, width, height, 3);
        int n = width * height;
        var planar = new float[3 * n];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                float v = a.Values[3 * i + c];
                if (!float.IsFinite(v)) throw new InvalidDataException($"'{path}': pixel (x {i % width}, y {i / width}) holds a non-finite normal.");
                planar[c * n + i] = v;
            }
        }
        return planar;
    }

    /// <summary>The edge map of an id, H·W bytes 0/1 (<c>edge/&lt;id&gt;.npy</c>, values 0..1; ≥ 0.5 is an edge, the loss's binarisation).</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="id">The sample id.</param>
    /// <param name="width">The image width.</param>
    /// <param name="height">The image height.</param>
    /// <returns>The edge map, row-major.</returns>
    /// <exception cref="InvalidDataException">Wrong shape or a value outside 0..1; the message names the file.</exception>
    public static byte[] ReadEdge(string root, string id, int width, int height)
    {
        string path = Path.Combine(root, "edge", id + ".npy");
        var a = NpyFile.Read(path);
        CheckShape(a, path, width, height, 1);
        var map = new byte[a.Values.Length];
        for (int i = 0; i < map.Length; i++)
        {
            float v = a.Values[i];
            if (!(v >= 0 && v <= 1)) throw new InvalidDataException($"'{path}': pixel (x {i % width}, y {i / width}) holds {v}; expected an edge value in 0..1.");
            map[i] = v >= 0.5f ? (byte)1 : (byte)0;
        }
        return map;
    }

    /// <summary>Checks an array's shape against an image of <paramref name="width"/>×<paramref name="height"/>: (H, W), or (H, W, 1) for one channel; (H, W, C) otherwise.</summary>
    /// <exception cref="InvalidDataException">Another shape; the message names the file.</exception>
    internal static void CheckShape(NpyArray a, string path, int width, int height, int channels)
    {
        var s = a.Shape;
        bool ok = s.Count >= 2 && s[0] == height && s[1] == width &&
            (s.Count == 2 ? channels == 1 : s.Count == 3 && s[2] == channels);
        if (!ok)
        {
            string expected = channels == 1 ? $"({height}, {width}) or ({height}, {width}, 1)" : $"({height}, {width}, {channels})";
            throw new InvalidDataException($"'{path}' has shape ({string.Join(", ", s)}); expected {expected} to match its image.");
        }
    }
}
