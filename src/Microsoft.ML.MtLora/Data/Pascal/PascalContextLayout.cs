using System.Text.Json;

namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>
/// Where the files of a PASCAL_MT root live (reference layout, data/mtl_ds.py) and the split's id list.
/// </summary>
internal sealed class PascalContextLayout
{
    public PascalContextLayout(string root, string split)
    {
        if (string.IsNullOrWhiteSpace(root))
            throw new ArgumentException("The PASCAL_MT root folder is empty; expected the folder that holds JPEGImages/, ImageSets/, semseg/, ...", nameof(root));
        if (string.IsNullOrWhiteSpace(split))
            throw new ArgumentException("The split name is empty; expected 'train' or 'val' (the name of a file ImageSets/Context/<split>.txt).", nameof(split));
        if (split.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || split.Contains(".."))
            throw new ArgumentException($"The split name '{split}' is not a file name; expected 'train' or 'val'.", nameof(split));
        Root = Path.GetFullPath(root);
        Split = split;
        if (!Directory.Exists(Root))
            throw new DirectoryNotFoundException($"The PASCAL_MT root folder '{Root}' does not exist.");
        SplitFile = Path.Combine(Root, "ImageSets", "Context", split + ".txt");
        if (!File.Exists(SplitFile))
            throw new FileNotFoundException($"The split file '{SplitFile}' does not exist; expected one sample id per line (e.g. 2008_000002) for split '{split}'.", SplitFile);
        Ids = ReadIds(SplitFile);
    }

    public string Root { get; }

    public string Split { get; }

    public string SplitFile { get; }

    public IReadOnlyList<string> Ids { get; }

    public string PartsIndexFile => Path.Combine(Root, "ImageSets", "Parts", Split + ".txt");

    public string ImagePath(string id) => Path.Combine(Root, "JPEGImages", id + ".jpg");

    public string SemsegVocPath(string id) => Path.Combine(Root, "semseg", "VOC12", id + ".png");

    public string SemsegContextPath(string id) => Path.Combine(Root, "semseg", "pascal-context", id + ".png");

    /// <summary>The semseg label: <c>semseg/VOC12/&lt;id&gt;.png</c> when present, else <c>semseg/pascal-context/&lt;id&gt;.png</c>.</summary>
    public string SemsegPath(string id)
    {
        var voc = SemsegVocPath(id);
        return File.Exists(voc) ? voc : SemsegContextPath(id);
    }

    public string HumanPartsPath(string id) => Path.Combine(Root, "human_parts", id + ".mat");

    public string NormalsPath(string id) => Path.Combine(Root, "normals_distill", id + ".png");

    public string SaliencyPath(string id) => Path.Combine(Root, "sal_distill", id + ".png");

    public string ContextLabelsPath(string id) => Path.Combine(Root, "pascal-context", "trainval", id + ".mat");

    /// <summary>The files a sample needs for the given tasks, each with a description for error messages.</summary>
    public IEnumerable<(string Path, string What)> RequiredFiles(string id, IReadOnlyCollection<DenseTask> tasks)
    {
        yield return (ImagePath(id), "image");
        foreach (var task in tasks)
        {
            switch (task)
            {
                case DenseTask.SemanticSegmentation:
                    yield return (SemsegPath(id), "semseg label (semseg/VOC12/<id>.png or semseg/pascal-context/<id>.png)");
                    break;
                case DenseTask.HumanParts:
                    yield return (HumanPartsPath(id), "human-parts annotation");
                    break;
                case DenseTask.Saliency:
                    yield return (SaliencyPath(id), "saliency label");
                    break;
                case DenseTask.SurfaceNormals:
                    yield return (NormalsPath(id), "normals label");
                    yield return (ContextLabelsPath(id), "PASCAL-Context LabelMap (masks the normals)");
                    break;
            }
        }
    }

    /// <summary>
    /// Reads <c>ImageSets/Parts/&lt;split&gt;.txt</c> (JSON: id → category ids of the annotated objects) and returns the
    /// ids listed with the person category, or null when the file is missing or does not list exactly the split's ids
    /// (the reference then rebuilds it; here the caller derives the same facts from the .mat files, in memory).
    /// </summary>
    public HashSet<string>? TryReadPartsIndex()
    {
        var file = PartsIndexFile;
        if (!File.Exists(file)) return null;
        Dictionary<string, int[]>? index;
        try
        {
            using var stream = File.OpenRead(file);
            index = JsonSerializer.Deserialize<Dictionary<string, int[]>>(stream);
        }
        catch (JsonException)
        {
            return null; // unreadable: treated as stale, as the reference would rebuild it
        }
        if (index is null || index.Count != Ids.Count) return null;
        var withPersons = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in Ids)
        {
            if (!index.TryGetValue(id, out var categories) || categories is null) return null;
            if (Array.IndexOf(categories, PascalContextClasses.PersonClass) >= 0) withPersons.Add(id);
        }
        return withPersons;
    }

    private static string[] ReadIds(string file)
    {
        var ids = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int lineNumber = 0;
        foreach (var raw in File.ReadLines(file))
        {
            lineNumber++;
            var id = raw.Trim();
            if (id.Length == 0) continue;
            if (id.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || id.Contains(".."))
                throw new InvalidDataException($"{file}, line {lineNumber}: '{id}' is not a sample id; expected a file name stem such as 2008_000002.");
            if (!seen.Add(id))
                throw new InvalidDataException($"{file}, line {lineNumber}: the id '{id}' is listed twice.");
            ids.Add(id);
        }
        if (ids.Count == 0)
            throw new InvalidDataException($"The split file '{file}' lists no sample ids; expected one id per line.");
        return ids.ToArray();
    }
}
