using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Modeling;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>--backbone-preset</c> of <c>train</c> and <c>describe</c>: a Swin backbone preset gives the network's <c>embed_dim</c>,
/// <c>depths</c> and <c>num_heads</c>, and <c>--config</c> (or the paper's defaults) the rest.
/// </summary>
internal static class BackbonePresetConfig
{
    private static readonly string[] ArchitectureKeys = ["embed_dim", "depths", "num_heads"];

    /// <summary>
    /// The preset named by <paramref name="name"/>; without a name, the preset a <c>--backbone</c> checkpoint is named after
    /// (<c>swin_base_patch4_window7_224_22k.pth</c>) when no <c>--config</c> says the architecture; else null.
    /// </summary>
    /// <exception cref="FormatException">The name is not a preset.</exception>
    public static SwinBackbonePreset? Resolve(string? name, string? backboneFile, string? configPath)
    {
        if (name is not null)
        {
            if (SwinBackbonePreset.TryGet(name, out var preset)) return preset;
            throw new FormatException($"--backbone-preset: unknown preset '{name}'; expected one of {string.Join(", ", SwinBackbonePreset.All.Select(p => p.Name))} (or timm's names, e.g. {SwinBackbonePreset.All[^1].TimmName}).");
        }
        if (backboneFile is not null && configPath is null && SwinBackbonePreset.TryGet(Path.GetFileName(backboneFile), out var named))
            return named;
        return null;
    }

    /// <summary>The config file's options (or the paper's defaults) on the preset's backbone.</summary>
    /// <exception cref="FormatException">The config is invalid, sets the architecture the preset sets, or does not fit the preset's Swin.</exception>
    public static MtLoraNetworkOptions Load(string? configPath, SwinBackbonePreset? preset)
    {
        var options = configPath is null ? new MtLoraNetworkOptions() : MtLoraNetworkOptions.Load(configPath);
        if (preset is null) return options;
        var result = Apply(preset, options, configPath);
        try { result.Validate(); }
        catch (ArgumentException e)
        {
            throw new FormatException($"--backbone-preset {preset.Name} ({preset.Variant}): {e.Message}", e);
        }
        return result;
    }

    /// <summary>The options on the preset's backbone (not validated: command-line overrides may follow).</summary>
    /// <exception cref="FormatException">The config sets the architecture the preset sets.</exception>
    public static MtLoraNetworkOptions Apply(SwinBackbonePreset preset, MtLoraNetworkOptions options, string? configPath)
    {
        if (configPath is not null)
        {
            var node = JsonNode.Parse(File.ReadAllText(configPath), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var clash = ArchitectureKeys.Where(k => node is JsonObject o && o.ContainsKey(k)).ToList();
            if (clash.Count > 0)
                throw new FormatException($"config '{configPath}': {string.Join(", ", clash.Select(k => $"'{k}'"))} is set by --backbone-preset {preset.Name}; leave it out of the config, or leave out --backbone-preset.");
        }
        return preset.ToNetworkOptions(options);
    }
}
