using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>The trainer on the real network (tiny4 architecture, LoRA dropout and drop-path active).</summary>
[Collection(SerialCollection.Name)]
public class MultiTaskSwinTrainingTests(ITestOutputHelper output)
{
    private static MultiTaskSwin NewModel(long seed)
    {
        var options = MtLoraNetworkOptions.Load(Fixture.Path("tiny4", "config.json"));
        options.LoraDropout = 0.05;
        options.DropPathRate = 0.2;
        torch.random.manual_seed(seed);
        return new MultiTaskSwin(options);
    }

    private static MultiTaskTrainerSettings Settings(long maxSteps, string? checkpoints = null) => new()
    {
        Epochs = 4,
        WarmupEpochs = 1,
        MaxSteps = maxSteps,
        BaseLearningRate = 1e-3,
        WarmupLearningRate = 1e-4,
        MinLearningRate = 1e-5,
        Seed = 5,
        CheckpointDirectory = checkpoints,
    };

    [Fact]
    public void ResumedTrainingOfMultiTaskSwinMatchesStraightTraining()
    {
        using var dir = Fixture.TempDir();
        var data = new TinyData(samples: 4, batchSize: 2, size: 128);   // 2 batches per epoch: the split falls on an epoch boundary

        Dictionary<string, Tensor> straight;
        using (var model = NewModel(1))
        using (var trainer = new MultiTaskTrainer(model, data, Settings(3)))
        {
            var result = trainer.Train();
            output.WriteLine($"tiny4 MultiTaskSwin, batch 2, 128x128: {result.Elapsed.TotalMilliseconds / result.GlobalStep:F0} ms/step");
            Assert.True(double.IsFinite(result.LastTotalLoss));
            straight = Snapshot(model);
        }

        using (var model = NewModel(1))
        using (var trainer = new MultiTaskTrainer(model, data, Settings(2, dir.Path)))
            trainer.Train();

        Dictionary<string, Tensor> resumed;
        using (var model = NewModel(2))
        using (var trainer = new MultiTaskTrainer(model, data, Settings(3, dir.Path) with { ResumeFrom = dir.Path }))
        {
            Assert.Equal(3, trainer.Train().GlobalStep);
            resumed = Snapshot(model);
        }

        using var fresh = NewModel(1);
        try
        {
            foreach (var (key, e) in straight)
                Assert.True(e.eq(resumed[key]).all().item<bool>(), $"'{key}' differs after resuming");
            // Trainable tensors moved; frozen ones did not.
            foreach (var (name, p) in fresh.named_parameters())
            {
                float moved = (p.detach() - straight[name]).abs().max().item<float>();
                if (p.requires_grad) continue;
                Assert.True(moved == 0f, $"frozen '{name}' changed by {moved}");
            }
            Assert.True((fresh.state_dict()["decoders.decoders.semseg.last_layer.0.weight"] - straight["decoders.decoders.semseg.last_layer.0.weight"]).abs().max().item<float>() > 0f);
        }
        finally
        {
            foreach (var t in straight.Values) t.Dispose();
            foreach (var t in resumed.Values) t.Dispose();
        }
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
}
