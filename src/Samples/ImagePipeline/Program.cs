// Compose MTLoRA with ML.NET's own image transforms in one pipeline: LoadImages (file name -> image), ResizeImages
// (here to a fixed 96×96, padded to keep the aspect ratio), then the MTLoRA model. The whole chain is saved as one
// pipeline.zip that takes file names and returns the four tasks' predictions.
//
//   dotnet run --project src/Samples/ImagePipeline -- --model mtlora-run/model.zip --images photos/
//
// Without --model, a tiny MTLoRA is trained for a few seconds on a synthetic PASCAL_MT; without --images, that
// dataset's JPEG images are used. Options: --out <folder> (default image-pipeline).
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.Transforms.Image;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (Arg("model") is not null && Arg("images") is null)
{
    Console.Error.WriteLine("usage: ImagePipeline [--model <model.zip> --images <folder>] [--out image-pipeline]");
    return 2;
}
var outDir = Directory.CreateDirectory(Arg("out") ?? "image-pipeline").FullName;
var ml = new MLContext(seed: 0);
ITransformer model;
string imageFolder;
if (Arg("model") is { } modelPath)
{
    model = ml.Model.Load(modelPath, out _);
    imageFolder = Arg("images")!;
}
else
{
    var data = SyntheticPascal.Generate(Path.Combine(outDir, "synthetic-pascal"), new SyntheticPascalOptions { TrainCount = 4, ValCount = 3, Width = 96, Height = 72 });
    var tiny = new MtLoraNetworkOptions { EmbedDim = 16, Depths = [2, 2, 2, 2], NumHeads = [1, 2, 2, 4], WindowSize = 4, ImageSize = 128, SharedRank = 4, TaskRank = 2, DecoderChannels = [8, 8, 16, 16] };
    model = ml.MultiTask().Trainers.MtLora(new MtLoraOptions { Network = tiny, Epochs = 1, WarmupEpochs = 0, BatchSize = 2, LearningRate = 1e-3, Device = "cpu" })
        .Fit(ml.Data.LoadPascalContext(data.Root, "train"));
    imageFolder = Arg("images") ?? Path.Combine(data.Root, "JPEGImages");
}

var files = ml.Data.LoadFromEnumerable(Directory.EnumerateFiles(imageFolder).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".jpg" or ".jpeg" or ".png")
    .Order(StringComparer.Ordinal).Select(f => new ImageFile { Name = Path.GetFileName(f) }).ToList());
var pipeline = ml.Transforms.LoadImages("Image", imageFolder, nameof(ImageFile.Name))
    .Append(ml.Transforms.ResizeImages("Image", 96, 96, "Image", ImageResizingEstimator.ResizingKind.IsoPad))
    .Fit(files)
    .Append(model);
var zip = Path.Combine(outDir, "pipeline.zip");
ml.Model.Save(pipeline, files.Schema, zip);
pipeline.Dispose();

// The saved chain is one model: file names in, predictions out.
var loaded = ml.Model.Load(zip, out _);
foreach (var p in ml.Data.CreateEnumerable<Prediction>(loaded.Transform(files), reuseRowObject: false))
    Console.WriteLine($"{p.Name}: {p.Width}×{p.Height}, {p.SemsegPredictedLabel.Distinct().Count()} classes, mean saliency {p.SaliencyProbability.Average():F3}");
(loaded as IDisposable)?.Dispose();
return 0;

sealed class ImageFile { public string Name { get; set; } = ""; }

sealed class Prediction
{
    public string Name { get; set; } = "";
    public int Width { get; set; }
    public int Height { get; set; }
    public byte[] SemsegPredictedLabel { get; set; } = [];
    public float[] SaliencyProbability { get; set; } = [];
}
