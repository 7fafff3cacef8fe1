using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora describe [--backbone-preset name] [--config config.json]</c>: resolves the network configuration (paper defaults
/// for missing keys, on the preset's Swin when one is named), builds the network's shapes without allocating weights, and prints
/// one JSON object: the parameter counts as the reference prints them (<c>trainable, lora, decoder, extra, total</c>), the
/// resolved config and the per-stage geometry. <c>--backbone-presets</c> prints every backbone preset with its counts instead.
/// </summary>
internal static class DescribeCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "Network config JSON (snake_case keys as the reference; missing keys take the paper's defaults). Default: the paper's Swin-T 448 MTLoRA r64 setting.",
        };
        var preset = new Option<string>("--backbone-preset")
        {
            Description = "A Swin backbone preset (Microsoft's checkpoint name, e.g. swin_base_patch4_window7_224_22k, or timm's): its embed_dim, depths and num_heads; --config overrides the rest.",
        };
        var presets = new Option<bool>("--backbone-presets") { Description = "Print every backbone preset with its counts (with --config: on that configuration) as one JSON array." };
        var cmd = new Command("describe", "Print a network configuration's parameter counts (trainable, LoRA, decoder, total) and stage geometry as JSON.");
        cmd.Options.Add(config);
        cmd.Options.Add(preset);
        cmd.Options.Add(presets);
        cmd.SetAction(parseResult =>
        {
            var io = parseResult.InvocationConfiguration;
            return Run(parseResult.GetValue(config)?.FullName, parseResult.GetValue(preset), parseResult.GetValue(presets), io.Output, io.Error);
        });
        return cmd;
    }

    private static int Run(string? configPath, string? presetName, bool allPresets, TextWriter stdout, TextWriter stderr)
    {
        MtLoraNetworkOptions options;
        var json = new JsonSerializerOptions { WriteIndented = true };
        try
        {
            if (presetName is not null && allPresets)
                throw new FormatException("give --backbone-preset <name> or --backbone-presets, not both.");
            options = BackbonePresetConfig.Load(configPath, BackbonePresetConfig.Resolve(presetName, null, configPath));
        }
        catch (Exception e) when (e is FileNotFoundException or FormatException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"mtlora describe: {e.Message}");
            return 2;
        }

        TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH
        if (allPresets)
        {
            var list = new JsonArray();
            foreach (var p in SwinBackbonePreset.All)
            {
                MtLoraNetworkOptions o;
                try { o = BackbonePresetConfig.Load(configPath, p); }
                catch (FormatException e)
                {
                    stderr.WriteLine($"mtlora describe: backbone preset {p.Name}: {e.Message}");
                    return 2;
                }
                var counts = Describe(o);
                list.Add(new JsonObject
                {
                    ["preset"] = p.Name,
                    ["timm_name"] = p.TimmName,
                    ["variant"] = p.Variant,
                    ["pretrained_on"] = p.IsImageNet22k ? "ImageNet-22k" : "ImageNet-1k",
                    ["pretrain_window"] = p.PretrainWindowSize,
                    ["pretrain_img_size"] = p.PretrainImageSize,
                    ["checkpoint_url"] = p.CheckpointUrl.ToString(),
                    ["trainable"] = counts["trainable"]!.DeepClone(),
                    ["lora"] = counts["lora"]!.DeepClone(),
                    ["decoder"] = counts["decoder"]!.DeepClone(),
                    ["extra"] = counts["extra"]!.DeepClone(),
                    ["total"] = counts["total"]!.DeepClone(),
                    ["config"] = counts["config"]!.DeepClone(),
                });
            }
            stdout.WriteLine(list.ToJsonString(json));
            return 0;
        }
        stdout.WriteLine(Describe(options).ToJsonString(json));
        return 0;
    }

    private static JsonObject Describe(MtLoraNetworkOptions options)
    {
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
        return new JsonObject
        {
            ["trainable"] = c.Trainable,
            ["lora"] = c.Lora,
            ["decoder"] = c.Decoder,
            ["extra"] = c.Extra,
            ["total"] = c.Total,
            ["config"] = options.ToJsonNode(),
            ["stages"] = stages,
        };
    }
}
