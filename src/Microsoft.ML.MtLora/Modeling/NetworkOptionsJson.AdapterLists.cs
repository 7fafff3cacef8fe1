using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Modeling;

// The adapter keys in their three forms (docs/mtlora-reference.md §2.6; reference config.py::update_config):
//   a number                       the same value in every stage (and for every task): today's shorthand;
//   a list of 4, one per stage     (a one-element list is the shorthand, as the reference repeats it);
//   an object                      task_rank: {task: number or list}, every task of 'tasks' named (R_PER_TASK);
//                                  lora_scale: {"shared": number or list, task: number or list} (SHARED_SCALE, SCALE_PER_TASK;
//                                  a task not named takes the shared scale).
// lora_dropout takes the first two forms (DROPOUT). Writing picks the shortest form that says the same.
internal static partial class NetworkOptionsJson
{
    private const string SharedKey = "shared";

    private static void ReadSharedRank(MtLoraNetworkOptions o, JsonNode? node, string where)
        => ReadInto(node, where, ReadInt, v => o.SharedRank = v, l => o.SharedRankPerStage = l);

    private static void ReadTaskRank(MtLoraNetworkOptions o, JsonNode? node, string where)
    {
        if (node is JsonObject obj)
        {
            var perTask = new Dictionary<string, IReadOnlyList<int>>(StringComparer.Ordinal);
            foreach (var (name, value) in obj)
            {
                var task = ReadTaskName(name, where, orShared: false);
                perTask[task] = Expand(ReadStageValues(value, Nested(where, name), ReadInt));
            }
            o.TaskRankPerTask = perTask;
            return;
        }
        ReadInto(node, where, ReadInt, v => o.TaskRank = v, l => o.TaskRankPerStage = l);
    }

    private static void ReadLoraScale(MtLoraNetworkOptions o, JsonNode? node, string where)
    {
        if (node is JsonObject obj)
        {
            var perTask = new Dictionary<string, IReadOnlyList<double>>(StringComparer.Ordinal);
            foreach (var (name, value) in obj)
            {
                if (name == SharedKey)
                {
                    ReadSharedScale(o, value, Nested(where, SharedKey));
                    continue;
                }
                var task = ReadTaskName(name, where, orShared: true);
                perTask[task] = Expand(ReadStageValues(value, Nested(where, name), ReadDouble));
            }
            o.TaskScalePerTask = perTask.Count > 0 ? perTask : null;
            return;
        }
        ReadSharedScale(o, node, where);
    }

    private static void ReadSharedScale(MtLoraNetworkOptions o, JsonNode? node, string where)
        => ReadInto(node, where, ReadDouble, v => o.LoraScale = v, l => o.LoraScalePerStage = l);

    private static void ReadLoraDropout(MtLoraNetworkOptions o, JsonNode? node, string where)
        => ReadInto(node, where, ReadDouble, v => o.LoraDropout = v, l => o.LoraDropoutPerStage = l);

    /// <summary>A number (or one-element list) sets the single value and clears the list; a list of 4 sets the list.</summary>
    private static void ReadInto<T>(JsonNode? node, string where, Func<JsonNode?, string, T> read, Action<T> single, Action<T[]?> perStage) where T : struct
    {
        var (value, list) = ReadStageValues(node, where, read);
        if (value is { } v) single(v);
        perStage(list);
    }

