using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

// Torch's process-wide generator is reseeded per step: bitwise checks need no test beside them.
[Collection(SerialCollection.Name)]
public class ValidationCadenceTests
{
    /// <summary>TinyData: 4 batches per epoch.</summary>
    private static MultiTaskTrainerSettings Settings(int epochs, long? maxSteps = null) => MultiTaskTrainerTests.Settings(maxSteps: 1) with { Epochs = epochs, MaxSteps = maxSteps };

    private sealed class Progress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    private static void AssertEqual(Dictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual, IEnumerable<string> keys)
    {
        foreach (var key in keys) Assert.True(expected[key].eq(actual[key]).all().item<bool>(), $"'{key}' differs");
    }

    [Theory]
    [InlineData(12, null, 5, new[] { 5, 10, 12 }, new long[] { 20, 40, 48 })]   // every 5 epochs, and at the end
    [InlineData(10, null, 5, new[] { 5, 10 }, new long[] { 20, 40 })]           // the last epoch's validation is the end's
    [InlineData(12, null, 0, new[] { 12 }, new long[] { 48 })]                  // 0: only at the end
    [InlineData(10, 22L, 5, new[] { 5, 5 }, new long[] { 20, 22 })]              // stopped by MaxSteps inside epoch 6
    public void ValidationRunsEveryNEpochsAndAtTheEndInEvaluationMode(int epochs, long? maxSteps, int every, int[] expectedEpochs, long[] expectedSteps)
    {
        using var model = new TinyMultiTaskNet(seed: 2);
        var calls = new List<(int Epoch, long Step, bool Training)>();
        var settings = Settings(epochs, maxSteps) with
        {
            ValidateEveryEpochs = every,
            Validation = (epoch, step) => { calls.Add((epoch, step, model.training)); return null; },
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var result = trainer.Train();
        Assert.Equal(expectedEpochs, calls.Select(c => c.Epoch));
        Assert.Equal(expectedSteps, calls.Select(c => c.Step));
        Assert.All(calls, c => Assert.False(c.Training));                          // the live network, in evaluation mode
        Assert.True(model.training);                                                // and back in training mode after
        Assert.Null(result.BestEpoch);                                              // no score: nothing to compare
    }

    [Fact]
    public void TheBestValidationIsKeptInMemoryAndBesideTheCheckpoints()
    {
        using var dir = Fixture.TempDir();
        using var model = new TinyMultiTaskNet(seed: 4);
        var scores = new Queue<double?>([1.0, 3.0, double.NaN, 2.0]);
        var seen = new Dictionary<long, Dictionary<string, Tensor>>();
        var settings = Settings(epochs: 16) with
        {
            ValidateEveryEpochs = 5,
            KeepBest = true,
            CheckpointDirectory = dir.Path,
            // The validation runs in the trainer's dispose scope: keep the snapshot out of it.
            Validation = (epoch, step) => { seen[step] = model.Snapshot().ToDictionary(kv => kv.Key, kv => kv.Value.DetachFromDisposeScope()); return scores.Dequeue(); },
        };
        Dictionary<string, Tensor>? best;
        TrainingResult result;
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), settings))
        {
            result = trainer.Train();
            best = trainer.TakeBestState();
            Assert.Null(trainer.TakeBestState());                                  // handed over once
        }
        Assert.NotNull(best);
        try
        {
            Assert.Equal([20L, 40, 60, 64], seen.Keys);                            // epochs 5, 10, 15 and the end (16)
            Assert.Equal(10, result.BestEpoch);                                     // score 3; NaN is never the best
            Assert.Equal(40, result.BestStep);
            Assert.Equal(3.0, result.BestScore);
            var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
            Assert.Subset(best.Keys.ToHashSet(), trainable.ToHashSet());
            AssertEqual(seen[40], best, best.Keys);
            // The last weights differ from the best ones (training went on).
            Assert.Contains(trainable, k => !seen[64][k].eq(best[k]).all().item<bool>());

            var file = Path.Combine(dir.Path, TrainerValidation.BestFolderName, TrainerValidation.BestFileName);
            var onDisk = SafeTensors.Load(file, out var metadata);
            try
            {
                Assert.Equal("10", metadata["epoch"]);
                Assert.Equal("40", metadata["step"]);
                AssertEqual(seen[40], onDisk, seen[40].Keys);                       // the whole model, as at step 40
            }
            finally { foreach (var t in onDisk.Values) t.Dispose(); }
        }
        finally
        {
            foreach (var t in best.Values) t.Dispose();
            foreach (var s in seen.Values) foreach (var t in s.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]    // two forward passes per step, each updating the BatchNorm statistics
    public void SkipStepSkipsNonFiniteStepsAndCountsThem(int accumulation)
    {
        using var model = new TinyMultiTaskNet(seed: 5);
        Dictionary<string, Tensor>? atStep3 = null;
        var settings = Settings(epochs: 10, maxSteps: 6) with
        {
            AccumulationSteps = accumulation,
            NonFiniteLoss = NonFiniteLossPolicy.SkipStep,
            ProgressEverySteps = 1,
            Progress = new Progress(r =>
            {
                if (r.Step != 3) return;
                atStep3 = model.Snapshot();
                model.PoisonNormals = true;                                         // steps 3, 4 and 5 give NaN
            }),
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var result = trainer.Train();
        Assert.Equal(6, result.GlobalStep);                                         // the schedule went on
        Assert.Equal(3, result.SkippedSteps);
        Assert.NotNull(atStep3);
        var now = model.Snapshot();
        // The skipped steps left the network exactly as it was: no parameter moved, and the BatchNorm running statistics that
        // their forward passes updated (PyTorch keeps those) are back to their values before them, bit for bit.
        Assert.Contains(model.named_buffers(), b => b.name.EndsWith("running_mean", StringComparison.Ordinal));
        Assert.Equal(atStep3!.Keys, now.Keys);
        AssertEqual(atStep3!, now, atStep3!.Keys);
        foreach (var t in atStep3!.Values.Concat(now.Values)) t.Dispose();
    }

    [Fact]
    public void StopLeavesTheLastGoodCheckpoint()
    {
        using var dir = Fixture.TempDir();
        using var model = new TinyMultiTaskNet(seed: 5);
        Dictionary<string, Tensor>? atStep3 = null;
        var settings = Settings(epochs: 10, maxSteps: 6) with
        {
            CheckpointDirectory = dir.Path,
            ProgressEverySteps = 1,
            Progress = new Progress(r =>
            {
                if (r.Step != 3) return;
                atStep3 = model.Snapshot();
                model.PoisonNormals = true;
            }),
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var e = Assert.Throws<NonFiniteLossException>(() => trainer.Train());
        Assert.Equal(3, e.Step);
        var folder = Assert.Single(TrainingCheckpoint.List(dir.Path));
        Assert.Equal(3, TrainingCheckpoint.ReadManifest(folder).GlobalStep);
        var saved = SafeTensors.Load(Path.Combine(folder, TrainingCheckpoint.ModelFileName));
        // The checkpoint and the network are those before the failed step, BatchNorm running statistics included.
        AssertEqual(atStep3!, saved, atStep3!.Keys);
        var now = model.Snapshot();
        AssertEqual(atStep3!, now, atStep3!.Keys);
        foreach (var t in atStep3!.Values.Concat(saved.Values).Concat(now.Values)) t.Dispose();
    }
}
