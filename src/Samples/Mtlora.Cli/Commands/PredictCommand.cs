using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Visualization;
using Microsoft.ML.Transforms.Image;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora predict --model model.zip --image &lt;file|folder&gt; --out &lt;folder&gt; [--layout ...] [--grid]</c>: the files of
/// every task (any <see cref="DenseTaskDescriptor"/>) per image at the image's own size, named and encoded as
/// <see cref="PredictOutputs"/> says (PASCAL models: <c>&lt;name&gt;.&lt;task&gt;.png</c> pictures as before; other models:
/// <c>&lt;task&gt;/&lt;name&gt;.png|.npy</c>, which <c>evaluate --predictions --dataset nyud</c> reads back), and with
/// <c>--grid</c> (PASCAL tasks only) one picture per image with the input and every task side by side, with legends. With
/// <c>--engine onnx</c> the model is a model.onnx from <c>mtlora export-onnx</c>, run by ONNX Runtime
/// (<see cref="OnnxPredictEngine"/>); the files are written by the same code.
/// </summary>
internal static class PredictCommand
{
    /// <summary>Image files read from a folder (what ML.NET's image loader decodes).</summary>
    internal static readonly string[] ImageExtensions = [".jpg", ".jpeg", ".png", ".bmp"];

    public static Command Create()
    {
        var cmd = new Command("predict",
            "Run a trained model on images and write each task's prediction at the input's size: for a PASCAL-Context model one PNG per task " +
            "(<name>.semseg.png, <name>.human_parts.png, <name>.sal.png, <name>.normals.png); for any other model (NYUD-v2, your own tasks) " +
            "<task>/<name>.png|.npy, the layout 'mtlora evaluate --predictions <out> --dataset nyud' reads (see --layout). " +
            "--grid adds <name>.grid.png (PASCAL tasks). Prints one JSON object listing the files.");
        var model = new Option<string>("--model") { Description = "The model.zip written by 'mtlora train' (with --engine onnx: a model.onnx from 'mtlora export-onnx').", Required = true };
        var image = new Option<string>("--image") { Description = "An image file, or a folder of images (.jpg, .jpeg, .png, .bmp).", Required = true };
        var output = new Option<string>("--out") { Description = "Folder for the outputs (created if missing).", Required = true };
        var grid = new Option<bool>("--grid") { Description = "Also write a grid per image: the input and every task, class maps with legends." };
        var engine = new Option<string>("--engine")
        {
            Description = "What runs the network: 'torchsharp' (a model.zip) or 'onnx' (a model.onnx from 'mtlora export-onnx', run by ONNX Runtime).",
            DefaultValueFactory = _ => OnnxPredictEngine.TorchSharp,
        };
        engine.AcceptOnlyFromAmong(OnnxPredictEngine.TorchSharp, OnnxPredictEngine.Onnx);
        var layout = new Option<string>("--layout")
        {
            Description = $"Where the files go: '{PredictOutputs.Flat}' (<out>/<name>.<task>.png|.npy), '{PredictOutputs.PerTaskFolders}' " +
                $"(<out>/<task>/<name>.png|.npy, what 'evaluate --predictions --dataset nyud' reads), or '{PredictOutputs.Auto}': flat for a model of " +
                $"PASCAL-Context tasks (viewing pictures: VOC colours, saliency heat map, normals RGB), per-task-folders otherwise. Outside flat PASCAL " +
                $"pictures, each task is written by kind: {PredictOutputs.ByKind}.",
            DefaultValueFactory = _ => PredictOutputs.Auto,
        };
        layout.AcceptOnlyFromAmong(PredictOutputs.Auto, PredictOutputs.Flat, PredictOutputs.PerTaskFolders);
        foreach (var o in new Option[] { model, image, output, grid, engine, layout }) cmd.Options.Add(o);
        cmd.SetAction((parseResult, cancellationToken) => Task.FromResult(Run(parseResult.GetValue(model), parseResult.GetValue(image),
            parseResult.GetValue(output), parseResult.GetValue(grid), parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error,
            parseResult.GetValue(engine), cancellationToken, parseResult.GetValue(layout))));
        return cmd;
    }

