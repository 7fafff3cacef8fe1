using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Data.Folder;

/// <summary>
/// A lazy <see cref="IDataView"/> over your own dense-task folder, created by
/// <c>mlContext.Data.LoadDenseTaskFolder(root, tasks, split, options)</c>: one row per id, in split-list order or sorted
/// by id (ordinal) when no split is given. The ids are listed, and the image and every label file of each id checked to
/// exist, when the view is created; each getter decodes its own column for the current row.
/// </summary>
/// <remarks>
/// <para>Layout (folder names from <see cref="DenseTaskFolderOptions"/>):</para>
/// <code>
/// root/images/&lt;id&gt;.jpg | .jpeg | .png     the images (one per id)
/// root/&lt;task&gt;/&lt;id&gt;.png | .npy             one folder of labels per task (its name, or LabelFolders[name])
/// root/splits/&lt;split&gt;.txt                 optional: one id per line (blank lines skipped)
/// </code>
/// <para>Columns, every map at the image's resolution, row-major (row y, column x at <c>y·Width + x</c>): <c>ImagePath</c>
/// (Text, full path), <c>Image</c> (<see cref="ImageDataViewType"/>, decoded by <see cref="MLImage.CreateFromFile(string)"/>
/// per getter call; the caller owns it), <c>Id</c> (Text), <c>Height</c> and <c>Width</c> (Int32, from the image header),
/// and per task its <see cref="DenseTaskDescriptor.LabelColumnName"/>, a vector of its
/// <see cref="DenseTaskDescriptor.LabelItemType"/> with <see cref="DenseTaskDescriptor.LabelChannels"/>·Height·Width values:</para>
/// <list type="table">
/// <item><term>segmentation</term><description><c>.png</c>, palette (the indices) or 8-bit grayscale (the values): class
/// ids 0..K−1, 255 = ignore; any other value fails. Byte.</description></item>
/// <item><term>binary map</term><description><c>.png</c>, 8-bit grayscale: a file holding only 0 and 1 is read as is,
/// otherwise v/255 &gt; 0.5 → 1 (v ≥ 128; the reference's saliency rule). Or <c>.npy</c> (H, W) or (H, W, 1), values in
/// 0..1, ≥ 0.5 → 1 (as NYUD's edges). Byte 0/1.</description></item>
/// <item><term>depth</term><description><c>.png</c>, 16-bit grayscale: value × <see cref="DenseTaskFolderOptions.DepthPngScale"/>
/// metres (default millimetres). Or <c>.npy</c> float32/float64 (H, W) or (H, W, 1) in metres, finite and ≥ 0. 0 = a hole
/// (no depth), kept as 0: training and evaluation ignore it. Single.</description></item>
/// <item><term>surface normals</term><description><c>.png</c>, 8-bit RGB: n = 2v/255 − 1 per channel (R → x, G → y, B → z;
/// the PASCAL normals PNG convention of <c>PascalSampleDecoder</c>), and a black pixel (0, 0, 0), which is no unit vector,
/// = invalid (255 in all three channels). Or <c>.npy</c> float32/float64 (H, W, 3), finite, as stored (255 in all three =
/// invalid). Single, planar x, y, z planes.</description></item>
/// </list>
/// <para>When both <c>&lt;id&gt;.png</c> and <c>&lt;id&gt;.npy</c> exist for a task, creating the view fails (which one is
/// meant is unclear). A label whose size differs from its image's, a PNG of another colour type or bit depth than its kind
/// reads, a <c>.npy</c> of another dtype or shape, or a value outside the kind's range fails the getter with an
/// <see cref="InvalidDataException"/> naming the file and what was expected.</para>
/// </remarks>
public sealed class DenseTaskFolderDataView : IDataView
{
    private static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png"];
    private readonly string[] _ids;
    private readonly string[][] _labelPaths; // [task][row]
    private readonly DenseTaskDescriptor[] _tasks;
    private readonly DenseFileRows _rows;

    internal DenseTaskFolderDataView(string root, IEnumerable<DenseTaskDescriptor> tasks, string? split, DenseTaskFolderOptions? options)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentNullException.ThrowIfNull(tasks);
        options ??= new DenseTaskFolderOptions();
        ArgumentException.ThrowIfNullOrEmpty(options.ImagesFolder, "options.ImagesFolder");
        ArgumentException.ThrowIfNullOrEmpty(options.SplitsFolder, "options.SplitsFolder");
        if (!(options.DepthPngScale > 0) || !float.IsFinite(options.DepthPngScale))
            throw new ArgumentOutOfRangeException(nameof(options), options.DepthPngScale, "DenseTaskFolderOptions.DepthPngScale must be a finite number > 0 (metres per PNG unit).");
        _tasks = CheckTasks(tasks);
        Root = Path.GetFullPath(root);
        if (!Directory.Exists(Root)) throw new DirectoryNotFoundException($"Dense task folder '{Root}' does not exist.");
        Split = split;
        string images = Path.Combine(Root, options.ImagesFolder);
        if (!Directory.Exists(images))
            throw new DirectoryNotFoundException($"Images folder '{images}' does not exist (expected {options.ImagesFolder}/<id>.jpg or .png under '{Root}').");

