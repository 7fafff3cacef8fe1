using System.Text.Json.Nodes;
using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>Label statistics of one task over a split: valid pixels and, for class maps, a histogram of the valid pixels.</summary>
public sealed class TaskLabelStatistics
{
    internal TaskLabelStatistics(DenseTask task) => Task = task;

    /// <summary>The task.</summary>
    public DenseTask Task { get; }

    /// <summary>Pixels that count for the task's metric: not 255 (semseg, human parts, normals' x channel); every pixel for saliency.</summary>
    public long ValidPixels { get; internal set; }

    /// <summary>Saliency only: pixels labelled salient (1).</summary>
    public long PositivePixels { get; internal set; }

    /// <summary>Semseg and human parts: valid pixels per class value (only classes that occur).</summary>
    public IReadOnlyDictionary<int, long> Histogram => _histogram;

    internal readonly SortedDictionary<int, long> _histogram = [];
}

/// <summary>
/// Counts over every sample of a PASCAL-Context split, read with the loader's own rules at the original resolution (no
/// resize, no augmentation): the data behind <c>mtlora inspect-data</c>.
/// </summary>
public sealed class PascalContextStatistics
{
    private PascalContextStatistics(string split) => Split = split;

    /// <summary>The split.</summary>
    public string Split { get; }

    /// <summary>Samples read.</summary>
    public long Images { get; private set; }

    /// <summary>Samples whose human-parts label has at least one valid (non-255) pixel; null when human parts was not read.</summary>
    public long? ImagesWithHumanParts { get; private set; }

    /// <summary>Per-task statistics, in the reference's task order.</summary>
    public IReadOnlyDictionary<DenseTask, TaskLabelStatistics> Tasks => _tasks;

    /// <summary>Label files whose size differed from their image's and that were resized to it, as the reference does
    /// (<see cref="PascalContextDataView.ResizedLabelFiles"/>).</summary>
    public int ResizedLabelFiles { get; private set; }

    /// <summary>Samples left out (with <see cref="PascalContextOptions.SkipBadSamples"/>).</summary>
    public IReadOnlyList<SkippedSample> Skipped { get; private set; } = [];

    private readonly Dictionary<DenseTask, TaskLabelStatistics> _tasks = [];

    /// <summary>The protocol whose labels were counted (<see cref="Evaluation.EvaluationProtocol.Native"/>: the loader's, at each image's size).</summary>
    public Evaluation.EvaluationProtocol Protocol { get; private init; } = Evaluation.EvaluationProtocol.Native;

    /// <summary>The size the labels were resized to under <see cref="Evaluation.EvaluationProtocol.Reference"/>; null under Native.</summary>
    public int? ImageSize { get; private init; }

