using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Analysis;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>
/// The result of a multi-task evaluation: each evaluated task's metrics and Δm against single-task baselines.
/// Fractions in [0, 1] for the IoUs, accuracies and F-measures (ML.NET's convention); degrees for normals; the labels'
/// unit (metres for NYUD) for depth. The PASCAL tasks have their own properties; any other task is in
/// <see cref="OtherSegmentations"/>, <see cref="OtherSaliencyMaps"/>, <see cref="Edges"/>, <see cref="Depths"/> or
/// <see cref="OtherNormals"/> by its kind.
/// </summary>
public sealed class MultiTaskMetrics
{
    internal MultiTaskMetrics(
        SegmentationMetrics? semanticSegmentation,
        SegmentationMetrics? humanParts,
        SaliencyMetrics? saliency,
        NormalsMetrics? surfaceNormals,
        SingleTaskBaselines baselines,
        IReadOnlyDictionary<DenseTaskDescriptor, SegmentationMetrics>? otherSegmentations = null,
        IReadOnlyDictionary<DenseTaskDescriptor, SaliencyMetrics>? otherSaliencyMaps = null,
        IReadOnlyDictionary<DenseTaskDescriptor, EdgeMetrics>? edges = null,
        IReadOnlyDictionary<DenseTaskDescriptor, DepthMetrics>? depths = null,
        IReadOnlyDictionary<DenseTaskDescriptor, NormalsMetrics>? otherNormals = null)
    {
        OtherSegmentations = otherSegmentations ?? new Dictionary<DenseTaskDescriptor, SegmentationMetrics>();
        OtherSaliencyMaps = otherSaliencyMaps ?? new Dictionary<DenseTaskDescriptor, SaliencyMetrics>();
        Edges = edges ?? new Dictionary<DenseTaskDescriptor, EdgeMetrics>();
        Depths = depths ?? new Dictionary<DenseTaskDescriptor, DepthMetrics>();
        OtherNormals = otherNormals ?? new Dictionary<DenseTaskDescriptor, NormalsMetrics>();
        SemanticSegmentation = semanticSegmentation;
        HumanParts = humanParts;
        Saliency = saliency;
        SurfaceNormals = surfaceNormals;
        Baselines = baselines;
        // The reference's order (semseg, human_parts, sal, normals, depth, edge), then other tasks by name.
        Tasks = DenseTaskDescriptor.Pascal.Where(HasTask)
            .Concat(OtherSegmentations.Keys).Concat(OtherSaliencyMaps.Keys).Concat(Edges.Keys).Concat(Depths.Keys).Concat(OtherNormals.Keys)
            .Order().ToArray();
        DeltaM = Evaluation.DeltaM.Compute(Tasks.Select(t => KeyValuePair.Create(t, GetPaperMetric(t))), baselines);
    }

    /// <summary>
    /// The protocol the labels were scored under (<see cref="EvaluationProtocol"/>), or null when the caller's own labels and
    /// predictions were scored as given (e.g. <c>mtlora evaluate --predictions</c>).
    /// </summary>
    public EvaluationProtocol? Protocol { get; internal set; }

    /// <summary>Semantic segmentation metrics (21 classes), or null when the task was not evaluated.</summary>
    public SegmentationMetrics? SemanticSegmentation { get; }

    /// <summary>Human parts metrics (7 classes), or null when the task was not evaluated.</summary>
    public SegmentationMetrics? HumanParts { get; }

    /// <summary>Saliency metrics, or null when the task was not evaluated.</summary>
    public SaliencyMetrics? Saliency { get; }

    /// <summary>Surface normals metrics of the task named <c>normals</c>, or null when it was not evaluated (a surface-normals
    /// task of another name is in <see cref="OtherNormals"/>).</summary>
    public NormalsMetrics? SurfaceNormals { get; }

    /// <summary>Segmentations other than PASCAL's semseg and human_parts (your own, with their own class counts), by task.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, SegmentationMetrics> OtherSegmentations { get; }

    /// <summary>Binary maps other than <c>sal</c> scored as saliency is (those whose <see cref="DenseTaskDescriptor.MetricName"/>
    /// is <c>mIoU</c>: the saliency loss rule, no fixed positive weight), by task.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, SaliencyMetrics> OtherSaliencyMaps { get; }

