using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Visualization;
using SkiaSharp;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora predict --model model.zip --image &lt;file|folder&gt; --out &lt;folder&gt; [--grid]</c>: one PNG per task and
/// image at the image's own size (class maps in the VOC palette, saliency as a heat map, normals as RGB), and with
/// <c>--grid</c> one picture per image with the input and every task side by side, with legends.
/// </summary>
internal static class PredictCommand
{
    /// <summary>Image files read from a folder (what ML.NET's image loader decodes).</summary>
    internal static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png", ".bmp"];

    public static Command Create()
    {
        var cmd = new Command("predict",
            "Run a trained model on images and write one PNG per task (<name>.semseg.png, <name>.human_parts.png, <name>.sal.png, " +
            "<name>.normals.png) at the input's size; --grid adds <name>.grid.png. Prints one JSON object listing the files.");
        var model = new Option<string>("--model") { Description = "The model.zip written by 'mtlora train' (with --engine onnx: a model.onnx from 'mtlora export-onnx').", Required = true };
        var image = new Option<string>("--image") { Description = "An image file, or a folder of images (.jpg, .jpeg, .png, .bmp).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the PNGs (created if missing).", Required = true };
        var grid = new Option<bool>("--grid") { Description = "Also write a grid per image: the input and every task, class maps with legends." };
        var engine = new Option<string>("--engine")
        {
            Description = "What runs the network: 'torchsharp' (a model.zip) or 'onnx' (a model.onnx from 'mtlora export-onnx', run by ONNX Runtime).",
            DefaultValueFactory = _ => OnnxPredictEngine.TorchSharp,
        };
        engine.AcceptOnlyFromAmong(OnnxPredictEngine.TorchSharp, OnnxPredictEngine.Onnx);
        foreach (var o in new Option[] { model, image, output, grid, engine }) cmd.Options.Add(o);
        cmd.SetAction(parseResult => Run(parseResult.GetValue(model), parseResult.GetValue(image), parseResult.GetValue(output),
            parseResult.GetValue(grid), parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error, parseResult.GetValue(engine)));
        return cmd;
    }

