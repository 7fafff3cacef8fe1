using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;

namespace MtLora.Cli.Commands;

/// <summary>The NYUD-v2 side of <c>make-synthetic</c>, <c>inspect-data</c>, <c>train</c> and <c>evaluate --model</c> (<c>--dataset nyud</c>).</summary>
internal static class NyudCommands
{
    private static string TaskNames => string.Join(", ", DenseTaskDescriptor.Nyud.Select(t => t.Name));

    /// <summary>
    /// A comma-separated list of NYUD task names (<see cref="DenseTaskDescriptor.Nyud"/>: semseg, depth, normals, edge) as
    /// the built-in descriptors, in the order given; a name that is not a NYUD task, a repeated name or an empty list is a
    /// usage error naming <paramref name="option"/> and the valid names.
    /// </summary>
    public static IReadOnlyList<DenseTaskDescriptor> ParseTasks(string text, string option)
    {
        var tasks = new List<DenseTaskDescriptor>();
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var task = DenseTaskDescriptor.Nyud.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase))
                ?? throw new CliCommon.UsageException($"{option}: '{name}' is not a NYUD-v2 task; expected a comma-separated list of {TaskNames}.");
            if (tasks.Contains(task)) throw new CliCommon.UsageException($"{option}: '{name}' is listed more than once; list each task once.");
            tasks.Add(task);
        }
        if (tasks.Count == 0) throw new CliCommon.UsageException($"{option}: no task given; expected e.g. {string.Join(",", DenseTaskDescriptor.Nyud.Select(t => t.Name))}.");
        return tasks;
    }

    /// <summary>
    /// The NYUD tasks of a network configuration: without <paramref name="config"/>, all four; with one, its tasks by name
    /// (a config's <c>semseg</c> reads as PASCAL's 21-class task, so the NYUD built-in of the same name is taken).
    /// </summary>
    public static IReadOnlyList<DenseTaskDescriptor> TasksOf(IEnumerable<DenseTaskDescriptor> configTasks, string? config)
    {
        if (config is null) return DenseTaskDescriptor.Nyud;
        return configTasks.Select(t => DenseTaskDescriptor.Nyud.FirstOrDefault(n => n.Name == t.Name)
            ?? throw new CliCommon.UsageException($"--config '{config}': task '{t.Name}' is not a NYUD-v2 task ({TaskNames}); give --tasks to choose NYUD tasks.")).ToArray();
    }

    /// <summary>
    /// <c>--baselines</c> for NYUD tasks: <c>task=value</c> pairs (<see cref="SingleTaskBaselines.Parse(string, IEnumerable{DenseTaskDescriptor})"/>
    /// with the NYUD built-ins) or <c>none</c>, the default when <paramref name="text"/> is null. <c>paper</c> is refused:
    /// the paper reports no NYUD-v2 single-task results.
    /// </summary>
    public static SingleTaskBaselines ParseBaselines(string? text, string option)
    {
        if (text is null) return SingleTaskBaselines.None;
        if (text.Trim().Equals("paper", StringComparison.OrdinalIgnoreCase))
            throw new CliCommon.UsageException($"{option}: 'paper' holds the paper's PASCAL-Context single-task results; the paper gives none for NYUD-v2. " +
                $"Give your own as task=value pairs (tasks {TaskNames}; e.g. semseg=40.0,depth=0.6) or none.");
        try { return SingleTaskBaselines.Parse(text, DenseTaskDescriptor.Nyud); }
        catch (FormatException e) { throw new CliCommon.UsageException($"{option}: {e.Message}"); }
    }

    /// <summary>The <c>--dataset</c> option the two verbs share: <c>pascal</c> (the default) or <c>nyud</c>.</summary>
    public static Option<string> DatasetOption()
    {
        var option = new Option<string>("--dataset")
        {
            Description = "The dataset layout: pascal (PASCAL_MT, the default) or nyud (NYUD_MT: images/, segmentation/, depth/, normals/, edge/, gt_sets/).",
            DefaultValueFactory = _ => "pascal",
        };
        option.AcceptOnlyFromAmong("pascal", "nyud");
        return option;
    }

    /// <summary>
    /// <c>make-synthetic --dataset nyud</c>: writes the set into a temporary folder beside <paramref name="outDir"/> and moves it
    /// there (a new or empty folder); returns the JSON summary the verb prints.
    /// </summary>
    public static JsonObject MakeSynthetic(string outDir, SyntheticNyudOptions options)
    {
        var watch = Stopwatch.StartNew();
        try { options.Validate(); }
        catch (ArgumentException e)
        {
            var option = e.ParamName switch { "TrainCount" or "ValCount" => "--count", "Width" or "Height" => "--size", _ => null };
            throw new CliCommon.UsageException(option is null ? e.Message : $"{option}: {TrainOptionChecks.MessageOf(e)}");
        }
        var root = OutputPaths.CheckFolder("--out", outDir);
        if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
            throw new CliCommon.UsageException($"--out: folder '{outDir}' is not empty; give a new or empty folder (the data set is written whole, then moved into place).");
        var s = SyntheticDataSets.Generate(root, tmp => SyntheticNyud.Generate(tmp, options), complete: null, replace: () => true);
        return new JsonObject
        {
            ["dataset"] = "nyud",
            ["root"] = root,
            ["train"] = s.TrainIds.Count,
            ["val"] = s.ValIds.Count,
            ["width"] = s.Width,
            ["height"] = s.Height,
            ["seed"] = s.Seed,
            ["seconds"] = Math.Round(watch.Elapsed.TotalSeconds, 3),
        };
    }

    /// <summary>
    /// <c>inspect-data --dataset nyud</c>: reads every label file of the split as the reference's NYUD_MT loader would and
    /// prints <see cref="NyudStatistics.ToJson"/> on <paramref name="stdout"/>, at each image's own size or, with the
    /// reference protocol, on the labels resized to <paramref name="imageSize"/> as the evaluation scores them (as PASCAL's
    /// inspect-data); exit code 0, or 2 with one line on <paramref name="stderr"/> naming the file or option at fault.
    /// </summary>
    /// <remarks>An option that only PASCAL's inspect-data honours (<paramref name="unsupportedOption"/>, e.g. <c>--tasks</c>)
    /// is a usage error rather than silently ignored.</remarks>
    public static int Inspect(string root, string split, TextWriter stdout, TextWriter stderr, string? unsupportedOption = null,
        string? protocolText = "native", int imageSize = 448) =>
        CliCommon.Guard("inspect-data", stderr, () =>
        {
            if (unsupportedOption is not null)
                throw new CliCommon.UsageException($"{unsupportedOption} is not available with --dataset nyud: it reads all four NYUD tasks of every listed id; leave the option out.");
            var protocol = CliCommon.ParseProtocol(protocolText);
            if (protocol == EvaluationProtocol.Reference && imageSize < 1)
                throw new CliCommon.UsageException($"--image-size: {imageSize} is not a size; expected the network's input size in pixels (e.g. 448).");
            if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"--data: NYUD_MT root '{root}' does not exist.");
            var stats = NyudStatistics.Compute(root, split, protocol, imageSize);
            stderr.WriteLine($"inspect-data: {stats.Samples} samples in '{Path.GetFullPath(root)}' split '{split}', tasks semseg,depth,normals,edge");
            stdout.WriteLine(stats.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        });
}
