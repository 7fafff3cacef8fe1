using System.CommandLine;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Pascal;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora inspect-data --data &lt;root&gt; --split &lt;split&gt;</c>: reads every sample of a PASCAL-Context split with the loader's
/// rules and prints one JSON object of label statistics on stdout (progress on stderr): at the original resolution, or with
/// <c>--protocol reference [--image-size 448]</c> on the labels the reference's evaluation scores.
/// </summary>
internal static class InspectDataCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "The PASCAL_MT root folder (JPEGImages/, ImageSets/, semseg/, ...).", Required = true };
        var split = new Option<string>("--split") { Description = "The split: train or val.", DefaultValueFactory = _ => "val" };
        var tasks = new Option<string>("--tasks") { Description = "Comma-separated tasks to read: semseg, human_parts, sal, normals.", DefaultValueFactory = _ => "semseg,human_parts,sal,normals" };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Leave out unreadable samples (listed in the output) instead of failing." };
        var strictSizes = new Option<bool>("--strict-sizes") { Description = "Treat a label whose size differs from its image as an error instead of resizing it." };
        var protocol = new Option<string>("--protocol")
        {
            Description = "Count the labels an evaluation protocol scores: native (default: each image at its own size) or reference " +
                          "(every label resized to --image-size as the reference's test transforms do).",
            DefaultValueFactory = _ => "native",
        };
        var imageSize = new Option<int>("--image-size") { Description = "The network's input size for --protocol reference.", DefaultValueFactory = _ => 448 };
        var dataset = NyudCommands.DatasetOption();
        dataset.Description += " With nyud: all four NYUD tasks, --protocol and --image-size as for pascal; --tasks, --skip-bad and --strict-sizes are PASCAL's only.";
        var cmd = new Command("inspect-data", "Read every sample of a PASCAL-Context (or, with --dataset nyud, NYUD-v2) split and print label statistics as JSON.");
        cmd.Options.Add(dataset);
        cmd.Options.Add(data);
        cmd.Options.Add(split);
        cmd.Options.Add(tasks);
        cmd.Options.Add(skipBad);
        cmd.Options.Add(strictSizes);
        cmd.Options.Add(protocol);
        cmd.Options.Add(imageSize);
        // What --dataset nyud does not do is said rather than ignored.
        string? NotForNyud(ParseResult parseResult)
        {
            foreach (var option in new Option[] { tasks, skipBad, strictSizes })
                if (parseResult.GetResult(option) is { Implicit: false }) return option.Name;
            return null;
        }
        cmd.SetAction(parseResult => parseResult.GetValue(dataset) == "nyud"
            ? NyudCommands.Inspect(parseResult.GetValue(data)!, parseResult.GetValue(split)!, parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error,
                NotForNyud(parseResult), parseResult.GetValue(protocol), parseResult.GetValue(imageSize))
            : Run(
            parseResult.GetValue(data)!, parseResult.GetValue(split)!, parseResult.GetValue(tasks)!,
            parseResult.GetValue(skipBad), parseResult.GetValue(strictSizes),
            parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error,
            parseResult.GetValue(protocol), parseResult.GetValue(imageSize)));
        return cmd;
    }

    /// <summary>Runs the verb; returns the exit code (0 success, 2 bad input: one line on <paramref name="stderr"/> naming the file).</summary>
    internal static int Run(string root, string split, string tasks, bool skipBad, bool strictSizes, TextWriter stdout, TextWriter stderr,
        string? protocolText = "native", int imageSize = 448) =>
        CliCommon.Guard("inspect-data", stderr, () =>
        {
            var protocol = CliCommon.ParseProtocol(protocolText);
            if (protocol == Microsoft.ML.MtLora.Evaluation.EvaluationProtocol.Reference && imageSize < 1)
                throw new CliCommon.UsageException($"--image-size: {imageSize} is not a size; expected the network's input size in pixels (e.g. 448).");
            var options = new PascalContextOptions
            {
                SkipBadSamples = skipBad,
                LabelSizeMismatch = strictSizes ? LabelSizeMismatchHandling.Error : LabelSizeMismatchHandling.ResizeToImage,
                HumanPartsOnlyKeepsAnnotatedImages = false,
            };
            var view = new MLContext().Data.LoadPascalContext(root, split, tasks, options);
            stderr.WriteLine($"inspect-data: {view.Ids.Count} samples in '{view.Root}' split '{split}', tasks {string.Join(",", view.Tasks.Select(t => t.ReferenceName()))}");
            long total = view.Ids.Count;
            var progress = new SynchronousProgress(n => stderr.WriteLine($"inspect-data: {n}/{total}"));
            var stats = PascalContextStatistics.Compute(view, protocol, imageSize, progress);
            if (stats.Skipped.Count > 0) stderr.WriteLine($"inspect-data: skipped {stats.Skipped.Count} bad sample(s)");
            CliCommon.WriteLabelNotes(view, stderr);
            stdout.WriteLine(stats.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        });

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool and interleave with the JSON).</summary>
    private sealed class SynchronousProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
