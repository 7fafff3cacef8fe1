using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// A <see cref="DenseTaskDescriptor"/> in the network options' JSON (config.json of model.zip and checkpoints). A PASCAL
/// built-in is written as its name (<c>"semseg"</c>), exactly as before descriptors existed, so older and newer files agree;
/// every other task as an object with all its facts, so a model of your own tasks (or NYUD's 40-class <c>semseg</c>) loads
/// as it was trained.
/// </summary>
internal static class DenseTaskJson
{
    private static readonly string[] Keys = ["name", "kind", "channels", "loss_weight", "column_stem", "positive_weight", "ignore_value"];

    private static readonly string[] KindNames = ["segmentation", "binary_map", "surface_normals", "depth"];

    /// <summary>The snake_case name of a kind, as the task objects' <c>kind</c> (and the ONNX metadata's <c>mtlora.kinds</c>) write it.</summary>
    public static string KindName(DenseTaskKind kind) => KindNames[(int)kind];

    /// <summary>The JSON of a task: its name for a PASCAL built-in, an object otherwise.</summary>
    public static JsonNode Write(DenseTaskDescriptor task)
    {
        if (DenseTaskDescriptor.Pascal.Any(p => ReferenceEquals(p, task) || p.SameDefinition(task))) return JsonValue.Create(task.Name);
        var obj = new JsonObject
        {
            ["name"] = task.Name,
            ["kind"] = KindName(task.Kind),
            ["channels"] = task.OutputChannels,
            ["loss_weight"] = task.DefaultLossWeight,
            ["column_stem"] = task.ColumnStem,
        };
        if (task.PositiveWeight is { } pw) obj["positive_weight"] = pw;
        if (task.IgnoreValue is { } iv) obj["ignore_value"] = iv;
        return obj;
    }

    /// <summary>Reads a task written by <see cref="Write"/> (or a PASCAL task name of any version).</summary>
    /// <exception cref="FormatException">Unknown name, missing or ill-typed field, or facts that contradict each other; the
    /// message names <paramref name="where"/>.</exception>
    public static DenseTaskDescriptor Read(JsonNode? item, string where)
    {
        if (item is JsonValue v)
        {
            if (!v.TryGetValue<string>(out var name))
                throw new FormatException($"{where} must hold task names (strings) or task objects.");
            if (!DenseTasks.TryParse(name, out var task))
                throw new FormatException($"{where} holds unknown task '{name}'; known by name: semseg, human_parts, sal, normals (other tasks are objects with name, kind, channels, loss_weight, column_stem).");
            return task;
        }
        if (item is not JsonObject obj) throw new FormatException($"{where} must hold task names (strings) or task objects.");
        foreach (var (key, _) in obj)
            if (Array.IndexOf(Keys, key) < 0) throw new FormatException($"{where}: unknown task key '{key}'; known: {string.Join(", ", Keys)}.");
        string taskName = String(obj, "name", where);
        string at = $"{where} (task '{taskName}')";
        int kind = Array.IndexOf(KindNames, String(obj, "kind", at));
        if (kind < 0) throw new FormatException($"{at}: 'kind' must be one of {string.Join(", ", KindNames)}.");
        try
        {
            return DenseTaskDescriptor.FromParts(taskName, (DenseTaskKind)kind, (int)Number(obj, "channels", at)!.Value,
                (float)Number(obj, "loss_weight", at)!.Value, String(obj, "column_stem", at),
                (float?)Number(obj, "positive_weight", at, optional: true), (float?)Number(obj, "ignore_value", at, optional: true));
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{at}: {e.Message}", e);
        }
    }

    private static string String(JsonObject obj, string key, string where) =>
        obj[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new FormatException($"{where}: '{key}' must be a string.");

    private static double? Number(JsonObject obj, string key, string where, bool optional = false)
    {
        var node = obj[key];
        if (node is null)
            return optional ? null : throw new FormatException($"{where}: '{key}' is missing.");
        if (node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number &&
            double.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) &&
            double.IsFinite(d)) return d;
        throw new FormatException($"{where}: '{key}' must be a finite number, got {node.ToJsonString()}.");
    }
}