    /// <summary>Binary maps scored by the pixel-wise F-measure at 0.5 (<see cref="EdgeMeter"/>, <c>edge_f@0.5</c>, not ODS-F):
    /// those with a fixed positive weight, such as NYUD's edge, by task.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, EdgeMetrics> Edges { get; }

    /// <summary>Depth tasks (<see cref="DepthMeter"/>: RMSE and log-RMSE, lower is better), by task.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, DepthMetrics> Depths { get; }

    /// <summary>Surface-normals tasks named other than <c>normals</c> (your own, e.g. <c>DenseTaskDescriptor.SurfaceNormals("tilt")</c>),
    /// by task: scored exactly as <see cref="SurfaceNormals"/> (<see cref="NormalsMeter"/>: angles in degrees, the mean lower is better).</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, NormalsMetrics> OtherNormals { get; }

    /// <summary>The evaluated tasks, in the reference's order (semseg, human_parts, sal, normals, depth, edge), then your own by name.</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>The single-task baselines Δm was computed against.</summary>
    public SingleTaskBaselines Baselines { get; }

    /// <summary>
    /// Δm in percent (Equation 3 of the paper) over the evaluated tasks that have a baseline, or null when none has.
    /// </summary>
    public double? DeltaM { get; }

    /// <summary>
    /// The metric a task is ranked by in the paper, in the paper's units: mIoU ×100 for semantic segmentation, human parts
    /// and saliency (and any other segmentation or saliency-like map); the mean angular error in degrees for normals (any
    /// surface-normals task, whatever its name); the RMSE
    /// in the labels' unit for depth; <c>edge_f@0.5</c> ×100 for an edge map. These are the values Δm compares with the baselines.
    /// </summary>
    /// <param name="task">An evaluated task.</param>
    /// <returns>The metric.</returns>
    /// <exception cref="ArgumentException">The task was not evaluated.</exception>
    public double GetPaperMetric(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" when SemanticSegmentation is not null => SemanticSegmentation.MeanIoU * 100,
        "human_parts" when HumanParts is not null => HumanParts.MeanIoU * 100,
        "sal" when Saliency is not null => Saliency.MeanIoU * 100,
        "normals" when SurfaceNormals is not null => SurfaceNormals.Mean,
        _ when OtherSegmentations.TryGetValue(task, out var m) => m.MeanIoU * 100,
        _ when OtherSaliencyMaps.TryGetValue(task, out var m) => m.MeanIoU * 100,
        _ when Edges.TryGetValue(task, out var m) => m.FMeasure * 100,
        _ when Depths.TryGetValue(task, out var m) => m.Rmse,
        _ when OtherNormals.TryGetValue(task, out var m) => m.Mean,
        _ => throw new ArgumentException($"Task {task.Name} was not evaluated.", nameof(task)),
    };

    private bool HasTask(DenseTaskDescriptor task) => task.Name switch
    {
        "semseg" => SemanticSegmentation is not null,
        "human_parts" => HumanParts is not null,
        "sal" => Saliency is not null,
        "normals" => SurfaceNormals is not null,
        _ => false,
    };