    /// <summary>
    /// Runs the verb: 0 when every image was predicted; 1 when some could not be read (each named on <paramref name="stderr"/>,
    /// the others predicted); 2 on a user error or when no image could be read (one line on <paramref name="stderr"/>);
    /// 130/143 when stopped by Ctrl+C or SIGTERM between images.
    /// </summary>
    internal static int Run(string? modelPath, string? imagePath, string? outDir, bool grid, TextWriter stdout, TextWriter stderr,
        string? engine = OnnxPredictEngine.TorchSharp, CancellationToken cancellationToken = default, string? layout = PredictOutputs.Auto) =>
        CliCommon.Guard("predict", stderr, () =>
        {
            if (string.IsNullOrWhiteSpace(imagePath)) throw new CliCommon.UsageException("give --image <file|folder>.");
            if (string.IsNullOrWhiteSpace(outDir)) throw new CliCommon.UsageException("give --out <folder>.");
            var files = ListImages(imagePath);
            var outFolder = OutputPaths.CheckFolder("--out", outDir);
            using IImagePredictor predictor = engine == OnnxPredictEngine.Onnx
                ? OnnxPredictEngine.Load(modelPath)
                : ModelZipPredictor.Load(modelPath);
            if (grid && !PredictOutputs.IsPascal(predictor.Tasks))
            {
                var other = predictor.Tasks.First(t => !PredictOutputs.IsPascalTask(t, out _));
                throw new CliCommon.UsageException($"--grid draws the PASCAL-Context tasks only (semseg with 21 classes, human_parts, sal, normals); " +
                    $"this model predicts '{other.Name}' ({other.Kind}, {other.OutputChannels} output channel(s)): leave --grid out.");
            }
            var resolvedLayout = PredictOutputs.Resolve(layout, predictor.Tasks);
            OutputPaths.RemoveStaleTemporaries(outFolder, "*.png");
            OutputPaths.RemoveStaleTemporaries(outFolder, "*.npy");
            if (resolvedLayout == PredictOutputs.PerTaskFolders)
                foreach (var task in predictor.Tasks)
                {
                    var folder = OutputPaths.CheckFolder("--out", Path.Combine(outFolder, task.Name));
                    OutputPaths.RemoveStaleTemporaries(folder, "*.png");
                    OutputPaths.RemoveStaleTemporaries(folder, "*.npy");
                }
            using var stop = StopSignals.Listen(stderr, "predict", "the current image", cancellationToken);
            var run = Predict(predictor, files, outFolder, resolvedLayout, grid, stderr, stop.Token);
            CliCommon.WriteJson(new JsonObject
            {
                ["model"] = Path.GetFullPath(modelPath!),
                ["tasks"] = new JsonArray(predictor.Tasks.Select(t => (JsonNode)t.Name).ToArray()),
                ["layout"] = resolvedLayout,
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
    private static PredictRun Predict(IImagePredictor predictor, List<string> files, string outDir, string layout, bool grid,
        TextWriter stderr, CancellationToken stop)
    {
        var tasks = predictor.Tasks;
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
                    var prediction = predictor.Predict(source, image);
                    int h = prediction.Height, w = prediction.Width;
                    var name = UniqueName(Path.GetFileNameWithoutExtension(source), used);
                    var panels = new PredictionPanels(w, h);
                    foreach (var task in tasks)
                        foreach (var (file, bytes) in PredictOutputs.Files(task, prediction, name, layout, panels))
                            run.Written.Add(WriteFile(Path.Combine(outDir, file), bytes));
                    if (grid)
                    {
                        panels.Image = ColorMaps.ToRgb(image);
                        run.Written.Add(WriteFile(Path.Combine(outDir, $"{name}.grid.png"), PredictionGrid.RenderPng(panels)));
                    }
                }
                predicted++;
                report(++done, Path.GetFileName(source));
            }
            return 0;
        });
        return run with { Predicted = predicted };
    }

    private static string WriteFile(string file, byte[] bytes)
    {
        OutputPaths.Write(file, stream => stream.Write(bytes));
        return file;
    }

    /// <summary>Two inputs a.jpg and a.png would write the same outputs: the second becomes a_2.</summary>
    private static string UniqueName(string name, HashSet<string> used)
    {
        var candidate = name;
        for (int i = 2; !used.Add(candidate); i++) candidate = $"{name}_{i}";
        return candidate;
    }
}

