using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Synthetic;

namespace MtLora.Cli.Commands;

/// <summary>The NYUD-v2 side of <c>make-synthetic</c> and <c>inspect-data</c> (<c>--dataset nyud</c>).</summary>
internal static class NyudCommands
{
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
    /// prints <see cref="NyudStatistics.ToJson"/> on <paramref name="stdout"/>; exit code 0, or 2 with one line on
    /// <paramref name="stderr"/> naming the file at fault.
    /// </summary>
    public static int Inspect(string root, string split, TextWriter stdout, TextWriter stderr) =>
        CliCommon.Guard("inspect-data", stderr, () =>
        {
            if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"--data: NYUD_MT root '{root}' does not exist.");
            var stats = NyudStatistics.Compute(root, split);
            stderr.WriteLine($"inspect-data: {stats.Samples} samples in '{Path.GetFullPath(root)}' split '{split}', tasks semseg,depth,normals,edge");
            stdout.WriteLine(stats.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        });
}