    /// <summary>A printable table: one line per task with its main metric, baseline and relative gain, then Δm.</summary>
    /// <returns>The table, lines separated by <see cref="Environment.NewLine"/>.</returns>
    public string ToTable()
    {
        var ci = CultureInfo.InvariantCulture;
        var rows = new List<string[]> { new[] { "Task", "Metric", "Value", "Single-task", "Gain (%)", "Details" } };
        foreach (var task in Tasks)
        {
            double value = GetPaperMetric(task);
            bool hasBaseline = Baselines.TryGetValue(task, out double baseline);
            string details = task.Name switch
            {
                "semseg" => string.Format(ci, "pixel acc {0:F2} %", SemanticSegmentation!.PixelAccuracy * 100),
                "human_parts" => string.Format(ci, "pixel acc {0:F2} %", HumanParts!.PixelAccuracy * 100),
                "sal" => string.Format(ci, "maxF {0:F2} %, best threshold {1:F2}", Saliency!.MaxF * 100, Saliency.BestThreshold),
                _ when OtherSegmentations.TryGetValue(task, out var m) => string.Format(ci, "pixel acc {0:F2} %", m.PixelAccuracy * 100),
                _ when OtherSaliencyMaps.TryGetValue(task, out var m) => string.Format(ci, "maxF {0:F2} %, best threshold {1:F2}", m.MaxF * 100, m.BestThreshold),
                _ when Edges.TryGetValue(task, out var m) => string.Format(ci, "precision {0:F2} %, recall {1:F2} % (pixel-wise, not ODS-F)", m.Precision * 100, m.Recall * 100),
                _ when Depths.TryGetValue(task, out var m) => string.Format(ci, "log-RMSE {0:F4}", m.LogRmse),
                _ => string.Format(ci, "median {0:F2}°, RMSE {1:F2}°, <11.25° {2:F2} %, <22.5° {3:F2} %, <30° {4:F2} %",
                    Normals(task).Median, Normals(task).Rmse, Normals(task).Within11_25 * 100, Normals(task).Within22_5 * 100, Normals(task).Within30 * 100),
            };
            rows.Add(
            [
                task.Name,
                MetricLabel(task),
                value.ToString(Depths.ContainsKey(task) ? "F4" : "F2", ci),
                hasBaseline ? baseline.ToString(Depths.ContainsKey(task) ? "F4" : "F2", ci) : "-",
                hasBaseline ? Evaluation.DeltaM.RelativeGain(task, value, baseline).ToString("+0.00;-0.00;0.00", ci) : "-",
                details,
            ]);
        }
        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
            sb.AppendLine(string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c]))).TrimEnd());
        if (Protocol is { } protocol) sb.AppendLine($"Protocol: {protocol.Name()}");
        sb.Append(DeltaM is double dm
            ? string.Format(ci, "Δm = {0:+0.00;-0.00;0.00} % over {1} task(s) with a baseline", dm, Tasks.Count(t => Baselines.TryGetValue(t, out _)))
            : "Δm: no evaluated task has a single-task baseline");
        return sb.ToString();
    }

    /// <summary>The normals metrics of an evaluated surface-normals task, <c>normals</c> or another name.</summary>
    private NormalsMetrics Normals(DenseTaskDescriptor task) =>
        OtherNormals.TryGetValue(task, out var m) ? m : SurfaceNormals!;

    private string MetricLabel(DenseTaskDescriptor task) =>
        task == DenseTask.SurfaceNormals || OtherNormals.ContainsKey(task) ? "mean angle (°)"
        : Depths.ContainsKey(task) ? "RMSE"
        : Edges.ContainsKey(task) ? EdgeMeter.MetricName + " (%)"
        : "mIoU (%)";

    /// <summary>The same as <see cref="ToTable"/>.</summary>
    /// <returns>The printable table.</returns>
    public override string ToString() => ToTable();

    /// <summary>
    /// The metrics as a <see cref="DataFrame"/> with one row per evaluated task (for notebooks); a cell that does not
    /// apply to a task is null. Columns: Task, MeanIoU, PixelAccuracy, MaxF, MaxFBeta, MeanAngle, MedianAngle, Rmse,
    /// ReferenceRmse, Within11_25, Within22_5, Within30 (fractions and degrees as in the metric objects),
    /// PaperMetric, Baseline, Gain (percent); then, only when a depth or edge task was evaluated, DepthRmse, DepthLogRmse,
    /// EdgeF (the <c>edge_f@0.5</c> fraction), EdgePrecision, EdgeRecall.
    /// </summary>
    /// <returns>A new data frame.</returns>
    public DataFrame ToDataFrame()
    {
        double? Seg(DenseTaskDescriptor t, Func<SegmentationMetrics, double> f) =>
            t == DenseTask.SemanticSegmentation ? f(SemanticSegmentation!) : t == DenseTask.HumanParts ? f(HumanParts!)
            : OtherSegmentations.TryGetValue(t, out var m) ? f(m) : null;
        double? Sal(DenseTaskDescriptor t, Func<SaliencyMetrics, double> f) =>
            t == DenseTask.Saliency ? f(Saliency!) : OtherSaliencyMaps.TryGetValue(t, out var m) ? f(m) : null;
        double? Dep(DenseTaskDescriptor t, Func<DepthMetrics, double> f) => Depths.TryGetValue(t, out var m) ? f(m) : null;
        double? Edg(DenseTaskDescriptor t, Func<EdgeMetrics, double> f) => Edges.TryGetValue(t, out var m) ? f(m) : null;
        double? Nrm(DenseTaskDescriptor t, Func<NormalsMetrics, double> f) =>
            t == DenseTask.SurfaceNormals ? f(SurfaceNormals!) : OtherNormals.TryGetValue(t, out var m) ? f(m) : null;
        double? MeanIoU(DenseTaskDescriptor t) => Seg(t, m => m.MeanIoU) ?? Sal(t, m => m.MeanIoU);
        double? Baseline(DenseTaskDescriptor t) => Baselines.TryGetValue(t, out double b) ? b : null;
        double? Gain(DenseTaskDescriptor t) => Baseline(t) is double b ? Evaluation.DeltaM.RelativeGain(t, GetPaperMetric(t), b) : null;

        DoubleDataFrameColumn Column(string name, Func<DenseTaskDescriptor, double?> f) => new(name, Tasks.Select(f));
        var frame = new DataFrame(
            new StringDataFrameColumn("Task", Tasks.Select(t => t.Name)),
            Column("MeanIoU", MeanIoU),
            Column("PixelAccuracy", t => Seg(t, m => m.PixelAccuracy)),
            Column("MaxF", t => Sal(t, m => m.MaxF)),
            Column("MaxFBeta", t => Sal(t, m => m.MaxFBeta)),
            Column("MeanAngle", t => Nrm(t, m => m.Mean)),
            Column("MedianAngle", t => Nrm(t, m => m.Median)),
            Column("Rmse", t => Nrm(t, m => m.Rmse)),
            Column("ReferenceRmse", t => Nrm(t, m => m.ReferenceRmse)),
            Column("Within11_25", t => Nrm(t, m => m.Within11_25)),
            Column("Within22_5", t => Nrm(t, m => m.Within22_5)),
            Column("Within30", t => Nrm(t, m => m.Within30)),
            Column("PaperMetric", t => GetPaperMetric(t)),
            Column("Baseline", Baseline),
            Column("Gain", Gain));
        if (Depths.Count + Edges.Count > 0)
        {
            frame.Columns.Add(Column("DepthRmse", t => Dep(t, m => m.Rmse)));
            frame.Columns.Add(Column("DepthLogRmse", t => Dep(t, m => m.LogRmse)));
            frame.Columns.Add(Column("EdgeF", t => Edg(t, m => m.FMeasure)));
            frame.Columns.Add(Column("EdgePrecision", t => Edg(t, m => m.Precision)));
            frame.Columns.Add(Column("EdgeRecall", t => Edg(t, m => m.Recall)));
        }
        return frame;
    }

    /// <summary>
    /// The metrics as JSON, keyed by the reference's task names and, where the reference has them, its metric names and
    /// units: <c>semseg</c>/<c>human_parts</c> {<c>mIoU</c> (fraction), <c>pixel_accuracy</c>, <c>per_class_iou</c>},
    /// <c>sal</c> {<c>mIoU</c>, <c>maxF</c> (fractions), <c>best_threshold</c>, <c>maxF_threshold</c>, <c>max_f_beta</c>
    /// (β² = 0.3, computed correctly)}, <c>normals</c> {<c>mean</c>, <c>median</c>, <c>rmse</c> (the reference's,
    /// equal to the mean), <c>rmse_true</c> (degrees), <c>11.25</c>, <c>22.5</c>, <c>30</c> (percent of valid pixels,
    /// as the reference reports them)}; a surface-normals task of another name as normals, under its own name; any other segmentation as semseg (its own class count), any other saliency-like map
    /// as sal, a depth task {<c>rmse</c>, <c>log_rmse</c> (as the reference's <c>DepthMeter</c>), <c>pixels</c>}, an edge map
    /// {<c>edge_f@0.5</c>, <c>precision</c>, <c>recall</c> (fractions; pixel-wise at threshold 0.5, not the ODS-F of the
    /// reference's external MATLAB benchmark), <c>threshold</c>, <c>pixels</c>, <c>images</c>}; then <c>delta_m</c> (percent) and <c>baselines</c> when Δm applies; first <c>protocol</c>
    /// (<c>reference</c> or <c>native</c>) when <see cref="Protocol"/> is set. JSON has no NaN or
    /// infinity: a metric that is not a finite number (a network that outputs NaN) is written as <c>null</c>, and
    /// <c>non_finite</c> maps its path (e.g. <c>normals.mean</c>) to <c>"NaN"</c>, <c>"Infinity"</c> or <c>"-Infinity"</c>.
    /// </summary>
    /// <returns>A new JSON object.</returns>
    public JsonObject ToJson()
    {
        var json = ToJsonWithNonFinite();
        var notes = new JsonObject();
        ReplaceNonFinite(json, "", notes);
        if (notes.Count > 0) json["non_finite"] = notes;
        return json;
    }

    /// <summary>Replaces every NaN or infinite number under <paramref name="node"/> by null, noting its path and value.</summary>
    private static void ReplaceNonFinite(JsonNode node, string path, JsonObject notes)
    {
        static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;
        static string? NonFinite(JsonNode? n) =>
            n is JsonValue v && v.TryGetValue<double>(out double d) && !double.IsFinite(d)
                ? (double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity")
                : null;
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(kv => kv.Key).ToList())
                {
                    if (NonFinite(o[key]) is { } text) { notes[Join(path, key)] = text; o[key] = null; }
                    else if (o[key] is { } child) ReplaceNonFinite(child, Join(path, key), notes);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++)
                {
                    string at = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
                    if (NonFinite(a[i]) is { } text) { notes[at] = text; a[i] = null; }
                    else if (a[i] is { } child) ReplaceNonFinite(child, at, notes);
                }
                break;
        }
    }

    private JsonObject ToJsonWithNonFinite()
    {
        var json = new JsonObject();
        if (Protocol is { } protocol) json["protocol"] = protocol.Name();
        foreach (var task in Tasks)
        {
            json[task.Name] = task.Name switch
            {
                "semseg" => SegmentationJson(SemanticSegmentation!),
                "human_parts" => SegmentationJson(HumanParts!),
                "sal" => SaliencyJson(Saliency!),
                _ when OtherSegmentations.TryGetValue(task, out var m) => SegmentationJson(m),
                _ when OtherSaliencyMaps.TryGetValue(task, out var m) => SaliencyJson(m),
                _ when Edges.TryGetValue(task, out var m) => new JsonObject
                {
                    [EdgeMeter.MetricName] = m.FMeasure,
                    ["precision"] = m.Precision,
                    ["recall"] = m.Recall,
                    ["threshold"] = EdgeMeter.Threshold,
                    ["pixels"] = m.PixelCount,
                    ["images"] = m.ImageCount,
                },
                _ when Depths.TryGetValue(task, out var m) => new JsonObject
                {
                    ["rmse"] = m.Rmse,
                    ["log_rmse"] = m.LogRmse,
                    ["pixels"] = m.PixelCount,
                },
                _ => NormalsJson(Normals(task)),
            };
        }
        if (DeltaM is double dm)
        {
            json["delta_m"] = dm;
            var baselines = new JsonObject();
            foreach (var task in Tasks)
                if (Baselines.TryGetValue(task, out double b)) baselines[task.Name] = b;
            json["baselines"] = baselines;
        }
        return json;
    }

    private static JsonObject NormalsJson(NormalsMetrics m) => new()
    {
        ["mean"] = m.Mean,
        ["median"] = m.Median,
        ["rmse"] = m.ReferenceRmse,
        ["rmse_true"] = m.Rmse,
        ["11.25"] = m.Within11_25 * 100,
        ["22.5"] = m.Within22_5 * 100,
        ["30"] = m.Within30 * 100,
        ["pixels"] = m.PixelCount,
    };

    private static JsonObject SaliencyJson(SaliencyMetrics m) => new()
    {
        ["mIoU"] = m.MeanIoU,
        ["maxF"] = m.MaxF,
        ["best_threshold"] = m.BestThreshold,
        ["maxF_threshold"] = m.MaxFThreshold,
        ["max_f_beta"] = m.MaxFBeta,
        ["images"] = m.ImageCount,
    };

    private static JsonObject SegmentationJson(SegmentationMetrics m) => new()
    {
        ["mIoU"] = m.MeanIoU,
        ["pixel_accuracy"] = m.PixelAccuracy,
        ["per_class_iou"] = new JsonArray(m.PerClassIoU.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
        ["pixels"] = m.PixelCount,
    };
}
