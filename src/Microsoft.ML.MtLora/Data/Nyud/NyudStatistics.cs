using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Data.Nyud;

/// <summary>
/// What the reference's NYUD_MT loader would load for one split, counted: samples, and per task the pixels it scores (the
/// segmentation's non-ignored pixels after the 0 → 255 shift, the depth pixels that are not 255 as <c>DepthMeter</c> masks
/// them, with their range and mean, the normals' pixels and the edge map's positives).
/// </summary>
/// <param name="Split">The split.</param>
/// <param name="Samples">The ids the split list names (each with its five files).</param>
/// <param name="SemsegValidPixels">Segmentation pixels labelled 1..40 in the files (0..39 after the shift).</param>
/// <param name="SemsegIgnoredPixels">Segmentation pixels labelled 0 (unlabelled → ignore).</param>
/// <param name="DepthValidPixels">Depth pixels whose value is not 255.</param>
/// <param name="DepthZeroPixels">Depth pixels equal to 0 (missing measurements in raw NYUD depth).</param>
/// <param name="DepthMin">The smallest valid depth (metres), NaN when there is none.</param>
/// <param name="DepthMax">The largest valid depth (metres), NaN when there is none.</param>
/// <param name="DepthMean">The mean valid depth (metres), NaN when there is none.</param>
/// <param name="NormalsPixels">Pixels of the normal maps.</param>
/// <param name="EdgePositivePixels">Edge pixels (value ≥ 0.5).</param>
/// <param name="EdgePixels">Pixels of the edge maps.</param>
public sealed record NyudStatistics(
    string Split, int Samples, long SemsegValidPixels, long SemsegIgnoredPixels,
    long DepthValidPixels, long DepthZeroPixels, double DepthMin, double DepthMax, double DepthMean,
    long NormalsPixels, long EdgePositivePixels, long EdgePixels)
{
    /// <summary>Segmentation pixels per class after the shift (0..39), over the non-ignored pixels; only classes that occur.</summary>
    public IReadOnlyDictionary<int, long> SemsegHistogram { get; init; } = new SortedDictionary<int, long>();

    /// <summary>Normal-map pixels the normals metric scores: those whose x component is not 255 (the reference's
    /// <c>label != 255</c> mask, as for PASCAL).</summary>
    public long NormalsValidPixels { get; init; }

    /// <summary>The protocol whose labels were counted (<see cref="EvaluationProtocol.Native"/>: at each image's own size).</summary>
    public EvaluationProtocol Protocol { get; init; } = EvaluationProtocol.Native;

    /// <summary>The size the labels were resized to under <see cref="EvaluationProtocol.Reference"/>; null under Native.</summary>
    public int? ImageSize { get; init; }

    /// <summary>Reads every label file of a split and counts (the labels are decoded and checked as for training).</summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="split">The split (<c>train</c> or <c>val</c>).</param>
    /// <returns>The counts.</returns>
    /// <exception cref="FileNotFoundException">The split list or a listed file is missing.</exception>
    /// <exception cref="InvalidDataException">A label file is malformed; the message names it.</exception>
    public static NyudStatistics Compute(string root, string split) => Compute(root, split, EvaluationProtocol.Native, 0);

    /// <summary>
    /// The same counts on the labels an <see cref="EvaluationProtocol"/> scores: under <see cref="EvaluationProtocol.Reference"/>
    /// every label resized to <paramref name="imageSize"/>² as the reference's test transforms do (FixedResize: nearest for
    /// the segmentation, depth and edge maps, bicubic and renormalised for the normals; docs/mtlora-reference.md §6.1), the
    /// same resize the evaluation applies; under <see cref="EvaluationProtocol.Native"/> at each image's own size.
    /// </summary>
    /// <param name="root">The NYUD_MT folder.</param>
    /// <param name="split">The split (<c>train</c> or <c>val</c>).</param>
    /// <param name="protocol">The protocol whose labels are counted.</param>
    /// <param name="imageSize">The network's input size S (used under Reference only).</param>
    /// <returns>The counts.</returns>
    /// <exception cref="ArgumentOutOfRangeException">Reference with an image size below 1.</exception>
    /// <exception cref="FileNotFoundException">The split list or a listed file is missing.</exception>
    /// <exception cref="InvalidDataException">A label file is malformed; the message names it.</exception>
    public static NyudStatistics Compute(string root, string split, EvaluationProtocol protocol, int imageSize)
    {
        bool reference = protocol == EvaluationProtocol.Reference;
        if (reference && imageSize < 1)
            throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, $"The image size is {imageSize}; the Reference protocol needs the network's input size (e.g. 448).");
        int s = imageSize;
        var ids = NyudLayout.ReadSplit(root, split);
        long semValid = 0, semIgnored = 0, depthValid = 0, depthZero = 0, normals = 0, normalsValid = 0, edgePos = 0, edges = 0;
        var histogram = new long[NyudLayout.SemanticClasses];
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0;
        foreach (var id in ids)
        {
            var png = IndexedPng.Read(Path.Combine(root, "segmentation", id + ".png"));
            int w = png.Width, h = png.Height;
            foreach (byte c in reference ? ProtocolLabels.ResizeClassMap(NyudLayout.ReadSemseg(root, id, w, h), w, h, s, humanParts: false) : NyudLayout.ReadSemseg(root, id, w, h))
            {
                if (c == DenseTasks.IgnoreLabel) semIgnored++;
                else
                {
                    semValid++;
                    histogram[c]++;
                }
            }
            var depth = NyudLayout.ReadDepth(root, id, w, h);
            if (reference)
            {
                var resized = new float[s * s];
                CvGeometry.ResizeNearest<float>(depth, w, h, resized, s, s);
                depth = resized;
            }
            foreach (float d in depth)
            {
                if (d == 0) depthZero++;
                if (d == DenseTaskDescriptor.DefaultIgnoreLabel) continue;
                depthValid++;
                sum += d;
                min = Math.Min(min, d);
                max = Math.Max(max, d);
            }
            var planar = NyudLayout.ReadNormals(root, id, w, h);
            if (reference) planar = ProtocolLabels.ResizeNormals(planar, w, h, s);
            normals += planar.Length / 3;
            var x = planar.AsSpan(0, planar.Length / 3);                       // the x plane decides validity
            normalsValid += x.Length - x.Count((float)DenseTaskDescriptor.DefaultIgnoreLabel);
            var edge = NyudLayout.ReadEdge(root, id, w, h);
            if (reference) edge = ProtocolLabels.ResizeClassMap(edge, w, h, s, humanParts: false);
            edges += edge.Length;
            edgePos += edge.Count(v => v != 0);
        }
        bool any = depthValid > 0;
        return new NyudStatistics(split, ids.Count, semValid, semIgnored, depthValid, depthZero,
            any ? min : double.NaN, any ? max : double.NaN, any ? sum / depthValid : double.NaN, normals, edgePos, edges)
        {
            SemsegHistogram = new SortedDictionary<int, long>(Enumerable.Range(0, histogram.Length).Where(c => histogram[c] != 0).ToDictionary(c => c, c => histogram[c])),
            NormalsValidPixels = normalsValid,
            Protocol = protocol,
            ImageSize = reference ? imageSize : null,
        };
    }

    /// <summary>
    /// The statistics as the JSON object <c>mtlora inspect-data --dataset nyud</c> prints: <c>{"dataset": "nyud", "split",
    /// "images", "tasks": {"semseg": {"valid_pixels", "ignored_pixels", "histogram"}, "depth": {"valid_pixels", "zero_pixels",
    /// "min", "max", "mean"}, "normals": {"pixels", "valid_pixels"}, "edge": {"pixels", "positive_pixels"}}}</c>, with
    /// <c>protocol</c> and <c>image_size</c> before <c>tasks</c> under <see cref="EvaluationProtocol.Reference"/>; the depth
    /// range and mean are null when no pixel is valid.
    /// </summary>
    /// <returns>The JSON object.</returns>
    public JsonObject ToJson()
    {
        var histogram = new JsonObject();
        foreach (var (c, n) in SemsegHistogram) histogram[c.ToString(CultureInfo.InvariantCulture)] = n;
        static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
        var json = new JsonObject
        {
            ["dataset"] = "nyud",
            ["split"] = Split,
            ["images"] = Samples,
        };
        if (Protocol == EvaluationProtocol.Reference)
        {
            json["protocol"] = EvaluationProtocols.Name(Protocol);
            json["image_size"] = ImageSize;
        }
        json["tasks"] = new JsonObject
            {
                ["semseg"] = new JsonObject { ["valid_pixels"] = SemsegValidPixels, ["ignored_pixels"] = SemsegIgnoredPixels, ["histogram"] = histogram },
                ["depth"] = new JsonObject
                {
                    ["valid_pixels"] = DepthValidPixels, ["zero_pixels"] = DepthZeroPixels,
                    ["min"] = Finite(DepthMin), ["max"] = Finite(DepthMax), ["mean"] = Finite(DepthMean),
                },
                ["normals"] = new JsonObject { ["pixels"] = NormalsPixels, ["valid_pixels"] = NormalsValidPixels },
                ["edge"] = new JsonObject { ["pixels"] = EdgePixels, ["positive_pixels"] = EdgePositivePixels },
            };
        return json;
    }
}