/// <summary>One image's predictions, whichever engine computed them: the image size and each task's map.</summary>
/// <param name="Height">H, the image height (every map's height).</param>
/// <param name="Width">W.</param>
/// <param name="ClassMaps">H·W class ids per segmentation task.</param>
/// <param name="Dense">Per other task its prediction column: H·W binary-map probabilities, 3·H·W unit normals, H·W depth.</param>
internal sealed record ImagePrediction(int Height, int Width, IReadOnlyDictionary<DenseTaskDescriptor, byte[]> ClassMaps,
    IReadOnlyDictionary<DenseTaskDescriptor, float[]> Dense);

/// <summary>What <c>predict</c> runs one image at a time: a model.zip through its row mapper, or a model.onnx in ONNX Runtime.</summary>
internal interface IImagePredictor : IDisposable
{
    /// <summary>The model's tasks, in its order.</summary>
    IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>Predicts one decoded image (one forward pass).</summary>
    ImagePrediction Predict(string path, MLImage image);
}

/// <summary>
/// A model.zip predicted one image at a time (one forward pass each, through the model's row mapper): memory is bounded by
/// one image (see <see cref="PredictImageReader"/>).
/// </summary>
internal sealed class ModelZipPredictor : IImagePredictor
{
    private readonly ITransformer _model;
    private readonly ImageInputRow _input;
    private readonly DataViewRow _row;
    private readonly ValueGetter<int> _height, _width;
    private readonly Dictionary<DenseTaskDescriptor, ValueGetter<VBuffer<byte>>> _bytes;
    private readonly Dictionary<DenseTaskDescriptor, ValueGetter<VBuffer<float>>> _floats;

    private ModelZipPredictor(ITransformer model, MtLoraTransformer mtlora)
    {
        _model = model;
        Tasks = mtlora.Tasks.ToArray();
        _input = new ImageInputRow(mtlora.ImageColumnName);
        // Predict decodes the images itself: a model saved for image files is used from its image loader on.
        var mapper = MultiTaskCatalog.ForDecodedImages(model, mtlora, _input.Schema).GetRowToRowMapper(_input.Schema);
        var schema = mapper.OutputSchema;
        var active = Tasks.Select(t => schema[t.PredictionColumnName]).Append(schema[MtLoraColumnNames.Height]).Append(schema[MtLoraColumnNames.Width]);
        _row = mapper.GetRow(_input, active);
        _height = _row.GetGetter<int>(schema[MtLoraColumnNames.Height]);
        _width = _row.GetGetter<int>(schema[MtLoraColumnNames.Width]);
        _bytes = Tasks.Where(t => t.IsClassification).ToDictionary(t => t, t => _row.GetGetter<VBuffer<byte>>(schema[t.PredictionColumnName]));
        _floats = Tasks.Where(t => !t.IsClassification).ToDictionary(t => t, t => _row.GetGetter<VBuffer<float>>(schema[t.PredictionColumnName]));
    }

    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    /// <summary>Loads a model.zip; one line (usage error) when it is missing, damaged or holds no MTLoRA transformer.</summary>
    public static ModelZipPredictor Load(string? modelPath)
    {
        var loaded = CliCommon.LoadModel(new MLContext(seed: 0), modelPath, out _);
        try
        {
            var mtlora = CliCommon.FindMtLora(loaded)
                ?? throw new CliCommon.UsageException($"--model: '{modelPath}' holds no MTLoRA transformer.");
            return new ModelZipPredictor(loaded, mtlora);
        }
        catch
        {
            (loaded as IDisposable)?.Dispose();
            throw;
        }
    }

    public ImagePrediction Predict(string path, MLImage image)
    {
        _input.Set(path, image);
        int h = 0, w = 0;
        _height(ref h);
        _width(ref w);
        var maps = new Dictionary<DenseTaskDescriptor, byte[]>();
        foreach (var (task, getter) in _bytes)
        {
            VBuffer<byte> buffer = default;
            getter(ref buffer);
            maps[task] = buffer.DenseValues().ToArray();
        }
        var dense = new Dictionary<DenseTaskDescriptor, float[]>();
        foreach (var (task, getter) in _floats)
        {
            VBuffer<float> buffer = default;
            getter(ref buffer);
            dense[task] = buffer.DenseValues().ToArray();
        }
        return new ImagePrediction(h, w, maps, dense);
    }

    public void Dispose()
    {
        _row.Dispose();
        (_model as IDisposable)?.Dispose();
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
