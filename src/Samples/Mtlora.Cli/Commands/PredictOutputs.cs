using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Visualization;
using SkiaSharp;

namespace MtLora.Cli.Commands;

/// <summary>
/// The files <c>mtlora predict</c> writes per image and task, and where (<c>--layout</c>):
/// <list type="bullet">
/// <item><c>flat</c> (the default for a model of PASCAL-Context tasks, unchanged): <c>&lt;out&gt;/&lt;name&gt;.&lt;task&gt;.png</c>,
/// pictures for viewing (class maps in the VOC colours, saliency as an inferno heat map, normals as RGB); a task of
/// another kind gets its <see cref="ByKind">kind's files</see> under the same naming (<c>&lt;name&gt;.depth.npy</c>).</item>
/// <item><c>per-task-folders</c> (the default for any other model): <c>&lt;out&gt;/&lt;task&gt;/&lt;name&gt;.png|.npy</c>, every
/// task in its kind's files, the layout <c>mtlora evaluate --predictions &lt;out&gt; --dataset nyud</c> reads
/// (<see cref="NyudPredictions"/>).</item>
/// </list>
/// </summary>
internal static class PredictOutputs
{
    /// <summary>The default: <see cref="Flat"/> for a model whose tasks are all PASCAL-Context's, <see cref="PerTaskFolders"/> otherwise.</summary>
    public const string Auto = "auto";

    /// <summary><c>&lt;out&gt;/&lt;name&gt;.&lt;task&gt;.png</c>.</summary>
    public const string Flat = "flat";

    /// <summary><c>&lt;out&gt;/&lt;task&gt;/&lt;name&gt;.png|.npy</c>.</summary>
    public const string PerTaskFolders = "per-task-folders";

    /// <summary>The files of each kind, for <c>--help</c> and the README.</summary>
    public const string ByKind =
        "segmentation: 8-bit palette PNG whose pixels are the class ids (VOC colours); binary map: 8-bit gray PNG, round(p*255); " +
        "surface normals: RGB PNG, round((n+1)*127.5); depth: float32 HxW .npy (the predicted values, metres) and a PNG for viewing (inferno, near dark, far bright)";

    /// <summary>Whether every task is a PASCAL-Context built-in (by definition, not only by name: NYUD's 40-class semseg is not).</summary>
    public static bool IsPascal(IReadOnlyList<DenseTaskDescriptor> tasks) => tasks.All(t => IsPascalTask(t, out _));

    /// <summary>The layout a run uses: <paramref name="layout"/>, or for <see cref="Auto"/> the one the model's tasks call for.</summary>
    public static string Resolve(string? layout, IReadOnlyList<DenseTaskDescriptor> tasks) =>
        layout is null or Auto ? (IsPascal(tasks) ? Flat : PerTaskFolders) : layout;

    /// <summary>
    /// The files of one task for one image: (path under the output folder, bytes). <paramref name="panels"/> receives the
    /// PASCAL maps for <c>--grid</c> (only a PASCAL model draws one).
    /// </summary>
    public static List<(string Path, byte[] Bytes)> Files(DenseTaskDescriptor task, ImagePrediction prediction, string name, string layout,
        PredictionPanels panels)
    {
        int w = prediction.Width, h = prediction.Height;
        bool flat = layout == Flat;
        string PathOf(string extension) => flat ? $"{name}.{task.Name}{extension}" : Path.Combine(task.Name, name + extension);

        if (task.IsClassification)
        {
            var ids = prediction.ClassMaps[task]; // (H, W) class ids
            if (IsPascalTask(task, out var pascal))
            {
                if (pascal == DenseTask.SemanticSegmentation) panels.SemanticSegmentation = ids; else panels.HumanParts = ids;
                if (flat) return [(PathOf(".png"), Png(ColorMaps.Labels(ids, w, h)))];
            }
            // The ids themselves as palette indices: any K up to 255 keeps its ids, and the VOC palette colours them.
            return [(PathOf(".png"), IndexedPng.Encode(w, h, IndexedPng.ColorTypePalette, ids, IndexedPng.VocPalette.ToArray()))];
        }
        var values = prediction.Dense[task];
        switch (task.Kind)
        {
            case DenseTaskKind.BinaryMap:
                if (IsPascalTask(task, out _))
                {
                    panels.Saliency = values; // (H, W) probabilities
                    if (flat) return [(PathOf(".png"), Png(ColorMaps.Saliency(values, w, h)))];
                }
                var gray = new byte[values.Length];
                for (int i = 0; i < gray.Length; i++) gray[i] = (byte)MathF.Round(Math.Clamp(values[i], 0f, 1f) * 255f);
                return [(PathOf(".png"), IndexedPng.Encode(w, h, IndexedPng.ColorTypeGray, gray, null))];
            case DenseTaskKind.SurfaceNormals:
                if (IsPascalTask(task, out _)) panels.SurfaceNormals = values; // (3, H, W) unit normals
                return [(PathOf(".png"), Png(ColorMaps.Normals(values, w, h)))];
            default:
                // Depth: the values as predicted (metres for NYUD), and a picture of them.
                return [(PathOf(".npy"), NpyFile.EncodeFloat32([h, w], values)), (PathOf(".png"), Png(ColorMaps.Depth(values, w, h)))];
        }
    }

    /// <summary>Whether the task is one of PASCAL-Context's built-ins (every fact equal), and which.</summary>
    public static bool IsPascalTask(DenseTaskDescriptor task, out DenseTask pascal)
    {
        var match = DenseTaskDescriptor.Pascal.FirstOrDefault(p => p.SameDefinition(task));
        pascal = match?.ToPascalTask() ?? default;
        return match is not null;
    }

    private static byte[] Png(SKBitmap bitmap)
    {
        using (bitmap) return PngFile.Encode(bitmap);
    }
}
