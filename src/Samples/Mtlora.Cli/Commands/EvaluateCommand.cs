using System.CommandLine;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Evaluation;
using static TorchSharp.torch;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora evaluate --predictions &lt;file.safetensors&gt;</c>: scores raw network outputs <c>out.&lt;task&gt;</c>
/// against targets <c>target.&lt;task&gt;</c> with the reference's metrics and prints one JSON object on stdout;
/// <c>mtlora evaluate --model model.zip [--dataset nyud] --data &lt;root&gt;</c> scores a trained model on a PASCAL_MT (or NYUD_MT) split instead.
/// </summary>
/// <remarks>
/// Each input mode computes a <see cref="MultiTaskMetrics"/> and hands it to <see cref="WriteJson"/>, so another mode
/// (a model and a data set) can be added beside <see cref="EvaluateTensorFile"/>.
/// </remarks>
public static class EvaluateCommand
{
    /// <summary>Images scored per step: bounds the memory of the temporaries (argmax, masks) whatever the file size.</summary>
    private const int BatchSize = 8;

    /// <summary>Builds the <c>evaluate</c> verb.</summary>
    public static Command Create()
    {
        var cmd = new Command("evaluate",
            "Score dense multi-task predictions and print one JSON object: per task its metrics (mIoU and maxF as fractions, " +
            "normals angles in degrees, normals 11.25/22.5/30 in percent) and delta_m (percent) when the tasks have baselines.");
        var predictions = new Option<string>("--predictions")
        {
            Description = "A safetensors file with raw outputs out.<task> (N, C, H, W) and targets target.<task> (N, 1, H, W), " +
                          "or (N, 3, H, W) for normals, 255 = ignore; tasks semseg, human_parts, sal, normals, depth (out.depth: metres), " +
                          "edge (out.edge: logits; scored as edge_f@0.5, not ODS-F) (any subset). With --dataset nyud: a folder (see --dataset).",
        };
        var baselines = new Option<string>("--baselines")
        {
            Description = "Single-task baselines for delta_m: task=value pairs (mIoU in percent, normals mean angle in degrees), " +
                          "e.g. semseg=67.21,human_parts=61.93,sal=62.35,normals=17.97; 'paper' (the default) or 'none'.",
            DefaultValueFactory = _ => "paper",
        };
        var model = new Option<string>("--model") { Description = "A model.zip written by 'mtlora train' (use with --data instead of --predictions; with --dataset nyud a model trained with --dataset nyud)." };
        var data = new Option<string>("--data") { Description = "The PASCAL_MT root (with --dataset nyud: the NYUD_MT root) whose split --model is scored on." };
        var split = new Option<string>("--split") { Description = "The split to score with --model: val (default) or train.", DefaultValueFactory = _ => "val" };
        var protocol = new Option<string>("--protocol")
        {
            Description = "How --model is scored: reference (default; the paper's and the baselines' protocol: labels resized to the network's " +
                          "input size, predictions scored at that size) or native (each image at its own size).",
            DefaultValueFactory = _ => "reference",
        };
        cmd.Options.Add(predictions);
        cmd.Options.Add(baselines);
        cmd.Options.Add(model);
        cmd.Options.Add(data);
        cmd.Options.Add(split);
        cmd.Options.Add(protocol);
        var dataset = NyudCommands.DatasetOption();
        dataset.Description = "pascal (the default) or nyud: score --model on the NYUD_MT root --data, split --split (as for pascal; --baselines default none), or a folder --predictions with any of " + NyudPredictions.Layout +
                              ", one file per id at its label's size, against the NYUD_MT root --data, split --split (semseg: mIoU over 40 classes; " +
                              "depth: rmse and log_rmse; normals: angles; edge: edge_f@0.5, a pixel-wise F at threshold 0.5, not ODS-F; --baselines default none).";
        cmd.Options.Add(dataset);
        cmd.SetAction(parseResult =>
        {
            var stdout = parseResult.InvocationConfiguration.Output;
            var stderr = parseResult.InvocationConfiguration.Error;
            string? modelPath = parseResult.GetValue(model), dataRoot = parseResult.GetValue(data);
            if (parseResult.GetValue(dataset) == "nyud")
            {
                string? baselinesGiven = parseResult.GetResult(baselines) is { Implicit: false } ? parseResult.GetValue(baselines) : null;
                if (modelPath is not null && parseResult.GetValue(predictions) is null)
                    return RunModel(modelPath, dataRoot, parseResult.GetValue(split), baselinesGiven, stdout, stderr, parseResult.GetValue(protocol), nyud: true);
                return RunNyud(parseResult.GetValue(predictions), dataRoot, modelPath, parseResult.GetValue(split), baselinesGiven, stdout, stderr);
            }
            if (modelPath is null && dataRoot is null)
                return Run(parseResult.GetValue(predictions), parseResult.GetValue(baselines), stdout, stderr);
            if (parseResult.GetValue(predictions) is not null)
            {
                stderr.WriteLine("mtlora evaluate: give either --predictions or --model with --data, not both.");
                return 2;
            }
            return RunModel(modelPath, dataRoot, parseResult.GetValue(split), parseResult.GetValue(baselines), stdout, stderr, parseResult.GetValue(protocol));
        });
        return cmd;
    }

