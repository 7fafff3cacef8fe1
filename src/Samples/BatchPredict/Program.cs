// Predict every image of a folder with a saved MTLoRA model.zip and write one picture per image: the input next to
// its semantic segmentation, human parts, saliency and surface normals (whichever tasks the model has).
//
//   dotnet run --project src/Samples/BatchPredict -- --model mtlora-run/model.zip --images photos/ --out predictions/
//
// Images of any size are accepted (.jpg, .jpeg, .png); the predictions come back at each image's own size.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Visualization;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (Arg("model") is not { } modelPath || Arg("images") is not { } imageFolder)
{
    Console.Error.WriteLine("usage: BatchPredict --model <model.zip> --images <folder> [--out predictions]");
    return 2;
}
var outDir = Directory.CreateDirectory(Arg("out") ?? "predictions").FullName;
var files = Directory.EnumerateFiles(imageFolder).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".jpg" or ".jpeg" or ".png")
    .Order(StringComparer.Ordinal).Select(f => new ImageFile { Name = Path.GetFileName(f), ImagePath = Path.GetFullPath(f) }).ToList();

var ml = new MLContext(seed: 0);
var model = ml.Model.Load(modelPath, out var inputSchema);
try
{
    // A model.zip of 'mtlora train' or the samples starts with LoadImages from ImagePath (its input schema says so): it reads
    // the files itself, lazily, a batch at a time as the rows stream by. A model saved with decoded images gets them here.
    var rows = ml.Data.LoadFromEnumerable(files);
    var input = inputSchema.GetColumnOrNull(nameof(ImageFile.ImagePath)) is not null
        ? rows
        : ml.Transforms.LoadImages("Image", imageFolder: null, nameof(ImageFile.ImagePath)).Fit(rows).Transform(rows);
    var scored = model.Transform(input);
    foreach (var p in ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false))
    {
        using var image = MLImage.CreateFromFile(Path.Combine(imageFolder, p.Name));
        var panels = new PredictionPanels(p.Width, p.Height)
        {
            Image = ColorMaps.ToRgb(image),
            SemanticSegmentation = p.SemsegPredictedLabel,
            HumanParts = p.HumanPartsPredictedLabel,
            Saliency = p.SaliencyProbability,
            SurfaceNormals = p.NormalsPredicted,
        };
        var output = Path.Combine(outDir, Path.GetFileNameWithoutExtension(p.Name) + ".png");
        PredictionGrid.Save(output, panels);
        Console.WriteLine($"{p.Name} ({p.Width}×{p.Height}) -> {output}");
    }
    return 0;
}
finally
{
    (model as IDisposable)?.Dispose(); // the model holds the network's native tensors
}

sealed class ImageFile
{
    public string Name { get; set; } = "";
    public string ImagePath { get; set; } = "";
}

/// <summary>The columns read back: the file name, the image size and the four tasks' predictions (a four-task model, as the paper's).</summary>
sealed class Prediction
{
    public string Name { get; set; } = "";
    public int Width { get; set; }
    public int Height { get; set; }
    public byte[] SemsegPredictedLabel { get; set; } = [];
    public byte[] HumanPartsPredictedLabel { get; set; } = [];
    public float[] SaliencyProbability { get; set; } = [];
    public float[] NormalsPredicted { get; set; } = [];
}
