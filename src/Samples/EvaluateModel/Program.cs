// Evaluate a saved MTLoRA model.zip on a PASCAL_MT split: the reference's per-task metrics (mIoU, maxF, mean angle)
// and Δm, the mean relative gain over the paper's single-task baselines.
//
//   dotnet run --project src/Samples/EvaluateModel -- --model mtlora-run/model.zip --data /data/PASCAL_MT
//
// Options: --split <name> (default val), --json <file> (also write the metrics as JSON). Without --data, a small
// synthetic PASCAL_MT is generated next to the model.
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Synthetic;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (Arg("model") is not { } modelPath)
{
    Console.Error.WriteLine("usage: EvaluateModel --model <model.zip> [--data <PASCAL_MT folder>] [--split val] [--json <metrics.json>]");
    return 2;
}
var data = Arg("data") ?? SyntheticPascal.Generate(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, "synthetic-pascal"),
    new SyntheticPascalOptions { TrainCount = 1, ValCount = 4, Width = 96, Height = 72 }).Root;

var ml = new MLContext(seed: 0);
var model = ml.Model.Load(modelPath, out _);
try
{
    // Evaluate runs the model on the loader's images and scores it against the labels under the reference protocol (labels
    // resized to the network's input size, as the paper's numbers and the Δm baselines were measured).
    var metrics = ml.MultiTask().Evaluate(model, ml.Data.LoadPascalContext(data, Arg("split") ?? "val"));
    Console.WriteLine(metrics.ToTable());
    if (Arg("json") is { } json)
        File.WriteAllText(json, metrics.ToJson().ToJsonString());
    return 0;
}
finally
{
    (model as IDisposable)?.Dispose(); // the model holds the network's native tensors
}