    /// <summary>Runs the verb: 0 on success, 2 on a user error (one line on <paramref name="stderr"/>).</summary>
    internal static int Run(string? modelPath, string? imagePath, string? outDir, bool grid, TextWriter stdout, TextWriter stderr,
        string? engine = OnnxPredictEngine.TorchSharp) =>
        CliCommon.Guard("predict", stderr, () =>
        {
            if (string.IsNullOrWhiteSpace(imagePath)) throw new CliCommon.UsageException("give --image <file|folder>.");
            if (string.IsNullOrWhiteSpace(outDir)) throw new CliCommon.UsageException("give --out <folder>.");
            var files = ListImages(imagePath);
            var ml = new MLContext(seed: 0);
            if (engine == OnnxPredictEngine.Onnx)
            {
                using var onnx = OnnxPredictEngine.Load(modelPath);
                Directory.CreateDirectory(outDir);
                var scored = OnnxPredictEngine.Score(onnx, files, nameof(ImageFile.Path), MtLoraColumnNames.Image);
                WriteSummary(modelPath!, onnx.Tasks, files, outDir, Predict(scored, onnx.Tasks, MtLoraColumnNames.Image, files, outDir, grid, stderr), stdout);
                return 0;
            }
            var loaded = CliCommon.LoadModel(ml, modelPath, out _);
            try
            {
                var mtlora = CliCommon.FindMtLora(loaded)
                    ?? throw new CliCommon.UsageException($"--model: '{modelPath}' holds no MTLoRA transformer.");
                Directory.CreateDirectory(outDir);
                var view = ml.Data.LoadFromEnumerable(files.Select(f => new ImageFile { Path = f }));
                var images = ml.Transforms.LoadImages(mtlora.ImageColumnName, imageFolder: null, inputColumnName: nameof(ImageFile.Path)).Fit(view).Transform(view);
                var written = Predict(loaded.Transform(images), mtlora.Tasks, mtlora.ImageColumnName, files, outDir, grid, stderr);
                WriteSummary(modelPath!, mtlora.Tasks, files, outDir, written, stdout);
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        });

    private static void WriteSummary(string modelPath, IReadOnlyList<DenseTask> tasks, List<string> files, string outDir, List<string> written, TextWriter stdout) =>
        CliCommon.WriteJson(new JsonObject
        {
            ["model"] = Path.GetFullPath(modelPath),
            ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode)t.ReferenceName()).ToArray()),
            ["images"] = files.Count,
            ["out"] = Path.GetFullPath(outDir),
            ["files"] = new JsonArray(written.Select(f => (JsonNode)f).ToArray()),
        }, stdout);

    /// <summary>The image files to score: the file itself, or a folder's images in name order.</summary>
    internal static List<string> ListImages(string path)
    {
        if (File.Exists(path)) return [Path.GetFullPath(path)];
        if (!Directory.Exists(path)) throw new CliCommon.UsageException($"--image: '{path}' is neither a file nor a folder.");
        var files = Directory.EnumerateFiles(path)
            .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new CliCommon.UsageException($"--image: folder '{path}' holds no image ({string.Join(", ", ImageExtensions)}).");
        return files;
    }

    private sealed class ImageFile
    {
        public string Path { get; set; } = "";
    }

    /// <summary>Writes the PNGs of every row of <paramref name="scored"/> (the transformer's columns, from either engine).</summary>
    private static List<string> Predict(IDataView scored, IReadOnlyList<DenseTask> tasks, string imageColumnName, List<string> files, string outDir, bool grid, TextWriter stderr)
    {
        var schema = scored.Schema;
        var written = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);

        return CliCommon.WithProgress(stderr, "predicting", files.Count, report =>
        {
            var columns = tasks.Select(t => schema[t.PredictionColumnName()])
                .Append(schema[MtLoraColumnNames.Height]).Append(schema[MtLoraColumnNames.Width]).Append(schema[nameof(ImageFile.Path)]);
            if (grid) columns = columns.Append(schema[imageColumnName]);
            using var cursor = scored.GetRowCursor(columns);
            var height = cursor.GetGetter<int>(schema[MtLoraColumnNames.Height]);
            var width = cursor.GetGetter<int>(schema[MtLoraColumnNames.Width]);
            var pathGetter = cursor.GetGetter<ReadOnlyMemory<char>>(schema[nameof(ImageFile.Path)]);
            var imageGetter = grid ? cursor.GetGetter<MLImage>(schema[imageColumnName]) : null;
            var byteGetters = tasks.Where(t => t.IsClassification()).ToDictionary(t => t, t => cursor.GetGetter<VBuffer<byte>>(schema[t.PredictionColumnName()]));
            var floatGetters = tasks.Where(t => !t.IsClassification()).ToDictionary(t => t, t => cursor.GetGetter<VBuffer<float>>(schema[t.PredictionColumnName()]));
            int done = 0;
            while (cursor.MoveNext())
            {
                int h = 0, w = 0;
                ReadOnlyMemory<char> source = default;
                height(ref h);
                width(ref w);
                pathGetter(ref source);
                var name = UniqueName(Path.GetFileNameWithoutExtension(source.ToString()), used);
                var panels = new PredictionPanels(w, h);
                foreach (var task in tasks)
                {
                    using SKBitmap bitmap = task switch
                    {
                        DenseTask.SemanticSegmentation or DenseTask.HumanParts => ClassMap(task, byteGetters[task], w, h, panels),
                        _ => Dense(task, floatGetters[task], w, h, panels),
                    };
                    var file = Path.GetFullPath(Path.Combine(outDir, $"{name}.{task.ReferenceName()}.png"));
                    PngFile.Save(bitmap, file);
                    written.Add(file);
                }
                if (imageGetter is not null)
                {
                    MLImage input = null!;
                    imageGetter(ref input);
                    panels.Image = ColorMaps.ToRgb(input);
                    var file = Path.GetFullPath(Path.Combine(outDir, $"{name}.grid.png"));
                    PredictionGrid.Save(file, panels);
                    written.Add(file);
                }
                report(++done, Path.GetFileName(source.ToString()));
            }
            return written;
        });
    }

    private static SKBitmap ClassMap(DenseTask task, ValueGetter<VBuffer<byte>> getter, int w, int h, PredictionPanels panels)
    {
        VBuffer<byte> buffer = default;
        getter(ref buffer);
        var map = buffer.DenseValues().ToArray(); // (H, W) class ids
        if (task == DenseTask.SemanticSegmentation)
        {
            panels.SemanticSegmentation = map;
            return ColorMaps.SemanticSegmentation(map, w, h);
        }
        panels.HumanParts = map;
        return ColorMaps.HumanParts(map, w, h);
    }

    private static SKBitmap Dense(DenseTask task, ValueGetter<VBuffer<float>> getter, int w, int h, PredictionPanels panels)
    {
        VBuffer<float> buffer = default;
        getter(ref buffer);
        var values = buffer.DenseValues().ToArray();
        if (task == DenseTask.Saliency)
        {
            panels.Saliency = values; // (H, W) probabilities
            return ColorMaps.Saliency(values, w, h);
        }
        panels.SurfaceNormals = values; // (3, H, W) unit normals
        return ColorMaps.Normals(values, w, h);
    }

    /// <summary>Two inputs a.jpg and a.png would write the same outputs: the second becomes a_2.</summary>
    private static string UniqueName(string name, HashSet<string> used)
    {
        var candidate = name;
        for (int i = 2; !used.Add(candidate); i++) candidate = $"{name}_{i}";
        return candidate;
    }
}