    /// <summary>
    /// A per-task object must name every task the network has (as the reference's R_PER_TASK must), and only those; checked
    /// after the whole file is read, since "tasks" may come after "task_rank" or "lora_scale".
    /// </summary>
    private static void CheckTaskEntries(MtLoraNetworkOptions o, string source)
    {
        var names = o.Tasks.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (key, keys) in new[] { ("task_rank", o.TaskRankPerTask?.Keys), ("lora_scale", o.TaskScalePerTask?.Keys) })
        {
            var unknown = keys?.FirstOrDefault(k => !names.Contains(k));
            if (unknown is not null)
                throw new FormatException($"config '{source}': '{key}' has the key '{unknown}', which is not a task of this network; expected one of " +
                    $"{string.Join(", ", o.Tasks.Select(t => t.Name))}{(key == "lora_scale" ? $" or '{SharedKey}'" : "")}.");
        }
        if (o.TaskRankPerTask is not { } perTask) return;
        var missing = o.Tasks.Where(t => !perTask.ContainsKey(t.Name)).Select(t => t.Name).ToList();
        if (missing.Count > 0)
            throw new FormatException($"config '{source}': 'task_rank' is an object without an entry for {string.Join(", ", missing.Select(m => $"'{m}'"))}; " +
                "name every task of 'tasks' (a number or a list of 4, one per stage), or give one number or list for all tasks.");
    }

    // "config 'c.json': 'task_rank'" and "semseg" give "config 'c.json': 'task_rank.semseg'".
    private static string Nested(string where, string key) => $"{where[..^1]}.{key}'";

    private static string ReadTaskName(string name, string where, bool orShared)
    {
        // Which names are tasks is checked once the whole file is read (CheckTaskEntries).
        if (!string.IsNullOrWhiteSpace(name)) return name;
        throw new FormatException($"{where} has an empty key; expected the name of one of the network's tasks{(orShared ? $" or '{SharedKey}'" : "")}.");
    }

    private static (T? Single, T[]? PerStage) ReadStageValues<T>(JsonNode? node, string where, Func<JsonNode?, string, T> read) where T : struct
    {
        if (node is not JsonArray arr) return (read(node, where), null);
        if (arr.Count == 1) return (read(arr[0], where), null);
        if (arr.Count != MtLoraNetworkOptions.StageCount)
            throw new FormatException($"{where} must be a number or a list of {MtLoraNetworkOptions.StageCount} numbers, one per stage; got {arr.Count} values.");
        return (null, arr.Select(n => read(n, where)).ToArray());
    }

    private static IReadOnlyList<T> Expand<T>((T? Single, T[]? PerStage) values) where T : struct
        => values.PerStage ?? Enumerable.Repeat(values.Single!.Value, MtLoraNetworkOptions.StageCount).ToArray();

    private static IEnumerable<int> StageIndices => Enumerable.Range(0, MtLoraNetworkOptions.StageCount);

    private static JsonNode SharedRankNode(MtLoraNetworkOptions o) => Compact(StageIndices.Select(o.SharedRankAt).ToArray());

    private static JsonNode TaskRankNode(MtLoraNetworkOptions o)
    {
        var perTask = o.Tasks.Select(t => (t, StageIndices.Select(i => o.TaskRankAt(i, t)).ToArray())).ToList();
        if (perTask.Count == 0) return JsonValue.Create(o.TaskRank);
        if (perTask.All(p => p.Item2.SequenceEqual(perTask[0].Item2))) return Compact(perTask[0].Item2);
        var obj = new JsonObject();
        foreach (var (t, values) in perTask) obj[t.Name] = Compact(values);
        return obj;
    }

    private static JsonNode LoraScaleNode(MtLoraNetworkOptions o)
    {
        var shared = StageIndices.Select(o.SharedScaleAt).ToArray();
        var perTask = o.Tasks.Select(t => (t, StageIndices.Select(i => o.TaskScaleAt(i, t)).ToArray())).ToList();
        if (perTask.All(p => p.Item2.SequenceEqual(shared))) return Compact(shared);
        var obj = new JsonObject { [SharedKey] = Compact(shared) };
        foreach (var (t, values) in perTask) obj[t.Name] = Compact(values);
        return obj;
    }

    private static JsonNode LoraDropoutNode(MtLoraNetworkOptions o) => Compact(StageIndices.Select(o.LoraDropoutAt).ToArray());

    /// <summary>One number when every stage has the same value, else the list.</summary>
    private static JsonNode Compact(int[] values)
        => values.All(v => v == values[0]) ? JsonValue.Create(values[0]) : new JsonArray(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());

    /// <summary>One number when every stage has the same value, else the list.</summary>
    private static JsonNode Compact(double[] values)
        => values.All(v => v.Equals(values[0])) ? JsonValue.Create(values[0]) : new JsonArray(values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
}
