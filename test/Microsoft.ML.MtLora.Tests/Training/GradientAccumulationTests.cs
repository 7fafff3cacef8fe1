using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// Gradient accumulation (<see cref="MultiTaskTrainerSettings.AccumulationSteps"/>, the reference's ACCUMULATION_STEPS):
/// k micro-batches of b images train exactly as one batch of k·b — same gradient, same clipping, same learning rate — when
/// every micro-batch has as many valid label pixels and the same share of salient pixels (each loss is a mean over its own
/// micro-batch, as in the reference) and no BatchNorm normalises with batch statistics (BatchNorm in training mode sees
/// each micro-batch alone, in the reference too).
/// </summary>
[Collection(SerialCollection.Name)]
public class GradientAccumulationTests
{
    /// <summary>Batches of fully labelled images: every class pixel valid, exactly half of each saliency map positive.</summary>
    private sealed class EvenlyLabelled(int batchSize, int batches = 3, int size = 8) : ITrainingBatchSource
    {
        public int BatchesPerEpoch => batches;

        public IEnumerable<TrainingBatch> GetBatches(int epoch, int skipBatches)
        {
            for (int b = skipBatches; b < batches; b++)
            {
                using var scope = torch.NewDisposeScope();
                using var g = new Generator((ulong)(1000 * epoch + b + 1));
                var n = batchSize;
                var images = randn([n, 3, size, size], generator: g);
                var semseg = randint(0, 21, [n, 1, size, size], generator: g).to(ScalarType.Float32);
                var parts = randint(0, 7, [n, 1, size, size], generator: g).to(ScalarType.Float32);
                // Half the pixels of every image salient, in a random arrangement.
                var ranks = rand([n, size * size], generator: g).argsort(1).argsort(1);               // a permutation per image
                using var half = (size * size / 2).ToScalar();
                var sal = ranks.lt(half).to(ScalarType.Float32).view(n, 1, size, size);
                var normals = nn.functional.normalize(randn([n, 3, size, size], generator: g), dim: 1);
                yield return new TrainingBatch(images.MoveToOuterDisposeScope(), new Dictionary<string, Tensor>
                {
                    ["semseg"] = semseg.MoveToOuterDisposeScope(),
                    ["human_parts"] = parts.MoveToOuterDisposeScope(),
                    ["sal"] = sal.MoveToOuterDisposeScope(),
                    ["normals"] = normals.MoveToOuterDisposeScope(),
                });
            }
        }
    }

