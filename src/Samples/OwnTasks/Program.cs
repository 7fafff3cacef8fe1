// Train MTLoRA on your own folder with two tasks of your own: a 5-class defect segmentation and a depth map.
//
//   dotnet run --project src/Samples/OwnTasks                          # writes a small synthetic folder first, then trains
//   dotnet run --project src/Samples/OwnTasks -- /data/my-parts --backbone swin_tiny_patch4_window7_224.pth --config net.json
//
// The folder (see README, "Your own tasks"): images/<id>.jpg|.png, defects/<id>.png (palette or 8-bit gray class ids 0..4,
// 255 = ignore), range/<id>.png (16-bit gray millimetres) or range/<id>.npy (float metres), 0 = no depth; optional
// splits/train.txt and splits/val.txt (else every image is used for both). Edit `tasks` below for your own tasks.
// Options: --out <folder> (default own-tasks-run), --backbone <swin .pth/.safetensors> (default: none, random weights:
// only for a smoke run), --config <network.json> (default: a tiny Swin, 128 px), --epochs <n> (default 10), --batch <n>
// (default 4), --lr <rate> (default: the reference's 5e-4 × batch / 512 with --backbone, 1e-3 without),
// --device auto|cpu|cuda. Writes model.zip into the output folder, reloads it, evaluates both and prints the
// metrics.
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Modeling;
using SkiaSharp;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

DenseTaskDescriptor[] tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range")];
var outDir = Directory.CreateDirectory(Arg("out") ?? "own-tasks-run").FullName;
string? folder = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : null;
if (folder is null)
{
    folder = Path.Combine(outDir, "synthetic");
    WriteSyntheticFolder(folder, count: 8, width: 64, height: 48);
    Console.WriteLine($"no folder given: wrote a synthetic one to {folder}");
}
else if (!Directory.Exists(folder))
{
    Console.Error.WriteLine($"error: folder '{folder}' does not exist (expected images/, defects/ and range/ in it).");
    Console.Error.WriteLine("usage: OwnTasks [<folder>] [--out <folder>] [--backbone <swin.pth>] [--config <network.json>] [--epochs 10] [--batch 4] [--lr <rate>] [--device auto]");
    return 2;
}

var ml = new MLContext(seed: 0);
bool hasSplits = File.Exists(Path.Combine(folder, "splits", "train.txt")) && File.Exists(Path.Combine(folder, "splits", "val.txt"));
var train = ml.Data.LoadDenseTaskFolder(folder, tasks, hasSplits ? "train" : null);
var val = hasSplits ? ml.Data.LoadDenseTaskFolder(folder, tasks, "val") : train;
Console.WriteLine(hasSplits ? $"{train.Ids.Count} training and {val.Ids.Count} validation images" : $"{train.Ids.Count} images (no splits/: training and evaluating on all)");

var network = Arg("config") is { } config ? MtLoraNetworkOptions.Load(config) : new MtLoraNetworkOptions
{
    // A tiny Swin so that a fresh machine trains in seconds; pass --config and --backbone for real work.
    EmbedDim = 16, Depths = [2, 2, 2, 2], NumHeads = [1, 2, 2, 4], WindowSize = 4, ImageSize = 128, SharedRank = 8, TaskRank = 4,
    DecoderChannels = [8, 8, 16, 16],
};
network.Tasks = tasks;
int epochs = int.Parse(Arg("epochs") ?? "10");
var options = new MtLoraOptions
{
    Network = network,
    PretrainedWeightsPath = Arg("backbone"),
    Epochs = epochs,
    WarmupEpochs = Math.Min(2, epochs - 1),
    BatchSize = int.Parse(Arg("batch") ?? "4"),
    // The reference's rate (5e-4 × batch / 512) fine-tunes a pretrained backbone; random weights need a larger one.
    LearningRate = Arg("lr") is { } lr ? double.Parse(lr, System.Globalization.CultureInfo.InvariantCulture) : Arg("backbone") is null ? 1e-3 : null,
    Device = Arg("device") ?? "auto",
    Seed = 0,
    Progress = new SyncProgress<Microsoft.ML.MtLora.Training.TrainingProgress>(p => Console.WriteLine(p)),
};
if (options.PretrainedWeightsPath is null) Console.WriteLine("no --backbone: training from random weights (a smoke run, not a useful model)");

