using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Visualization;
using TorchSharp;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora tradeoff --model a.zip [--model b.zip ...] --data &lt;root&gt; --out tradeoff.html</c>: scores each trained
/// model on a PASCAL_MT split, counts its trainable parameters and writes the accuracy/parameter trade-off plot (the
/// paper's Figure 1 view: trainable parameters against Δm); prints one JSON object with every model's numbers on stdout.
/// </summary>
public static class TradeOffCommand
{
    /// <summary>Builds the <c>tradeoff</c> verb.</summary>
    public static Command Create()
    {
        var cmd = new Command("tradeoff",
            "Evaluate several trained models on a PASCAL_MT split and plot trainable parameters against delta_m (the paper's Figure 1) " +
            "as self-contained HTML; prints one JSON object with each model's trainable parameters, delta_m and metrics.");
        var models = new Option<string[]>("--model") { Description = "A model.zip written by 'mtlora train'; repeat for each model.", Required = true };
        var labels = new Option<string[]>("--label")
        {
            Description = "The plot label of a model, as <model>=<label> (the --model path or its file name), e.g. a.zip=\"MTLoRA r64\"; repeatable. " +
                          "Default: the file name without extension.",
        };
        var data = new Option<string>("--data") { Description = "The PASCAL_MT root whose split the models are scored on.", Required = true };
        var split = new Option<string>("--split") { Description = "The split to score: val (default) or train.", DefaultValueFactory = _ => "val" };
        var baselines = new Option<string>("--baselines")
        {
            Description = "Single-task baselines for delta_m: 'paper' (the default) or task=value pairs (mIoU in percent, normals mean angle " +
                          "in degrees), e.g. semseg=67.21,human_parts=61.93,sal=62.35,normals=17.97. 'none' leaves no delta_m to plot.",
            DefaultValueFactory = _ => "paper",
        };
        var output = new Option<string>("--out") { Description = "The HTML file to write (e.g. tradeoff.html).", Required = true };
        foreach (var o in new Option[] { models, labels, data, split, baselines, output }) cmd.Options.Add(o);
        cmd.SetAction(parseResult => Run(parseResult.GetValue(models) ?? [], parseResult.GetValue(labels) ?? [], parseResult.GetValue(data),
            parseResult.GetValue(split), parseResult.GetValue(baselines), parseResult.GetValue(output),
            parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error));
        return cmd;
    }