    /// <summary>
    /// The <c>--model --data</c> mode: loads a model.zip, scores a split of a PASCAL_MT root (with <paramref name="nyud"/>, of a
    /// NYUD_MT root: <c>LoadNyud</c>) and prints the same JSON as <c>--predictions</c>, with <c>protocol</c> naming the
    /// <see cref="EvaluationProtocol"/> (<c>--protocol</c>, default reference). 0 on success, 2 on a user error (one line on
    /// <paramref name="stderr"/>).
    /// </summary>
    public static int RunModel(string? modelPath, string? dataRoot, string? split, string? baselinesText, TextWriter stdout, TextWriter stderr,
        string? protocolText = "reference", bool nyud = false) =>
        CliCommon.Guard("evaluate", stderr, () =>
        {
            string layout = nyud ? "NYUD_MT root" : "PASCAL_MT root";
            if (string.IsNullOrWhiteSpace(modelPath)) throw new CliCommon.UsageException("--data needs --model <model.zip>.");
            if (string.IsNullOrWhiteSpace(dataRoot)) throw new CliCommon.UsageException($"--model needs --data <{layout}>.");
            if (!Directory.Exists(dataRoot))
                throw new CliCommon.UsageException($"--data: folder '{dataRoot}' does not exist (expected a {layout} with {(nyud ? "images/ and gt_sets/" : "JPEGImages/ and ImageSets/")}).");
            split = string.IsNullOrWhiteSpace(split) ? "val" : split.Trim();
            var protocol = CliCommon.ParseProtocol(protocolText);
            SingleTaskBaselines baselines;
            if (nyud) baselines = NyudCommands.ParseBaselines(baselinesText, "--baselines");
            else
            {
                try { baselines = SingleTaskBaselines.Parse(baselinesText ?? "paper"); }
                catch (FormatException e) { throw new CliCommon.UsageException($"--baselines: {e.Message}"); }
            }
            var ml = new MLContext(seed: 0);
            var loaded = CliCommon.LoadModel(ml, modelPath, out _, stderr);
            try
            {
                var modelTasks = CliCommon.FindMtLora(loaded)?.Tasks ?? DenseTaskDescriptor.Pascal;
                var known = nyud ? DenseTaskDescriptor.Nyud : DenseTaskDescriptor.Pascal;
                if (modelTasks.FirstOrDefault(t => !known.Any(k => k.SameDefinition(t))) is { } foreign)
                {
                    bool nyudModel = modelTasks.All(t => DenseTaskDescriptor.Nyud.Any(k => k.SameDefinition(t)));
                    throw new CliCommon.UsageException($"--model '{modelPath}' predicts task '{foreign.Name}' ({foreign.OutputChannels} output channel(s)), which is not a " +
                        $"{(nyud ? "NYUD-v2" : "PASCAL-Context")} task ({string.Join(", ", known.Select(t => t.Name))}): " +
                        (nyudModel && !nyud ? "it is a NYUD-v2 model; give --dataset nyud and a NYUD_MT root." : "score it on the data set it was trained for."));
                }
                IDataView view = nyud
                    ? ml.Data.LoadNyud(dataRoot, split)
                    : ml.Data.LoadPascalContext(dataRoot, split, modelTasks.Select(t => t.ToPascalTask()).ToArray());
                var metrics = CliCommon.EvaluateWithProgress(ml, loaded, view, baselines, stderr, $"evaluating {split} images ({protocol.Name()} protocol)", protocol);
                if (view is Microsoft.ML.MtLora.Data.Pascal.PascalContextDataView pascal) CliCommon.WriteLabelNotes(pascal, stderr);
                WriteJson(metrics, stdout);
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        });

    /// <summary>
    /// The <c>--dataset nyud</c> mode: scores a folder of per-image semseg, depth, normals and edge predictions against a NYUD_MT split
    /// (<see cref="NyudPredictions"/>) and prints the metrics JSON; 0 on success, 2 on a user error (one line on <paramref name="stderr"/>).
    /// </summary>
    public static int RunNyud(string? predictionsDir, string? dataRoot, string? modelPath, string? split, string? baselinesText, TextWriter stdout, TextWriter stderr) =>
        CliCommon.Guard("evaluate", stderr, () =>
        {
            if (modelPath is not null)
                throw new CliCommon.UsageException("give either --predictions <dir> or --model <model.zip>, not both.");
            if (string.IsNullOrWhiteSpace(predictionsDir)) throw new CliCommon.UsageException($"--dataset nyud needs --predictions <dir> ({NyudPredictions.Layout}).");
            if (string.IsNullOrWhiteSpace(dataRoot)) throw new CliCommon.UsageException("--dataset nyud needs --data <NYUD_MT root>.");
            var metrics = NyudPredictions.Evaluate(predictionsDir, dataRoot, string.IsNullOrWhiteSpace(split) ? "val" : split.Trim(), baselinesText);
            WriteJson(metrics, stdout);
            return 0;
        });

    /// <summary>Runs the verb: 0 on success, 2 on bad input or a usage error (one line on <paramref name="stderr"/>).</summary>
    public static int Run(string? predictionsPath, string? baselinesText, TextWriter stdout, TextWriter stderr)
    {
        if (string.IsNullOrWhiteSpace(predictionsPath))
        {
            stderr.WriteLine("mtlora evaluate: give --predictions <file.safetensors>, or --model <model.zip> with --data <root>.");
            return 2;
        }
        SingleTaskBaselines baselines;
        try
        {
            string text = baselinesText ?? "paper";
            // 'paper' holds PASCAL's tasks only; depth and edge, when the file has them, then have no baseline.
            baselines = text.Trim().Equals("paper", StringComparison.OrdinalIgnoreCase) ? SingleTaskBaselines.Paper : SingleTaskBaselines.Parse(text, TensorFileTasks);
        }
        catch (FormatException e)
        {
            stderr.WriteLine($"mtlora evaluate: --baselines: {e.Message}");
            return 2;
        }
        try
        {
            var metrics = EvaluateTensorFile(predictionsPath, baselines);
            WriteJson(metrics, stdout);
            return 0;
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or ArgumentException or InvalidOperationException)
        {
            stderr.WriteLine($"mtlora evaluate: {CliCommon.OneLine(e.Message)}");
            return 2;
        }
    }

    /// <summary>The tasks a safetensors file may hold: PASCAL's four, and NYUD's depth (<c>out.depth</c>: depths in metres,
    /// <c>target.depth</c> with 255 = ignore) and edge (<c>out.edge</c>: logits, <c>target.edge</c> 0/1/255).</summary>
    private static readonly DenseTaskDescriptor[] TensorFileTasks =
        [.. DenseTaskDescriptor.Pascal, DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.NyudEdge];

    /// <summary>Scores every task that has both <c>out.&lt;task&gt;</c> and <c>target.&lt;task&gt;</c> in the file, a few images at a time.</summary>
    public static MultiTaskMetrics EvaluateTensorFile(string path, SingleTaskBaselines baselines)
    {
        var tensors = SafeTensors.Load(path);
        try
        {
            var tasks = new List<DenseTaskDescriptor>();
            foreach (var task in TensorFileTasks)
            {
                bool hasOut = tensors.ContainsKey($"out.{task.Name}");
                bool hasTarget = tensors.ContainsKey($"target.{task.Name}");
                if (hasOut != hasTarget)
                    throw new InvalidDataException($"'{path}' has '{(hasOut ? "out" : "target")}.{task.Name}' but not '{(hasOut ? "target" : "out")}.{task.Name}'.");
                if (hasOut) tasks.Add(task);
            }
            if (tasks.Count == 0)
                throw new InvalidDataException($"'{path}' holds no out.<task>/target.<task> pair (tasks: semseg, human_parts, sal, normals, depth, edge). Keys: {string.Join(", ", tensors.Keys)}.");

            var meter = new MultiTaskMeter(tasks);
            foreach (var task in tasks)
            {
                var output = tensors[$"out.{task.Name}"];
                var target = tensors[$"target.{task.Name}"];
                long channels = task.OutputChannels, targetChannels = task.Kind == DenseTaskKind.SurfaceNormals ? 3 : 1;
                if (output.dim() != 4 || output.size(1) != channels)
                    throw new InvalidDataException($"'{path}': out.{task.Name} has shape ({string.Join(", ", output.shape)}); expected (N, {channels}, H, W).");
                long[] expected = [output.size(0), targetChannels, output.size(2), output.size(3)];
                if (!target.shape.SequenceEqual(expected))
                    throw new InvalidDataException($"'{path}': target.{task.Name} has shape ({string.Join(", ", target.shape)}) but out.{task.Name} is ({string.Join(", ", output.shape)}); expected ({string.Join(", ", expected)}).");
                for (long start = 0; start < output.size(0); start += BatchSize)
                {
                    using var scope = NewDisposeScope();
                    long n = Math.Min(BatchSize, output.size(0) - start);
                    meter.Update(task, output.narrow(0, start, n), target.narrow(0, start, n)); // (n, C, H, W), (n, 1|3, H, W)
                }
            }
            return meter.GetMetrics(baselines);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Writes the metrics as one indented JSON object (see <see cref="MultiTaskMetrics.ToJson"/>).</summary>
    public static void WriteJson(MultiTaskMetrics metrics, TextWriter stdout)
    {
        stdout.WriteLine(metrics.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
