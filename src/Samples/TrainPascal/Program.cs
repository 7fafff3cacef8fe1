// Train MTLoRA on PASCAL_MT from a Microsoft Swin ImageNet checkpoint: by default the paper's setting (Swin-T 448,
// shared rank 64, task rank 4, the four tasks, 300 epochs, batch 32).
//
//   dotnet run --project src/Samples/TrainPascal -- --data /data/PASCAL_MT --backbone swin_tiny_patch4_window7_224.pth
//
// Options: --out <folder> (default mtlora-run), --config <network.json> (another architecture or ranks), --epochs <n>,
// --batch <n>, --max-steps <n>, --device auto|cpu|cuda. Writes model.zip, metrics.json, training_log.csv and
// training_curves.html into the output folder and prints the validation metrics with Δm.
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using Microsoft.ML.MtLora.Visualization;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (Arg("data") is not { } data || Arg("backbone") is not { } backbone)
{
    Console.Error.WriteLine("usage: TrainPascal --data <PASCAL_MT folder> --backbone <swin_*.pth> [--out <folder>] [--config <network.json>] [--epochs 300] [--batch 32] [--max-steps <n>] [--device auto]");
    return 2;
}
var outDir = Directory.CreateDirectory(Arg("out") ?? "mtlora-run").FullName;
int epochs = int.Parse(Arg("epochs") ?? "300");

var ml = new MLContext(seed: 0);
var train = ml.Data.LoadPascalContext(data, "train");
var val = ml.Data.LoadPascalContext(data, "val");

// Progress arrives on the training thread; keep each report for the training curves.
var curve = new List<TrainingCurvePoint>();
var options = new MtLoraOptions
{
    Network = Arg("config") is { } config ? MtLoraNetworkOptions.Load(config) : new MtLoraNetworkOptions(),
    PretrainedWeightsPath = backbone,
    Epochs = epochs,
    WarmupEpochs = Math.Min(20, epochs - 1),
    BatchSize = int.Parse(Arg("batch") ?? "32"),
    MaxSteps = Arg("max-steps") is { } maxSteps ? long.Parse(maxSteps) : null,
    Device = Arg("device") ?? "auto",
    Progress = new SyncProgress<TrainingProgress>(p =>
    {
        Console.WriteLine(p);
        curve.Add(new TrainingCurvePoint(p.Step, p.Epoch, p.TaskLosses, p.TotalLoss, p.LearningRate));
    }),
};

using var model = ml.MultiTask().Trainers.MtLora(options).Fit(train);
// Saved for image files (LoadImages from ImagePath, then the model): the model.zip describes its own input.
var (forFiles, fileSchema) = ml.MultiTask().WithImageFileInput(model);
ml.Model.Save(forFiles, fileSchema, Path.Combine(outDir, "model.zip"));
TrainingLog.WriteCsv(Path.Combine(outDir, "training_log.csv"), curve);
TrainingCurves.Save(Path.Combine(outDir, "training_curves.html"), curve);

var metrics = ml.MultiTask().Evaluate(model, val); // the reference protocol: the paper's and the Δm baselines'
File.WriteAllText(Path.Combine(outDir, "metrics.json"), metrics.ToJson().ToJsonString());
Console.WriteLine(metrics.ToTable());
Console.WriteLine($"model.zip, metrics.json and training_curves.html written to {outDir}");
return 0;

/// <summary>Calls the action on the reporting thread (unlike <see cref="Progress{T}"/>, which posts to the thread pool).</summary>
sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
{
    public void Report(T value) => action(value);
}
