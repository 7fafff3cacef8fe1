using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Synthetic;

namespace MtLora.Cli.Commands;

/// <summary><c>mtlora make-synthetic</c>: writes a small synthetic dataset in the PASCAL_MT layout.</summary>
internal static class MakeSyntheticCommand
{
    public static Command Create()
    {
        var outOption = new Option<string>("--out") { Description = "Dataset root to write (the folder the reference calls --pascal).", Required = true };
        var trainOption = new Option<int>("--train") { Description = "Number of training images.", DefaultValueFactory = _ => 20 };
        var valOption = new Option<int>("--val") { Description = "Number of validation images.", DefaultValueFactory = _ => 10 };
        var sizeOption = new Option<string>("--size") { Description = "Image size WxH, e.g. 160x120 (the default).", DefaultValueFactory = _ => "160x120" };
        var seedOption = new Option<int>("--seed") { Description = "Seed: the same seed gives the same files.", DefaultValueFactory = _ => 0 };
        var realSizesOption = new Option<bool>("--real-sizes") { Description = "PASCAL-like image sizes instead of --size (500 px on the longer side, landscape and portrait) and some grayscale JPEGs, for measuring the data loader." };
        var datasetOption = NyudCommands.DatasetOption();
        var countOption = new Option<int?>("--count") { Description = "--dataset nyud: images in each split (default 8); --train and --val are for pascal." };

        var cmd = new Command("make-synthetic", "Write a synthetic PASCAL-Context multi-task dataset (images, semseg, human parts, saliency, normals) in the PASCAL_MT layout.");
        cmd.Options.Add(outOption);
        cmd.Options.Add(trainOption);
        cmd.Options.Add(valOption);
        cmd.Options.Add(sizeOption);
        cmd.Options.Add(seedOption);
        cmd.Options.Add(realSizesOption);
        cmd.Options.Add(datasetOption);
        cmd.Options.Add(countOption);
        cmd.SetAction(parseResult =>
        {
            string? size = parseResult.GetValue(sizeOption);
            bool nyud = parseResult.GetValue(datasetOption) == "nyud";
            if (nyud && parseResult.GetResult(sizeOption) is null or { Implicit: true }) size = "80x60";
            if (!TryParseSize(size, out int width, out int height))
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"error: --size '{size}' is not WxH (e.g. 160x120).");
                return 2;
            }
            var foreign = nyud ? new Option[] { trainOption, valOption, realSizesOption } : [countOption];
            if (foreign.FirstOrDefault(o => parseResult.GetResult(o) is { Implicit: false }) is { } wrong)
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"error: {wrong.Name} is not an option of --dataset {(nyud ? "nyud (use --count)" : "pascal (use --train and --val)")}.");
                return 2;
            }
            if (nyud)
            {
                int count = parseResult.GetValue(countOption) ?? 8;
                var nyudOptions = new SyntheticNyudOptions { TrainCount = count, ValCount = count, Width = width, Height = height, Seed = parseResult.GetValue(seedOption) };
                return CliCommon.Guard("make-synthetic", parseResult.InvocationConfiguration.Error, () =>
                {
                    parseResult.InvocationConfiguration.Output.WriteLine(NyudCommands.MakeSynthetic(parseResult.GetValue(outOption)!, nyudOptions).ToJsonString());
                    return 0;
                });
            }
            var options = new SyntheticPascalOptions
            {
                TrainCount = parseResult.GetValue(trainOption),
                ValCount = parseResult.GetValue(valOption),
                Width = width,
                Height = height,
                Seed = parseResult.GetValue(seedOption),
                RealisticSizes = parseResult.GetValue(realSizesOption),
            };
            try
            {
                var summary = Run(parseResult.GetValue(outOption)!, options);
                parseResult.InvocationConfiguration.Output.WriteLine(summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or CliCommon.UsageException)
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Nothing is left behind: the set was being written into a temporary folder.
                parseResult.InvocationConfiguration.Error.WriteLine($"error: cannot write the dataset to '{parseResult.GetValue(outOption)}': {OutputPaths.Cause(e)}.");
                return 2;
            }
        });
        return cmd;
    }

    /// <summary>
    /// Generates the dataset into a temporary folder beside <paramref name="outDir"/> and moves it there (a new or empty
    /// folder), and returns the JSON summary the verb prints.
    /// </summary>
    internal static JsonObject Run(string outDir, SyntheticPascalOptions options)
    {
        var watch = Stopwatch.StartNew();
        CheckOptions(options);
        var root = OutputPaths.CheckFolder("--out", outDir);
        if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
            throw new CliCommon.UsageException($"--out: folder '{outDir}' is not empty; give a new or empty folder (the data set is written whole, then moved into place).");
        SyntheticDataSets.CheckFreeSpace("--out", root, options);
        var s = SyntheticDataSets.Generate(root, options, complete: null, replace: () => true);
        return new JsonObject
        {
            ["root"] = root,
            ["train"] = s.TrainIds.Count,
            ["val"] = s.ValIds.Count,
            ["width"] = s.Width,
            ["height"] = s.Height,
            ["realSizes"] = s.RealisticSizes,
            ["seed"] = s.Seed,
            ["trainWithHumanParts"] = s.TrainWithHumanParts,
            ["valWithHumanParts"] = s.ValWithHumanParts,
            ["seconds"] = Math.Round(watch.Elapsed.TotalSeconds, 3),
        };
    }

    /// <summary>The options' own checks, worded with this verb's option names.</summary>
    private static void CheckOptions(SyntheticPascalOptions options)
    {
        try { options.Validate(); }
        catch (ArgumentException e)
        {
            var option = e.ParamName switch { "TrainCount" => "--train", "ValCount" => "--val", "Width" or "Height" => "--size", "Seed" => "--seed", _ => null };
            throw new CliCommon.UsageException(option is null ? e.Message : $"{option}: {TrainOptionChecks.MessageOf(e)}");
        }
    }

    internal static bool TryParseSize(string? text, out int width, out int height)
    {
        width = height = 0;
        var parts = (text ?? "").Split('x', 'X');
        return parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out width)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out height);
    }
}
