using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>Reads and writes <see cref="MtLoraNetworkOptions"/> as JSON with the reference's snake_case keys, with errors that name the key.</summary>
internal static partial class NetworkOptionsJson
{
    private static readonly string[] TopKeys =
    [
        "tasks", "embed_dim", "depths", "num_heads", "window_size", "img_size", "patch_size", "mlp_ratio", "mode",
        "shared_rank", "task_rank", "lora_scale", "lora_dropout", "mtlora_plus", "lora_on", "freeze", "decoder_channels", "drop_path_rate",
    ];

    private static readonly string[] LoraOnKeys = ["qkv", "proj", "fc1", "fc2"];
    private static readonly string[] FreezeKeys = ["patch_embed", "norm", "relative_position_bias", "patch_merging"];
    private static readonly string[] ModeNames = ["mtlora", "full_finetune", "decoders_only", "task_agnostic_only"];

    public static MtLoraNetworkOptions Parse(string json, string source)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new FormatException($"config '{source}': not valid JSON ({e.Message}).", e);
        }
        if (root is not JsonObject obj) throw new FormatException($"config '{source}': expected a JSON object at the top level.");

        var o = new MtLoraNetworkOptions();
        foreach (var (key, node) in obj)
        {
            string Where() => $"config '{source}': '{key}'";
            switch (key)
            {
                case "tasks": o.Tasks = ReadTasks(node, Where()); break;
                case "embed_dim": o.EmbedDim = ReadInt(node, Where()); break;
                case "depths": o.Depths = ReadIntList(node, Where()); break;
                case "num_heads": o.NumHeads = ReadIntList(node, Where()); break;
                case "window_size": o.WindowSize = ReadInt(node, Where()); break;
                case "img_size": o.ImageSize = ReadImageSize(node, Where()); break;
                case "patch_size": o.PatchSize = ReadInt(node, Where()); break;
                case "mlp_ratio": o.MlpRatio = ReadDouble(node, Where()); break;
                case "mode": o.Mode = ReadMode(node, Where()); break;
                case "shared_rank": ReadSharedRank(o, node, Where()); break;
                case "task_rank": ReadTaskRank(o, node, Where()); break;
                case "lora_scale": ReadLoraScale(o, node, Where()); break;
                case "lora_dropout": ReadLoraDropout(o, node, Where()); break;
                case "mtlora_plus": o.MtLoraPlus = ReadBool(node, Where()); break;
                case "decoder_channels": o.DecoderChannels = ReadIntList(node, Where()); break;
                case "drop_path_rate": o.DropPathRate = ReadDouble(node, Where()); break;
                case "lora_on":
                    foreach (var (k, v) in ReadObject(node, Where(), LoraOnKeys, source, key))
                    {
                        var w = $"config '{source}': 'lora_on.{k}'";
                        switch (k)
                        {
                            case "qkv": o.LoraOn.Qkv = ReadBool(v, w); break;
                            case "proj": o.LoraOn.Proj = ReadBool(v, w); break;
                            case "fc1": o.LoraOn.Fc1 = ReadBool(v, w); break;
                            default: o.LoraOn.Fc2 = ReadBool(v, w); break;
                        }
                    }
                    break;
                case "freeze":
                    foreach (var (k, v) in ReadObject(node, Where(), FreezeKeys, source, key))
                    {
                        var w = $"config '{source}': 'freeze.{k}'";
                        switch (k)
                        {
                            case "patch_embed": o.Freeze.PatchEmbed = ReadBool(v, w); break;
                            case "norm": o.Freeze.Norm = ReadBool(v, w); break;
                            case "relative_position_bias": o.Freeze.RelativePositionBias = ReadBool(v, w); break;
                            default: o.Freeze.PatchMerging = ReadBool(v, w); break;
                        }
                    }
                    break;
                default:
                    throw new FormatException($"config '{source}': unknown key '{key}'{Suggest(key, TopKeys)}.");
            }
        }
        CheckTaskEntries(o, source);
        try
        {
            o.Validate();
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"config '{source}': {e.Message}", e);
        }
        return o;
    }

    public static JsonObject ToNode(MtLoraNetworkOptions o) => new()
    {
        ["tasks"] = new JsonArray(o.Tasks.Select(DenseTaskJson.Write).ToArray()),
        ["embed_dim"] = o.EmbedDim,
        ["depths"] = IntArray(o.Depths),
        ["num_heads"] = IntArray(o.NumHeads),
        ["window_size"] = o.WindowSize,
        ["img_size"] = o.ImageSize,
        ["patch_size"] = o.PatchSize,
        ["mlp_ratio"] = o.MlpRatio,
        ["mode"] = MtLoraNetworkOptions.ModeName(o.Mode),
        ["shared_rank"] = SharedRankNode(o),
        ["task_rank"] = TaskRankNode(o),
        ["lora_scale"] = LoraScaleNode(o),
        ["lora_dropout"] = LoraDropoutNode(o),
        ["mtlora_plus"] = o.MtLoraPlus,
        ["lora_on"] = new JsonObject { ["qkv"] = o.LoraOn.Qkv, ["proj"] = o.LoraOn.Proj, ["fc1"] = o.LoraOn.Fc1, ["fc2"] = o.LoraOn.Fc2 },
        ["freeze"] = new JsonObject
        {
            ["patch_embed"] = o.Freeze.PatchEmbed, ["norm"] = o.Freeze.Norm,
            ["relative_position_bias"] = o.Freeze.RelativePositionBias, ["patch_merging"] = o.Freeze.PatchMerging,
        },
        ["decoder_channels"] = IntArray(o.DecoderChannels),
        ["drop_path_rate"] = o.DropPathRate,
    };

    private static JsonArray IntArray(IEnumerable<int> values) => new(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());

    private static IEnumerable<KeyValuePair<string, JsonNode?>> ReadObject(JsonNode? node, string where, string[] known, string source, string parent)
    {
        if (node is not JsonObject obj) throw new FormatException($"{where} must be an object with keys {string.Join(", ", known)}.");
        foreach (var kv in obj)
        {
            if (!known.Contains(kv.Key))
                throw new FormatException($"config '{source}': unknown key '{parent}.{kv.Key}'{Suggest(kv.Key, known)}; known: {string.Join(", ", known)}.");
        }
        return obj.ToList();
    }

    private static IReadOnlyList<DenseTaskDescriptor> ReadTasks(JsonNode? node, string where)
    {
        if (node is not JsonArray arr) throw new FormatException($"{where} must be an array of task names (semseg, human_parts, sal, normals).");
        var tasks = new List<DenseTaskDescriptor>();
        foreach (var item in arr)
        {
            tasks.Add(DenseTaskJson.Read(item, where));
        }
        return tasks;
    }

    private static NetworkMode ReadMode(JsonNode? node, string where)
    {
        if (node is not JsonValue v || !v.TryGetValue<string>(out var name))
            throw new FormatException($"{where} must be one of {string.Join(", ", ModeNames)}.");
        int i = Array.IndexOf(ModeNames, name.Trim().ToLowerInvariant());
        if (i < 0) throw new FormatException($"{where} is '{name}', expected one of {string.Join(", ", ModeNames)}.");
        return (NetworkMode)i;
    }

    private static int ReadImageSize(JsonNode? node, string where)
    {
        // The reference writes IMG_SIZE as a number; accept a square [H, W] pair too.
        if (node is JsonArray arr)
        {
            var list = ReadIntList(node, where);
            if (list.Count != 2 || list[0] != list[1]) throw new FormatException($"{where} must be one number or a square [size, size] pair, got [{string.Join(", ", list)}].");
            return list[0];
        }
        return ReadInt(node, where);
    }

    private static int ReadInt(JsonNode? node, string where)
    {
        if (node is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
            if (v.TryGetValue<JsonElement>(out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out d) && d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue) return (int)d;
        }
        throw new FormatException($"{where} must be an integer, got {node?.ToJsonString() ?? "null"}.");
    }

    private static double ReadDouble(JsonNode? node, string where)
    {
        if (node is JsonValue v)
        {
            if (v.TryGetValue<double>(out var d)) return d;
            if (v.TryGetValue<JsonElement>(out var e) && e.ValueKind == JsonValueKind.Number) return e.GetDouble();
        }
        throw new FormatException($"{where} must be a number, got {node?.ToJsonString() ?? "null"}.");
    }

    private static bool ReadBool(JsonNode? node, string where)
    {
        if (node is JsonValue v)
        {
            if (v.TryGetValue<bool>(out var b)) return b;
            if (v.TryGetValue<JsonElement>(out var e) && e.ValueKind is JsonValueKind.True or JsonValueKind.False) return e.GetBoolean();
        }
        throw new FormatException($"{where} must be true or false, got {node?.ToJsonString() ?? "null"}.");
    }

    private static IReadOnlyList<int> ReadIntList(JsonNode? node, string where)
    {
        if (node is not JsonArray arr) throw new FormatException($"{where} must be an array of integers, got {node?.ToJsonString() ?? "null"}.");
        return arr.Select(n => ReadInt(n, where)).ToArray();
    }

    private static string Suggest(string key, string[] known)
    {
        var best = known.Select(k => (k, d: Levenshtein(key, k))).OrderBy(p => p.d).First();
        return best.d <= Math.Max(2, key.Length / 3) ? $" (did you mean '{best.k}'?)" : "";
    }

    private static int Levenshtein(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
