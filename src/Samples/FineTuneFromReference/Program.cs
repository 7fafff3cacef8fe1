// Fine-tune a checkpoint written by the reference PyTorch MTLoRA (scale-lab/MTLoRA) on PASCAL_MT, and save it as an
// ML.NET model.zip. A checkpoint holds weights only, so the network's architecture comes from a config JSON
// (the format `mtlora describe` prints: embed_dim, depths, num_heads, window_size, img_size, ranks, tasks...).
//
//   dotnet run --project src/Samples/FineTuneFromReference -- --checkpoint ckpt_epoch_299.pth --config mtlora.json --data /data/PASCAL_MT
//
// Options: --out <folder> (default mtlora-finetuned), --epochs <n> (default 5), --learning-rate <lr> (default 1e-4),
// --batch <n> (default 8), --device auto|cpu|cuda. Without --data, a small synthetic PASCAL_MT is generated in the
// output folder, so the sample runs anywhere in seconds with a small checkpoint.
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Modeling;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (Arg("checkpoint") is not { } checkpoint || Arg("config") is not { } config)
{
    Console.Error.WriteLine("usage: FineTuneFromReference --checkpoint <model.pth> --config <network.json> [--data <PASCAL_MT folder>] [--out <folder>] [--epochs 5] [--learning-rate 1e-4] [--batch 8] [--device auto]");
    return 2;
}
var outDir = Directory.CreateDirectory(Arg("out") ?? "mtlora-finetuned").FullName;
var data = Arg("data") ?? SyntheticPascal.Generate(Path.Combine(outDir, "synthetic-pascal"),
    new SyntheticPascalOptions { TrainCount = 8, ValCount = 4, Width = 96, Height = 72 }).Root;
int epochs = int.Parse(Arg("epochs") ?? "5");

var ml = new MLContext(seed: 0);
var train = ml.Data.LoadPascalContext(data, "train");
var val = ml.Data.LoadPascalContext(data, "val");

var trainer = ml.MultiTask().Trainers.MtLora(new MtLoraOptions
{
    Network = MtLoraNetworkOptions.Load(config),
    PretrainedWeightsPath = checkpoint, // a whole MTLoRA state dict: backbone, adapters and heads
    Epochs = epochs,
    WarmupEpochs = 0,
    LearningRate = double.Parse(Arg("learning-rate") ?? "1e-4", System.Globalization.CultureInfo.InvariantCulture),
    BatchSize = int.Parse(Arg("batch") ?? "8"),
    Device = Arg("device") ?? "auto",
});
using var model = trainer.Fit(train);

var metrics = ml.MultiTask().Evaluate(model, val); // the reference protocol: the paper's and the Δm baselines'
Console.WriteLine(metrics.ToTable());
var zip = Path.Combine(outDir, "model.zip");
// Saved for image files (LoadImages from ImagePath, then the model): the model.zip describes its own input.
var (forFiles, fileSchema) = ml.MultiTask().WithImageFileInput(model);
ml.Model.Save(forFiles, fileSchema, zip);
Console.WriteLine($"Fine-tuned model written to {zip}");
return 0;
