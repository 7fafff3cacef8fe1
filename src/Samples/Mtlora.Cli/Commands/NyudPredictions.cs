using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Evaluation;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora evaluate --predictions &lt;dir&gt; --dataset nyud --data &lt;root&gt;</c>: scores per-image prediction files
/// against a NYUD_MT split, one file per id of the split at its label's size, any subset of the four tasks (a task is scored
/// when its subfolder exists; <see cref="Layout"/>):
/// <list type="bullet">
/// <item><c>semseg/&lt;id&gt;.png</c>: 8-bit grayscale or palette PNG of class ids 0..39, the network's ids (what
/// <c>SemsegPredictedLabel</c> and <c>mtlora predict</c>'s palette PNG hold; NYUD's label file value − 1). NYUD's own file
/// convention (1..40) is refused where it shows (a value 40 or more). Scored by <see cref="SegmentationMeter"/> over 40 classes.</item>
/// <item><c>depth/&lt;id&gt;.npy</c>: float32 H×W or H×W×1, metres; scored by <see cref="DepthMeter"/>, the labels of 0 m (holes) left out.</item>
/// <item><c>normals/&lt;id&gt;.npy</c>: float32 H×W×3 as NYUD's labels (x, y, z; need not be unit length), or
/// <c>normals/&lt;id&gt;.png</c>: RGB with n = 2·v/255 − 1 (the reference's saved predictions, <c>mtlora predict</c>'s normals
/// PNG); normalised and scored by <see cref="NormalsMeter"/> against the labels renormalised, zero vectors ignored (the
/// reference's <c>eval_normals.py</c>; the <see cref="EvaluationProtocol.Native"/> rule of <c>Evaluate</c>).</item>
/// <item><c>edge/&lt;id&gt;.npy</c> (probabilities 0..1) or <c>edge/&lt;id&gt;.png</c> (8-bit gray, value / 255); scored by
/// <see cref="EdgeMeter"/> at 0.5, reported as <c>edge_f@0.5</c>, not ODS-F.</item>
/// </list>
/// </summary>
internal static class NyudPredictions
{
    /// <summary>The folder layout, for the messages and <c>--help</c>.</summary>
    public const string Layout =
        "semseg/<id>.png (8-bit gray or palette, class ids 0..39 = NYUD's file value - 1), depth/<id>.npy (float32 HxW, metres), " +
        "normals/<id>.npy (float32 HxWx3) or normals/<id>.png (RGB, n = 2v/255 - 1), edge/<id>.npy (probabilities 0..1) or edge/<id>.png (8-bit gray, /255)";

    /// <summary>Scores the prediction folder against the split; every error names the file or option at fault.</summary>
    public static MultiTaskMetrics Evaluate(string predictionsDir, string root, string split, string? baselinesText)
    {
        if (!Directory.Exists(predictionsDir))
            throw new CliCommon.UsageException($"--predictions: folder '{predictionsDir}' does not exist (with --dataset nyud: a folder with any of {Layout}).");
        if (!Directory.Exists(root))
            throw new CliCommon.UsageException($"--data: NYUD_MT root '{root}' does not exist.");
        var tasks = DenseTaskDescriptor.Nyud.Where(t => Directory.Exists(Path.Combine(predictionsDir, t.Name))).ToList();
        if (tasks.Count == 0)
            throw new CliCommon.UsageException($"--predictions: folder '{predictionsDir}' has no semseg/, depth/, normals/ or edge/ subfolder (expected {Layout}).");
        SingleTaskBaselines baselines;
        try { baselines = SingleTaskBaselines.Parse(baselinesText ?? "none", tasks); }
        catch (FormatException e) { throw new CliCommon.UsageException($"--baselines: {e.Message}"); }

        var meter = new MultiTaskMeter(tasks);
        foreach (var id in NyudLayout.ReadSplit(root, split))
        {
            var labelShape = NpyFile.Read(Path.Combine(root, "depth", id + ".npy")).Shape;
            int height = labelShape[0], width = labelShape.Count >= 2 ? labelShape[1] : 0;
            foreach (var task in tasks)
            {
                switch (task.Name)
                {
                    case "semseg":
                        meter.SemanticSegmentation!.Update(ReadSemsegPrediction(predictionsDir, id, width, height), NyudLayout.ReadSemseg(root, id, width, height));
                        break;
                    case "depth":
                        // A label of 0 m is a hole, left out as the reference's evaluation/eval_depth.py::eval_depth does for saved
                        // predictions (valid_mask = label != 0) and as both Evaluate overloads do (AddIgnoreRegions: 0 → 255).
                        meter.Depth(task)!.Update(ReadDepthPrediction(predictionsDir, id, width, height),
                            ProtocolLabels.OriginalDepth(NyudLayout.ReadDepth(root, id, width, height), task.IgnoreValue ?? DenseTaskDescriptor.DefaultIgnoreLabel));
                        break;
                    case "normals":
                        var label = NyudLayout.ReadNormals(root, id, width, height);
                        ProtocolLabels.RenormalizeNormals(label);                         // zero vectors → ignored, the rest unit length
                        meter.SurfaceNormals!.Update(ReadNormalsPrediction(predictionsDir, id, width, height), label);
                        break;
                    default:
                        meter.Edge(task)!.Update(ReadEdgePrediction(predictionsDir, id, width, height), NyudLayout.ReadEdge(root, id, width, height));
                        break;
                }
            }
        }
        return meter.GetMetrics(baselines);
    }

