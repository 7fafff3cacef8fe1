using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Visualization;
using Microsoft.ML.Transforms.Image;
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
        var model = new Option<string>("--model") { Description = "The model.zip written by 'mtlora train'.", Required = true };
        var image = new Option<string>("--image") { Description = "An image file, or a folder of images (.jpg, .jpeg, .png, .bmp).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the PNGs (created if missing).", Required = true };
        var grid = new Option<bool>("--grid") { Description = "Also write a grid per image: the input and every task, class maps with legends." };
        foreach (var o in new Option[] { model, image, output, grid }) cmd.Options.Add(o);
        cmd.SetAction((parseResult, cancellationToken) => Task.FromResult(Run(parseResult.GetValue(model), parseResult.GetValue(image),
            parseResult.GetValue(output), parseResult.GetValue(grid), parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error,
            cancellationToken)));
        return cmd;
    }

    /// <summary>
    /// Runs the verb: 0 when every image was predicted; 1 when some could not be read (each named on <paramref name="stderr"/>,
    /// the others predicted); 2 on a user error or when no image could be read (one line on <paramref name="stderr"/>);
    /// 130/143 when stopped by Ctrl+C or SIGTERM between images.
    /// </summary>
    internal static int Run(string? modelPath, string? imagePath, string? outDir, bool grid, TextWriter stdout, TextWriter stderr,
        CancellationToken cancellationToken = default) =>
        CliCommon.Guard("predict", stderr, () =>
        {
            if (string.IsNullOrWhiteSpace(imagePath)) throw new CliCommon.UsageException("give --image <file|folder>.");
            if (string.IsNullOrWhiteSpace(outDir)) throw new CliCommon.UsageException("give --out <folder>.");
            var files = ListImages(imagePath);
            var outFolder = OutputPaths.CheckFolder("--out", outDir);
            OutputPaths.RemoveStaleTemporaries(outFolder, "*.png");
            var ml = new MLContext(seed: 0);
            var loaded = CliCommon.LoadModel(ml, modelPath, out _);
            try
            {
                var mtlora = CliCommon.FindMtLora(loaded)
                    ?? throw new CliCommon.UsageException($"--model: '{modelPath}' holds no MTLoRA transformer.");
                using var stop = StopSignals.Listen(stderr, "predict", "the current image", cancellationToken);
                var run = Predict(loaded, mtlora, files, outFolder, grid, stderr, stop.Token);
                CliCommon.WriteJson(new JsonObject
                {
                    ["model"] = Path.GetFullPath(modelPath!),
                    ["tasks"] = new JsonArray(mtlora.Tasks.Select(t => (JsonNode)t.ReferenceName()).ToArray()),
                    ["images"] = run.Predicted,
                    ["out"] = outFolder,
                    ["files"] = new JsonArray(run.Written.Select(f => (JsonNode)f).ToArray()),
                    ["failed"] = new JsonArray(run.Failed.Select(f => (JsonNode)new JsonObject { ["file"] = f.File, ["reason"] = f.Reason }).ToArray()),
                }, stdout);
                if (stop.Token.IsCancellationRequested)
                {
                    stderr.WriteLine($"mtlora predict: {stop.Cause} after {run.Predicted} of {files.Count} images; the outputs listed were written whole.");
                    return stop.ExitCode;
                }
                if (run.Failed.Count == 0) return 0;
                stderr.WriteLine($"mtlora predict: error: {run.Failed.Count} of {files.Count} images could not be read (each named above); {run.Predicted} were predicted.");
                return run.Predicted > 0 ? 1 : 2;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        });

    /// <summary>The image files to score: the file itself, or a folder's images in name order.</summary>
    internal static List<string> ListImages(string path)
    {
        if (File.Exists(path)) return [Path.GetFullPath(path)];
        if (!Directory.Exists(path)) throw new CliCommon.UsageException($"--image: '{path}' is neither a file nor a folder.");
        List<string> files;
        try
        {
            files = Directory.EnumerateFiles(path)
                .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliCommon.UsageException($"--image: cannot list folder '{path}' ({OutputPaths.Cause(e)}).");
        }
        if (files.Count == 0)
            throw new CliCommon.UsageException($"--image: folder '{path}' holds no image ({string.Join(", ", ImageExtensions)}).");
        return files;
    }

    /// <summary>What a predict run did: the files written, the images predicted, the files that could not be read and why.</summary>
    private sealed record PredictRun(List<string> Written, int Predicted, List<(string File, string Reason)> Failed);

    /// <summary>
    /// Predicts one image at a time (one forward pass each, through the model's row mapper): memory is bounded by one
    /// image (see <see cref="PredictImageReader"/>), and an unreadable file is reported and skipped, not fatal to the run.
    /// </summary>
    private static PredictRun Predict(ITransformer model, MtLoraTransformer mtlora, List<string> files, string outDir, bool grid,
        TextWriter stderr, CancellationToken stop)
    {
        var input = new ImageInputRow(mtlora.ImageColumnName);
        var mapper = model.GetRowToRowMapper(input.Schema);
        var schema = mapper.OutputSchema;
        var tasks = mtlora.Tasks;
        var active = tasks.Select(t => schema[t.PredictionColumnName()]).Append(schema[MtLoraColumnNames.Height]).Append(schema[MtLoraColumnNames.Width]);
        using var row = mapper.GetRow(input, active);
        var height = row.GetGetter<int>(schema[MtLoraColumnNames.Height]);
        var width = row.GetGetter<int>(schema[MtLoraColumnNames.Width]);
        var byteGetters = tasks.Where(t => t.IsClassification()).ToDictionary(t => t, t => row.GetGetter<VBuffer<byte>>(schema[t.PredictionColumnName()]));
        var floatGetters = tasks.Where(t => !t.IsClassification()).ToDictionary(t => t, t => row.GetGetter<VBuffer<float>>(schema[t.PredictionColumnName()]));
        var run = new PredictRun([], 0, []);
        int predicted = 0;
        var used = new HashSet<string>(StringComparer.Ordinal);

        CliCommon.WithProgress(stderr, "predicting", files.Count, report =>
        {
            int done = 0;
            foreach (var source in files)
            {
                if (stop.IsCancellationRequested) break;
                MLImage image;
                try
                {
                    image = PredictImageReader.Read(source, out var note);
                    if (note is not null) stderr.WriteLine($"mtlora predict: note: '{source}': {note}.");
                }
                catch (InvalidDataException e)
                {
                    run.Failed.Add((source, e.Message));
                    stderr.WriteLine($"mtlora predict: cannot read '{source}': {e.Message}.");
                    report(++done, Path.GetFileName(source));
                    continue;
                }
                using (image)
                {
                    input.Set(source, image);
                    int h = 0, w = 0;
                    height(ref h);
                    width(ref w);
                    var name = UniqueName(Path.GetFileNameWithoutExtension(source), used);
                    var panels = new PredictionPanels(w, h);
                    foreach (var task in tasks)
                    {
                        using SKBitmap bitmap = task switch
                        {
                            DenseTask.SemanticSegmentation or DenseTask.HumanParts => ClassMap(task, byteGetters[task], w, h, panels),
                            _ => Dense(task, floatGetters[task], w, h, panels),
                        };
                        var png = PngFile.Encode(bitmap);
                        run.Written.Add(WritePng(Path.Combine(outDir, $"{name}.{task.ReferenceName()}.png"), png));
                    }
                    if (grid)
                    {
                        panels.Image = ColorMaps.ToRgb(image);
                        run.Written.Add(WritePng(Path.Combine(outDir, $"{name}.grid.png"), PredictionGrid.RenderPng(panels)));
                    }
                }
                predicted++;
                report(++done, Path.GetFileName(source));
            }
            return 0;
        });
        return run with { Predicted = predicted };
    }

    private static string WritePng(string file, byte[] png)
    {
        OutputPaths.Write(file, stream => stream.Write(png));
        return file;
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

    /// <summary>The one input row predict feeds the model's row mapper: the file's path and its image, replaced per image.</summary>
    private sealed class ImageInputRow : DataViewRow
    {
        private ReadOnlyMemory<char> _path;
        private MLImage? _image;
        private long _position = -1;

        public ImageInputRow(string imageColumnName)
        {
            var builder = new DataViewSchema.Builder();
            builder.AddColumn("Path", TextDataViewType.Instance);
            builder.AddColumn(imageColumnName, new ImageDataViewType());
            Schema = builder.ToSchema();
        }

        public override DataViewSchema Schema { get; }

        public override long Position => _position;

        public override long Batch => 0;

        /// <summary>Moves the row to the next image (the mapper predicts once per position).</summary>
        public void Set(string path, MLImage image)
        {
            _path = path.AsMemory();
            _image = image;
            _position++;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            Delegate getter = column.Index == 0
                ? (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = _path)
                : (ValueGetter<MLImage>)((ref MLImage value) => value = _image!);
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is read as {column.Type}, not {typeof(TValue).Name}.");
        }
    }
}