using var model = ml.MultiTask().Trainers.MtLora(options).Fit(train);
var zip = Path.Combine(outDir, "model.zip");
ml.Model.Save(model, train.Schema, zip);
var metrics = ml.MultiTask().Evaluate(model, val);
Console.WriteLine(metrics.ToTable());

// The saved model, loaded back, scores the same images to the same numbers.
var loaded = ml.Model.Load(zip, out _);
try
{
    var again = ml.MultiTask().Evaluate(loaded, val);
    bool same = again.ToJson().ToJsonString() == metrics.ToJson().ToJsonString();
    Console.WriteLine($"model.zip written to {zip}; reloaded, it evaluates to {(same ? "the same metrics" : "DIFFERENT metrics:")}");
    if (!same)
    {
        Console.WriteLine(again.ToTable());
        return 1;
    }
}
finally { (loaded as IDisposable)?.Dispose(); }
return 0;

// A few images of a grey plate with coloured rectangular defects (classes 1..4, 0 = plate), lit from above; the plate tilts
// away (depth 1 m at the bottom to 2 m at the top), defects stand 0.2 m closer, and a few pixels have no depth (0).
static void WriteSyntheticFolder(string root, int count, int width, int height)
{
    SKColor[] colours = [new(128, 128, 128), new(200, 40, 40), new(40, 160, 40), new(40, 60, 200), new(220, 200, 40)];
    var rng = new Random(7);
    foreach (var sub in new[] { "images", "defects", "range", "splits" }) Directory.CreateDirectory(Path.Combine(root, sub));
    var ids = new List<string>();
    for (int k = 0; k < count; k++)
    {
        string id = $"part{k:D3}";
        ids.Add(id);
        var classes = new byte[width * height];
        for (int d = 0; d < 3; d++)
        {
            int x0 = rng.Next(width - 12), y0 = rng.Next(height - 10), w = 6 + rng.Next(8), h = 5 + rng.Next(6);
            byte c = (byte)(1 + rng.Next(4));
            for (int y = y0; y < Math.Min(height, y0 + h); y++)
                for (int x = x0; x < Math.Min(width, x0 + w); x++) classes[y * width + x] = c;
        }
        var depth = new float[width * height];
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                var c = colours[classes[i]];
                float light = 0.7f + 0.3f * (height - y) / height;
                int noise = rng.Next(-10, 11);
                bitmap.SetPixel(x, y, new SKColor(Clamp(c.Red * light + noise), Clamp(c.Green * light + noise), Clamp(c.Blue * light + noise)));
                depth[i] = rng.Next(50) == 0 ? 0f : 2f - (float)y / height - (classes[i] > 0 ? 0.2f : 0f);
            }
        }
        using (var png = bitmap.Encode(SKEncodedImageFormat.Png, 100)) File.WriteAllBytes(Path.Combine(root, "images", id + ".png"), png.ToArray());
        IndexedPng.WritePalette(Path.Combine(root, "defects", id + ".png"), new IndexedImage(width, height, classes), IndexedPng.VocPalette);
        NpyFile.WriteFloat32(Path.Combine(root, "range", id + ".npy"), [height, width], depth);
    }
    File.WriteAllLines(Path.Combine(root, "splits", "train.txt"), ids.Take(count * 3 / 4));
    File.WriteAllLines(Path.Combine(root, "splits", "val.txt"), ids.Skip(count * 3 / 4));
}

static byte Clamp(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);

/// <summary>Calls the action on the reporting thread (unlike <see cref="Progress{T}"/>, which posts to the thread pool).</summary>
sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
{
    public void Report(T value) => action(value);
}
