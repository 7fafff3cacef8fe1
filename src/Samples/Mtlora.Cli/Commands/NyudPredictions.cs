using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Evaluation;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora evaluate --predictions &lt;dir&gt; --dataset nyud --data &lt;root&gt;</c>: scores per-image prediction files
/// against a NYUD_MT split. The folder holds <c>depth/&lt;id&gt;.npy</c> (float32 H×W, or H×W×1, metres; scored by
/// <see cref="DepthMeter"/>) and/or <c>edge/&lt;id&gt;.npy</c> (edge probabilities 0..1) or <c>edge/&lt;id&gt;.png</c>
/// (8-bit gray, value / 255; scored by <see cref="EdgeMeter"/> at 0.5, reported as <c>edge_f@0.5</c>, not ODS-F), one file per
/// id of the split, at the label's size. A task is scored when its subfolder exists.
/// </summary>
internal static class NyudPredictions
{
    /// <summary>Scores the prediction folder against the split; every error names the file or option at fault.</summary>
    public static MultiTaskMetrics Evaluate(string predictionsDir, string root, string split, string? baselinesText)
    {
        if (!Directory.Exists(predictionsDir))
            throw new CliCommon.UsageException($"--predictions: folder '{predictionsDir}' does not exist (with --dataset nyud: a folder with depth/<id>.npy and/or edge/<id>.npy|png).");
        if (!Directory.Exists(root))
            throw new CliCommon.UsageException($"--data: NYUD_MT root '{root}' does not exist.");
        var tasks = new List<DenseTaskDescriptor>();
        if (Directory.Exists(Path.Combine(predictionsDir, "depth"))) tasks.Add(DenseTaskDescriptor.NyudDepth);
        if (Directory.Exists(Path.Combine(predictionsDir, "edge"))) tasks.Add(DenseTaskDescriptor.NyudEdge);
        if (tasks.Count == 0)
            throw new CliCommon.UsageException($"--predictions: folder '{predictionsDir}' has no depth/ or edge/ subfolder (expected depth/<id>.npy float32 H×W metres, edge/<id>.npy or edge/<id>.png).");
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
                if (task == DenseTaskDescriptor.NyudDepth)
                    meter.Depth(task)!.Update(ReadDepthPrediction(predictionsDir, id, width, height), NyudLayout.ReadDepth(root, id, width, height));
                else
                    meter.Edge(task)!.Update(ReadEdgePrediction(predictionsDir, id, width, height), NyudLayout.ReadEdge(root, id, width, height));
            }
        }
        return meter.GetMetrics(baselines);
    }

    private static float[] ReadDepthPrediction(string dir, string id, int width, int height)
    {
        string path = Path.Combine(dir, "depth", id + ".npy");
        if (!File.Exists(path)) throw new FileNotFoundException($"--predictions: '{path}' is missing: every id of the split needs its depth prediction (float32 H×W .npy, metres).", path);
        var a = NpyFile.Read(path);
        CheckShape(a.Shape, path, width, height);
        int bad = Array.FindIndex(a.Values, v => !float.IsFinite(v));
        if (bad >= 0) throw new InvalidDataException($"'{path}': pixel (x {bad % width}, y {bad / width}) holds {a.Values[bad]}; expected a finite depth in metres.");
        return a.Values;
    }

    private static float[] ReadEdgePrediction(string dir, string id, int width, int height)
    {
        string npy = Path.Combine(dir, "edge", id + ".npy"), png = Path.Combine(dir, "edge", id + ".png");
        if (File.Exists(npy))
        {
            var a = NpyFile.Read(npy);
            CheckShape(a.Shape, npy, width, height);
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

    private static void CheckShape(IReadOnlyList<int> shape, string path, int width, int height)
    {
        bool ok = (shape.Count == 2 || (shape.Count == 3 && shape[2] == 1)) && shape[0] == height && shape[1] == width;
        if (!ok) throw new InvalidDataException($"'{path}' has shape ({string.Join(", ", shape)}); expected ({height}, {width}) as its label.");
    }
}