    private static byte[] ReadSemsegPrediction(string dir, string id, int width, int height)
    {
        string path = Path.Combine(dir, "semseg", id + ".png");
        if (!File.Exists(path)) throw new FileNotFoundException($"--predictions: '{path}' is missing: every id of the split needs its semseg prediction (8-bit gray or palette PNG, class ids 0..{NyudLayout.SemanticClasses - 1}).", path);
        var image = IndexedPng.Read(path);
        if (image.Width != width || image.Height != height)
            throw new InvalidDataException($"'{path}' is {image.Width}×{image.Height} but the label is {width}×{height}.");
        int bad = Array.FindIndex(image.Pixels, v => v >= NyudLayout.SemanticClasses);
        if (bad >= 0)
            throw new InvalidDataException($"'{path}': pixel (x {bad % width}, y {bad / width}) holds {image.Pixels[bad]}; expected a class id 0..{NyudLayout.SemanticClasses - 1} " +
                $"(the network's ids, NYUD's label file value − 1: a prediction written in NYUD's 1..{NyudLayout.SemanticClasses} convention must be shifted down by 1).");
        return image.Pixels;
    }

    private static float[] ReadDepthPrediction(string dir, string id, int width, int height)
    {
        string path = Path.Combine(dir, "depth", id + ".npy");
        if (!File.Exists(path)) throw new FileNotFoundException($"--predictions: '{path}' is missing: every id of the split needs its depth prediction (float32 H×W .npy, metres).", path);
        var a = NpyFile.Read(path);
        NyudLayout.CheckShape(a, path, width, height, 1);
        int bad = Array.FindIndex(a.Values, v => !float.IsFinite(v));
        if (bad >= 0) throw new InvalidDataException($"'{path}': pixel (x {bad % width}, y {bad / width}) holds {a.Values[bad]}; expected a finite depth in metres.");
        return a.Values;
    }

    /// <summary>The predicted normals as 3·H·W planar floats (the meter normalises them).</summary>
    private static float[] ReadNormalsPrediction(string dir, string id, int width, int height)
    {
        string npy = Path.Combine(dir, "normals", id + ".npy"), png = Path.Combine(dir, "normals", id + ".png");
        if (File.Exists(npy)) return NyudLayout.ReadNormals(dir, id, width, height);     // the labels' layout: (H, W, 3), finite
        if (!File.Exists(png)) throw new FileNotFoundException($"--predictions: neither '{npy}' nor '{png}' exists: every id of the split needs its normals prediction (float32 H×W×3 .npy, or RGB PNG).", npy);
        MLImage image;
        try { image = MLImage.CreateFromFile(png); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
        {
            throw new InvalidDataException($"'{png}' could not be decoded as an RGB PNG: {e.Message}", e);
        }
        int n = width * height;
        var planar = new float[3 * n];
        using (image)
        {
            if (image.Width != width || image.Height != height)
                throw new InvalidDataException($"'{png}' is {image.Width}×{image.Height} but the label is {width}×{height}.");
            var pixels = new byte[4 * n];
            MLImagePixels.CopyTo(image, pixels);
            int r = MLImagePixels.IsBgra(image) ? 2 : 0, b = 2 - r;
            for (int i = 0; i < n; i++)
            {
                // The reference's saved normals: 255·(n + 1)/2 per channel, read back as 2·v/255 − 1.
                planar[i] = 2f * pixels[4 * i + r] / 255f - 1f;
                planar[n + i] = 2f * pixels[4 * i + 1] / 255f - 1f;
                planar[2 * n + i] = 2f * pixels[4 * i + b] / 255f - 1f;
            }
        }
        return planar;
    }

    private static float[] ReadEdgePrediction(string dir, string id, int width, int height)
    {
        string npy = Path.Combine(dir, "edge", id + ".npy"), png = Path.Combine(dir, "edge", id + ".png");
        if (File.Exists(npy))
        {
            var a = NpyFile.Read(npy);
            NyudLayout.CheckShape(a, npy, width, height, 1);
            int bad = Array.FindIndex(a.Values, v => !(v >= 0 && v <= 1));
            if (bad >= 0) throw new InvalidDataException($"'{npy}': pixel (x {bad % width}, y {bad / width}) holds {a.Values[bad]}; expected an edge probability in 0..1.");
            return a.Values;
        }
        if (!File.Exists(png)) throw new FileNotFoundException($"--predictions: neither '{npy}' nor '{png}' exists: every id of the split needs its edge prediction.", npy);
        var image = IndexedPng.Read(png);
        if (image.Width != width || image.Height != height)
            throw new InvalidDataException($"'{png}' is {image.Width}×{image.Height} but the label is {width}×{height}.");
        return image.Pixels.Select(v => v / 255f).ToArray();
    }
}
