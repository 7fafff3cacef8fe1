using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora describe [--config config.json]</c>: resolves the network configuration (paper defaults for missing keys), builds the
/// network's shapes without allocating weights, and prints one JSON object: the parameter counts as the reference prints them
/// (<c>trainable, lora, decoder, extra, total</c>), the resolved config and the per-stage geometry.
/// </summary>
internal static class DescribeCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "Network config JSON (snake_case keys as the reference; missing keys take the paper's defaults). Default: the paper's Swin-T 448 MTLoRA r64 setting.",
        };
        var cmd = new Command("describe", "Print a network configuration's parameter counts (trainable, LoRA, decoder, total) and stage geometry as JSON.");
        cmd.Options.Add(config);
        cmd.SetAction(parseResult =>
        {
            var io = parseResult.InvocationConfiguration;
            return Run(parseResult.GetValue(config)?.FullName, io.Output, io.Error);
        });
        return cmd;
    }

    private static int Run(string? configPath, TextWriter stdout, TextWriter stderr)
    {
        MtLoraNetworkOptions options;
        try
        {
            options = configPath is null ? new MtLoraNetworkOptions() : MtLoraNetworkOptions.Load(configPath);
        }
        catch (Exception e) when (e is FileNotFoundException or FormatException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"mtlora describe: {e.Message}");
            return 2;
        }

        TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH
        // The meta device gives every shape without storage or initialisation: a 34M-parameter model is described instantly.
        using var model = new MultiTaskSwin(options, META);
        var c = model.CountParameters();
        var stages = new JsonArray();
        foreach (var s in model.Stages)
        {
            stages.Add(new JsonObject
            {
                ["stage"] = s.Index,
                ["resolution"] = s.Resolution,
                ["dim"] = s.Dim,
                ["heads"] = s.Heads,
                ["depth"] = s.Depth,
                ["window"] = s.Window,
                ["shift"] = s.Shift,
                ["windows_per_image"] = s.WindowsPerImage,
                ["patch_merging"] = s.HasMerging,
                ["output_resolution"] = s.OutputResolution,
                ["output_dim"] = s.OutputDim,
            });
        }
        var result = new JsonObject
        {
            ["trainable"] = c.Trainable,
            ["lora"] = c.Lora,
            ["decoder"] = c.Decoder,
            ["extra"] = c.Extra,
            ["total"] = c.Total,
            ["config"] = options.ToJsonNode(),
            ["stages"] = stages,
        };
        stdout.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
}
