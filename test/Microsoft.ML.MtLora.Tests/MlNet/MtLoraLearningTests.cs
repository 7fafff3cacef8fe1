using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.MlNet;

/// <summary>
/// Fit really learns: on the synthetic PASCAL (whose labels follow from what is visible), a short MTLoRA run lifts every
/// task's metric well above the same network untrained.
/// </summary>
[Collection(SerialCollection.Name)]
public class MtLoraLearningTests(ITestOutputHelper output)
{
    private static MtLoraNetworkOptions Network() => new()
    {
        EmbedDim = 16,
        Depths = [2, 2, 2, 2],
        NumHeads = [1, 2, 2, 4],
        WindowSize = 4,
        ImageSize = 64,
        SharedRank = 8,
        TaskRank = 4,
        DecoderChannels = [8, 8, 16, 16],
        LoraDropout = 0,
    };

    [Fact]
    public void MetricsRiseWellAboveTheUntrainedNetwork()
    {
        using var dir = Fixture.TempDir();
        var root = Path.Combine(dir.Path, "PASCAL_MT");
        SyntheticPascal.Generate(root, new SyntheticPascalOptions { TrainCount = 32, ValCount = 8, Width = 80, Height = 64, Seed = 3 });
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadPascalContext(root, "train");
        var val = ml.Data.LoadPascalContext(root, "val");

        // The untrained network: the initialisation Fit starts from (same seed), saved and loaded for inference.
        var untrainedPath = Path.Combine(dir.Path, "untrained.safetensors");
        manual_seed(1);
        using (var net = new MultiTaskSwin(Network()))
            SafeTensors.Save(untrainedPath, net.state_dict());
        MultiTaskMetrics before;
        using (var untrained = MtLoraTransformer.LoadFromCheckpoint(ml, Network(), untrainedPath))
            before = ml.MultiTask().Evaluate(untrained.Transform(val), baselines: SingleTaskBaselines.None);

        var options = new MtLoraOptions
        {
            Network = Network(),
            Epochs = 40,
            BatchSize = 8,
            LearningRate = 2e-3,
            WarmupEpochs = 1,
            Seed = 1,
            Device = "cpu",
        };
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(train);
        var after = ml.MultiTask().Evaluate(model.Transform(val), baselines: SingleTaskBaselines.None);

        var report = $"before:\n{before.ToTable()}\nafter:\n{after.ToTable()}";
        output.WriteLine(report);
        Assert.True(after.SemanticSegmentation!.MeanIoU > 2 * before.SemanticSegmentation!.MeanIoU + 0.05, report);
        Assert.True(after.HumanParts!.MeanIoU > before.HumanParts!.MeanIoU + 0.05, report);
        Assert.True(after.Saliency!.MeanIoU > before.Saliency!.MeanIoU + 0.1, report);
        Assert.True(after.SurfaceNormals!.Mean < before.SurfaceNormals!.Mean - 10, report);
    }
}