    private static (Dictionary<string, Tensor> Weights, TrainingResult Result) Train(int accumulationSteps, bool batchNorm = false)
    {
        using var model = new TinyMultiTaskNet(seed: 31, dropout: 0, batchNorm: batchNorm);
        var settings = new MultiTaskTrainerSettings
        {
            Epochs = 2, WarmupEpochs = 1, MaxSteps = 4, Seed = 3, AccumulationSteps = accumulationSteps,
            // The reference's rates for the whole batch of 4 (main.py: BASE_LR × micro-batch / 512 × ACCUMULATION_STEPS).
            BaseLearningRate = LearningRateSchedule.ReferenceBaseRatePer512 * (4 / accumulationSteps) / 512 * accumulationSteps * 100,
            WarmupLearningRate = LearningRateSchedule.ReferenceWarmupRatePer512 * (4 / accumulationSteps) / 512 * accumulationSteps * 100,
            MinLearningRate = LearningRateSchedule.ReferenceMinRatePer512 * (4 / accumulationSteps) / 512 * accumulationSteps * 100,
            ClipGradientNorm = 0.5,   // binds: the accumulated gradient must be the batch's mean gradient, not k times it
            // The normals loss is invariant to the scale of the normals output, so the gradient of task_scale[3] is zero up
            // to rounding; with eps = 1e-8 AdamW's first step would turn that rounding noise into ±lr. A larger eps keeps
            // the comparison about the gradients.
            Epsilon = 1e-4,
        };
        using var trainer = new MultiTaskTrainer(model, new EvenlyLabelled(batchSize: 4), settings);
        var result = trainer.Train();
        return (model.Snapshot(), result);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void MicroBatchesTrainLikeTheWholeBatch(int accumulationSteps)
    {
        var (whole, wholeResult) = Train(1);
        var (micro, microResult) = Train(accumulationSteps);
        try
        {
            Assert.Equal(wholeResult.LastTotalLoss, microResult.LastTotalLoss, 1e-4);
            foreach (var (name, expected) in whole)
            {
                float diff = (expected - micro[name]).abs().max().item<float>();
                Assert.True(diff < 2e-5f, $"'{name}' differs by {diff} after accumulating {accumulationSteps} micro-batches");
            }
            // And the weights did move: the comparison is not between two untouched networks.
            using var fresh = new TinyMultiTaskNet(seed: 31, dropout: 0, batchNorm: false);
            using var initial = fresh.state_dict()["head_sal.weight"].detach().clone();
            Assert.True((initial - whole["head_sal.weight"]).abs().max().item<float>() > 1e-5f);
        }
        finally
        {
            foreach (var t in whole.Values) t.Dispose();
            foreach (var t in micro.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void AccumulatedGradientIsTheWholeBatchsMeanGradient(int accumulationSteps)
    {
        // AdamW hardly sees a gradient's scale, so the weights alone would not show a gradient k times too large: compare
        // the gradients the optimizer collected, unclipped, for one batch.
        Dictionary<string, Tensor> Gradients(int k)
        {
            using var model = new TinyMultiTaskNet(seed: 33, dropout: 0, batchNorm: false);
            var settings = new MultiTaskTrainerSettings { Epochs = 2, WarmupEpochs = 1, AccumulationSteps = k, ClipGradientNorm = null };
            var data = new EvenlyLabelled(batchSize: 4);
            using var trainer = new MultiTaskTrainer(model, data, settings);
            model.train();
            var batch = data.GetBatches(0, 0).First();
            try
            {
                using var scope = torch.NewDisposeScope();
                trainer.RunStep(batch);
                var gradients = new Dictionary<string, Tensor>();
                foreach (var p in trainer.Optimizer.Parameters)
                {
                    using var g = trainer.Optimizer.GradientOf(p.Name);   // null for the unused BatchNorm
                    if (g is not null) gradients[p.Name] = g.clone().MoveToOuterDisposeScope();
                }
                return gradients;
            }
            finally { batch.Dispose(); }
        }
        var whole = Gradients(1);
        var micro = Gradients(accumulationSteps);
        try
        {
            Assert.Equal(whole.Keys.Order(), micro.Keys.Order());
            Assert.Contains("head_semseg.weight", whole.Keys);
            foreach (var (name, g) in whole)
            {
                float scale = Math.Max(g.abs().max().item<float>(), 1e-6f);
                float diff = (g - micro[name]).abs().max().item<float>() / scale;
                Assert.True(diff < 1e-4f, $"the gradient of '{name}' differs by {diff} (relative) after {accumulationSteps} micro-batches");
            }
        }
        finally
        {
            foreach (var t in whole.Values) t.Dispose();
            foreach (var t in micro.Values) t.Dispose();
        }
    }

    [Fact]
    public void WithBatchNormTheMicroBatchStatisticsDiffer()
    {
        // What does not hold, stated as a test so that the statement stays true: BatchNorm in training mode normalises each
        // micro-batch with its own statistics (as in the reference), so the weights drift apart from the whole batch's.
        var (whole, _) = Train(1, batchNorm: true);
        var (micro, _) = Train(2, batchNorm: true);
        try { Assert.True((whole["norm.running_mean"] - micro["norm.running_mean"]).abs().max().item<float>() > 1e-4f); }
        finally
        {
            foreach (var t in whole.Values) t.Dispose();
            foreach (var t in micro.Values) t.Dispose();
        }
    }

    [Fact]
    public void BadAccumulationSettingsAreNamed()
    {
        var e1 = Assert.Throws<ArgumentOutOfRangeException>(() => new MultiTaskTrainerSettings { AccumulationSteps = 0 }.Validate());
        Assert.Contains("AccumulationSteps", e1.Message);
        using var model = new TinyMultiTaskNet(seed: 32);
        var settings = new MultiTaskTrainerSettings { Epochs = 2, WarmupEpochs = 1, MaxSteps = 1, AccumulationSteps = 3 };
        using var trainer = new MultiTaskTrainer(model, new EvenlyLabelled(batchSize: 4), settings);
        var e2 = Assert.Throws<InvalidDataException>(() => trainer.Train());
        Assert.Contains("AccumulationSteps = 3", e2.Message);
        Assert.Contains("4 images", e2.Message);
    }
}
