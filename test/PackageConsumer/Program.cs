// Uses Microsoft.ML.MtLora through its public API only, as a package user would: writes a tiny synthetic PASCAL_MT,
// trains a tiny MTLoRA network on it, saves model.zip, loads it back and scores the validation split with both models.
// Prints one JSON object on stdout; progress on stderr. Usage: PackageConsumer <work folder>
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;

var work = args.Length == 1 ? args[0] : throw new ArgumentException("usage: PackageConsumer <work folder>");
Directory.CreateDirectory(work);

var dataset = SyntheticPascal.Generate(Path.Combine(work, "PASCAL_MT"),
    new SyntheticPascalOptions { TrainCount = 4, ValCount = 2, Width = 96, Height = 72, Seed = 7 });

var ml = new MLContext(seed: 1);
var train = ml.Data.LoadPascalContext(dataset.Root, "train");
var val = ml.Data.LoadPascalContext(dataset.Root, "val");

var losses = new List<double>();
var options = new MtLoraOptions
{
    // A tiny Swin (embed 16, depths 2-2-2-2, window 4, 128 px) from random initialisation.
    Network = new MtLoraNetworkOptions
    {
        EmbedDim = 16,
        Depths = [2, 2, 2, 2],
        NumHeads = [1, 2, 2, 4],
        WindowSize = 4,
        ImageSize = 128,
        SharedRank = 8,
        TaskRank = 4,
        LoraDropout = 0,
        DropPathRate = 0,
        DecoderChannels = [8, 8, 16, 16],
    },
    Epochs = 1,
    WarmupEpochs = 0,
    BatchSize = 2,
    LearningRate = 1e-3,
    Device = "cpu",
    Seed = 3,
    DataLoaderParallelism = 1,
    InferenceBatchSize = 2,
    ProgressEverySteps = 1,
    Progress = new SyncProgress<TrainingProgress>(p => { losses.Add(p.TotalLoss); Console.Error.WriteLine(p); }),
};

var modelPath = Path.Combine(work, "model.zip");
using (var model = ml.MultiTask().Trainers.MtLora(options).Fit(train))
{
    ml.Model.Save(model, train.Schema, modelPath);
    var scoresBefore = model.Transform(val).GetColumn<float[]>("SemsegScore").ToList();

    var loaded = ml.Model.Load(modelPath, out _);
    var scored = loaded.Transform(val);
    var scoresAfter = scored.GetColumn<float[]>("SemsegScore").ToList();
    double maxDifference = scoresBefore.Zip(scoresAfter, (a, b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max()).Max();
    var metrics = ml.MultiTask().Evaluate(scored);
    (loaded as IDisposable)?.Dispose();

    Console.WriteLine(JsonSerializer.Serialize(new
    {
        torchSharp = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(),
        steps = losses.Count,
        losses,
        modelZip = modelPath,
        modelZipBytes = new FileInfo(modelPath).Length,
        valRows = scoresAfter.Count,
        reloadMaxScoreDifference = maxDifference,
        semsegMIoU = metrics.SemanticSegmentation?.MeanIoU,
        deltaM = metrics.DeltaM,
    }));
}

/// <summary>Reports on the calling thread (Progress&lt;T&gt; would post to the thread pool and could run after Fit returns).</summary>
sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
{
    public void Report(T value) => action(value);
}