    /// <summary>
    /// Runs the verb: 0 on success, 2 on a user error (one line on <paramref name="stderr"/>). Every option is checked and
    /// every model file is looked for before any model is evaluated, so a typo fails at once rather than after the first evaluation.
    /// </summary>
    public static int Run(IReadOnlyList<string> modelPaths, IReadOnlyList<string> labelTexts, string? dataRoot, string? split,
        string? baselinesText, string? outPath, TextWriter stdout, TextWriter stderr) =>
        CliCommon.Guard("tradeoff", stderr, () =>
        {
            if (modelPaths.Count == 0) throw new CliCommon.UsageException("give at least one --model <model.zip>.");
            foreach (var path in modelPaths)
                if (!File.Exists(path)) throw new CliCommon.UsageException($"--model: file '{path}' does not exist (expected a model.zip written by 'mtlora train').");
            if (string.IsNullOrWhiteSpace(dataRoot)) throw new CliCommon.UsageException("give --data <PASCAL_MT root>.");
            if (!Directory.Exists(dataRoot)) throw new CliCommon.UsageException($"--data: folder '{dataRoot}' does not exist (expected a PASCAL_MT root with JPEGImages/ and ImageSets/).");
            if (string.IsNullOrWhiteSpace(outPath)) throw new CliCommon.UsageException("give --out <tradeoff.html>.");
            OutputPaths.CheckFile("--out", outPath); // before the models are scored
            split = string.IsNullOrWhiteSpace(split) ? "val" : split.Trim();
            SingleTaskBaselines baselines;
            try { baselines = SingleTaskBaselines.Parse(baselinesText ?? "paper"); }
            catch (FormatException e) { throw new CliCommon.UsageException($"--baselines: {e.Message}"); }
            var labels = ParseLabels(labelTexts, modelPaths);

            var ml = new MLContext(seed: 0);
            var points = new List<TradeOffPoint>();
            var rows = new JsonArray();
            for (int i = 0; i < modelPaths.Count; i++)
            {
                string path = modelPaths[i], label = labels[i];
                var loaded = CliCommon.LoadModel(ml, path, out _);
                try
                {
                    var transformer = CliCommon.FindMtLora(loaded)
                        ?? throw new CliCommon.UsageException($"--model: '{path}' holds no MTLoRA transformer (expected a model.zip written by 'mtlora train').");
                    long trainable;
                    // The meta device builds every shape without storage: the count costs nothing whatever the model's size.
                    using (var meta = new MultiTaskSwin(transformer.NetworkOptions, torch.META)) trainable = meta.CountParameters().Trainable;
                    var view = ml.Data.LoadPascalContext(dataRoot, split, transformer.Tasks.Select(t => t.ToPascalTask()));
                    var metrics = CliCommon.EvaluateWithProgress(ml, loaded, view, baselines, stderr,
                        $"[{i + 1}/{modelPaths.Count}] evaluating {label} on {split}");
                    double deltaM = metrics.DeltaM
                        ?? throw new CliCommon.UsageException($"no delta_m for '{path}': none of its tasks ({string.Join(", ", transformer.Tasks.Select(t => t.ReferenceName()))}) " +
                                                              "has a single-task baseline; give --baselines paper or task=value pairs for them.");
                    if (!double.IsFinite(deltaM))
                        throw new InvalidDataException($"delta_m of '{path}' is {deltaM}, not a finite number; its metrics: {metrics.ToJson().ToJsonString()}.");
                    points.Add(new TradeOffPoint(label, trainable, deltaM));
                    rows.Add(new JsonObject
                    {
                        ["model"] = path,
                        ["label"] = label,
                        ["trainable"] = trainable,
                        ["delta_m"] = deltaM,
                        ["metrics"] = metrics.ToJson(),
                    });
                }
                finally
                {
                    (loaded as IDisposable)?.Dispose();
                }
            }

            OutputPaths.Write(outPath, stream => stream.Write(System.Text.Encoding.UTF8.GetBytes(TradeOffPlot.ToHtml(points))));
            stderr.WriteLine($"wrote {outPath}");
            CliCommon.WriteJson(new JsonObject { ["out"] = outPath, ["models"] = rows }, stdout);
            return 0;
        });

    /// <summary>
    /// One label per model: <c>model=label</c> pairs name a model by its <c>--model</c> path or file name; models
    /// without a pair get their file name without extension.
    /// </summary>
    internal static string[] ParseLabels(IReadOnlyList<string> labelTexts, IReadOnlyList<string> modelPaths)
    {
        var labels = modelPaths.Select(p => Path.GetFileNameWithoutExtension(p)).ToArray();
        foreach (var text in labelTexts)
        {
            int eq = text.LastIndexOf('=');
            // The label is after the last '=' only if the key names a model; else try the first '=' (labels may hold '=', e.g. "r=64").
            var candidates = new[] { text.IndexOf('='), eq }.Where(k => k > 0).Distinct();
            bool matched = false;
            foreach (var k in candidates)
            {
                string key = text[..k].Trim(), label = text[(k + 1)..].Trim();
                var hits = Enumerable.Range(0, modelPaths.Count)
                    .Where(i => modelPaths[i] == key || Path.GetFileName(modelPaths[i]) == key).ToArray();
                if (hits.Length == 0) continue;
                if (label.Length == 0) throw new CliCommon.UsageException($"--label '{text}': the label after '=' is empty.");
                foreach (var h in hits) labels[h] = label;
                matched = true;
                break;
            }
            if (!matched)
                throw new CliCommon.UsageException($"--label '{text}': expected <model>=<label> where <model> is a --model path or its file name " +
                                                   $"({string.Join(", ", modelPaths.Select(Path.GetFileName))}).");
        }
        return labels;
    }
}