    /// <summary>Reads every row of the view's label columns and counts; also decodes every image (pixels included), so a
    /// damaged image file fails here as it would in training.</summary>
    /// <param name="view">The view (all of its tasks are counted).</param>
    /// <param name="progress">Receives the number of samples read so far, now and then.</param>
    /// <param name="cancellationToken">Stops the pass between samples.</param>
    public static PascalContextStatistics Compute(PascalContextDataView view, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
        => Compute(view, Evaluation.EvaluationProtocol.Native, 0, progress, cancellationToken);

    /// <summary>
    /// The same counts on the labels an <see cref="Evaluation.EvaluationProtocol"/> scores: under
    /// <see cref="Evaluation.EvaluationProtocol.Reference"/> every label resized to <paramref name="imageSize"/>² as the reference's
    /// test transforms do (FixedResize, AddIgnoreRegions; docs/mtlora-reference.md §6.1), so the class histograms, the images
    /// with human parts, the saliency pixels and the valid normals are those the reference's evaluation sees; under
    /// <see cref="Evaluation.EvaluationProtocol.Native"/> the loader's labels at each image's size.
    /// </summary>
    /// <param name="view">The view (all of its tasks are counted).</param>
    /// <param name="protocol">The protocol whose labels are counted.</param>
    /// <param name="imageSize">The network's input size S (Reference only; e.g. 448).</param>
    /// <param name="progress">Receives the number of samples read so far, now and then.</param>
    /// <param name="cancellationToken">Stops the pass between samples.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="imageSize"/> is not positive under Reference.</exception>
    public static PascalContextStatistics Compute(PascalContextDataView view, Evaluation.EvaluationProtocol protocol, int imageSize,
        IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(view);
        bool reference = protocol == Evaluation.EvaluationProtocol.Reference;
        if (reference && imageSize < 1)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"The image size is {imageSize}; the Reference protocol needs the network's input size (e.g. 448).");
        var stats = new PascalContextStatistics(view.Split) { Protocol = protocol, ImageSize = reference ? imageSize : null };
        foreach (var task in view.Tasks) stats._tasks[task] = new TaskLabelStatistics(task);
        bool parts = view.Tasks.Contains(DenseTask.HumanParts);
        if (parts) stats.ImagesWithHumanParts = 0;

        // The image column too: its pixels are decoded (and dropped), so a truncated or corrupt image is found here as in
        // training, not only its header.
        var imageColumn = view.Schema[MtLoraColumnNames.Image];
        var heightColumn = view.Schema[MtLoraColumnNames.Height];
        var widthColumn = view.Schema[MtLoraColumnNames.Width];
        var columns = view.Tasks.Select(t => view.Schema[t.LabelColumnName()]).Append(imageColumn).Append(heightColumn).Append(widthColumn).ToList();
        using var cursor = view.GetRowCursor(columns);
        var heightGetter = cursor.GetGetter<int>(heightColumn);
        var widthGetter = cursor.GetGetter<int>(widthColumn);
        int height = 0, width = 0;
        var imageGetter = cursor.GetGetter<MLImage>(imageColumn);
        MLImage image = null!;
        var byteGetters = new Dictionary<DenseTask, ValueGetter<VBuffer<byte>>>();
        ValueGetter<VBuffer<float>>? normalsGetter = null;
        foreach (var task in view.Tasks)
        {
            var column = view.Schema[task.LabelColumnName()];
            if (task == DenseTask.SurfaceNormals) normalsGetter = cursor.GetGetter<VBuffer<float>>(column);
            else byteGetters[task] = cursor.GetGetter<VBuffer<byte>>(column);
        }
        VBuffer<byte> bytes = default;
        VBuffer<float> floats = default;
        var histogram = new long[256];
        while (cursor.MoveNext())
        {
            cancellationToken.ThrowIfCancellationRequested();
            imageGetter(ref image);
            image.Dispose();
            heightGetter(ref height);
            widthGetter(ref width);
            stats.Images++;
            foreach (var (task, getter) in byteGetters)
            {
                getter(ref bytes);
                var values = reference
                    ? Evaluation.ProtocolLabels.ResizeClassMap(bytes.GetValues(), width, height, imageSize, humanParts: task == DenseTask.HumanParts)
                    : bytes.GetValues();
                var s = stats._tasks[task];
                if (task == DenseTask.Saliency)
                {
                    s.ValidPixels += values.Length;
                    s.PositivePixels += values.Length - values.Count((byte)0);
                    continue;
                }
                Array.Clear(histogram);
                foreach (var v in values) histogram[v]++;
                long valid = values.Length - histogram[DenseTasks.IgnoreLabel];
                s.ValidPixels += valid;
                for (int c = 0; c < 255; c++)
                    if (histogram[c] != 0) s._histogram[c] = s._histogram.GetValueOrDefault(c) + histogram[c];
                if (task == DenseTask.HumanParts && valid > 0) stats.ImagesWithHumanParts++;
            }
            if (normalsGetter is not null)
            {
                normalsGetter(ref floats);
                var values = reference ? Evaluation.ProtocolLabels.ResizeNormals(floats.GetValues(), width, height, imageSize) : floats.GetValues();
                var x = values[..(values.Length / 3)];                                  // the x plane decides validity
                stats._tasks[DenseTask.SurfaceNormals].ValidPixels += x.Length - x.Count((float)DenseTasks.IgnoreLabel);
            }
            if (stats.Images % 250 == 0) progress?.Report(stats.Images);
        }
        progress?.Report(stats.Images);
        stats.Skipped = view.SkippedSamples;
        stats.ResizedLabelFiles = view.ResizedLabelFiles.Count;
        return stats;
    }

    /// <summary>
    /// The statistics as the JSON object <c>mtlora inspect-data</c> prints:
    /// <c>{"split", "images", "images_with_human_parts", "tasks": {"semseg": {"valid_pixels", "histogram"}, "human_parts": {...},
    /// "sal": {"valid_pixels", "positive_pixels"}, "normals": {"valid_pixels"}}, "resized_label_files"}</c>, plus <c>"skipped_samples"</c> when
    /// any sample was skipped.
    /// </summary>
    public JsonObject ToJson()
    {
        var tasks = new JsonObject();
        foreach (var task in DenseTasks.All)
        {
            if (!_tasks.TryGetValue(task, out var s)) continue;
            var o = new JsonObject { ["valid_pixels"] = s.ValidPixels };
            if (task == DenseTask.Saliency) o["positive_pixels"] = s.PositivePixels;
            if (task.IsClassification())
            {
                var h = new JsonObject();
                foreach (var (c, n) in s.Histogram) h[c.ToString(System.Globalization.CultureInfo.InvariantCulture)] = n;
                o["histogram"] = h;
            }
            tasks[task.ReferenceName()] = o;
        }
        var json = new JsonObject { ["split"] = Split, ["images"] = Images };
        if (Protocol == Evaluation.EvaluationProtocol.Reference)
        {
            json["protocol"] = Evaluation.EvaluationProtocols.Name(Protocol);
            json["image_size"] = ImageSize;
        }
        if (ImagesWithHumanParts is { } withParts) json["images_with_human_parts"] = withParts;
        json["tasks"] = tasks;
        json["resized_label_files"] = ResizedLabelFiles;
        if (Skipped.Count > 0)
            json["skipped_samples"] = new JsonArray(Skipped.Select(s => (JsonNode)new JsonObject { ["id"] = s.Id, ["reason"] = s.Reason }).ToArray());
        return json;
    }
}