        (_ids, var imagePaths) = split is null ? ListImages(images) : ReadSplit(Root, options.SplitsFolder, split, images);
        _labelPaths = new string[_tasks.Length][];
        for (int t = 0; t < _tasks.Length; t++)
        {
            var task = _tasks[t];
            string folderName = options.LabelFolders is not null && options.LabelFolders.TryGetValue(task.Name, out var f) ? f : task.Name;
            string folder = Path.Combine(Root, folderName);
            if (!Directory.Exists(folder))
                throw new DirectoryNotFoundException($"Label folder '{folder}' of task '{task.Name}' does not exist (expected {folderName}/<id>.{DenseTaskFolderLabels.Extensions(task.Kind)} under '{Root}').");
            _labelPaths[t] = new string[_ids.Length];
            for (int i = 0; i < _ids.Length; i++) _labelPaths[t][i] = DenseTaskFolderLabels.Find(folder, _ids[i], task);
        }

        float depthPngScale = options.DepthPngScale;
        _rows = new DenseFileRows(_ids, imagePaths, _tasks,
            (t, row, w, h) => DenseTaskFolderLabels.Read(_tasks[t], _labelPaths[t][row], imagePaths[row], w, h, depthPngScale));
    }

    /// <summary>The dataset folder (full path).</summary>
    public string Root { get; }

    /// <summary>The split read, or null when the view holds every image of the images folder.</summary>
    public string? Split { get; }

    /// <summary>The tasks whose label columns the view has, in the order given.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => _tasks;

    /// <summary>The ids of the rows, in row order.</summary>
    public IReadOnlyList<string> Ids => _ids;

    /// <inheritdoc/>
    public DataViewSchema Schema => _rows.Schema;

    /// <summary>True: cursors can visit the rows in a random order drawn from the <see cref="Random"/> they are given.</summary>
    public bool CanShuffle => true;

    /// <summary>The number of rows.</summary>
    /// <returns>The count of ids.</returns>
    public long? GetRowCount() => _ids.Length;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        _rows.GetRowCursor(columnsNeeded, rand);

    /// <summary>One cursor (the view decodes on the caller's thread; ML.NET accepts fewer cursors than asked for).</summary>
    /// <param name="columnsNeeded">The columns to read.</param>
    /// <param name="n">The number of cursors asked for.</param>
    /// <param name="rand">The shuffling generator, or null for row order.</param>
    /// <returns>An array of one cursor.</returns>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private static DenseTaskDescriptor[] CheckTasks(IEnumerable<DenseTaskDescriptor> tasks)
    {
        var list = tasks.ToArray();
        if (list.Length == 0) throw new ArgumentException("No task given; expected at least one DenseTaskDescriptor.", nameof(tasks));
        var names = new HashSet<string>(StringComparer.Ordinal);
        var columns = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var task in list)
        {
            ArgumentNullException.ThrowIfNull(task, nameof(tasks));
            if (!names.Add(task.Name)) throw new ArgumentException($"Task '{task.Name}' is given twice; each task name may appear once.", nameof(tasks));
            if (columns.TryGetValue(task.LabelColumnName, out var other))
                throw new ArgumentException($"Tasks '{other}' and '{task.Name}' both have the label column '{task.LabelColumnName}'; give one another columnStem.", nameof(tasks));
            columns[task.LabelColumnName] = task.Name;
        }
        return list;
    }

    private static (string[] Ids, string[] Paths) ListImages(string images)
    {
        var byId = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(images))
        {
            string ext = Path.GetExtension(path);
            if (!ImageExtensions.Contains(ext, StringComparer.OrdinalIgnoreCase)) continue;
            string id = Path.GetFileNameWithoutExtension(path);
            if (byId.TryGetValue(id, out var other))
                throw new InvalidDataException($"Images folder '{images}' holds two images of id '{id}' ('{Path.GetFileName(other)}' and '{Path.GetFileName(path)}'); expected one.");
            byId[id] = path;
        }
        if (byId.Count == 0)
            throw new InvalidDataException($"Images folder '{images}' holds no image; expected <id>.jpg, .jpeg or .png files.");
        return (byId.Keys.ToArray(), byId.Values.ToArray());
    }

    private static (string[] Ids, string[] Paths) ReadSplit(string root, string splitsFolder, string split, string images)
    {
        ArgumentException.ThrowIfNullOrEmpty(split);
        string list = Path.Combine(root, splitsFolder, split + ".txt");
        if (!File.Exists(list))
            throw new FileNotFoundException($"Split list '{list}' was not found (expected {splitsFolder}/{split}.txt, one id per line).", list);
        var ids = new List<string>();
        var paths = new List<string>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (id, line) in DenseViewRows.ReadIdList(list))
        {
            if (seen.TryGetValue(id, out int first))
                throw new InvalidDataException($"'{list}' line {line}: id '{id}' is listed again (first on line {first}); expected each id once.");
            seen[id] = line;
            string? path = ImageExtensions.Select(e => Path.Combine(images, id + e)).FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException($"'{list}' line {line} lists '{id}' but the images folder '{images}' has no {id}.jpg, {id}.jpeg or {id}.png.", Path.Combine(images, id + ".jpg"));
            ids.Add(id);
            paths.Add(path);
        }
        if (ids.Count == 0) throw new InvalidDataException($"Split list '{list}' lists no id; expected one id per line.");
        return (ids.ToArray(), paths.ToArray());
    }
}
