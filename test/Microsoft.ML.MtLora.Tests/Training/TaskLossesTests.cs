using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

[Collection(SerialCollection.Name)]
public class TaskLossesTests
{
    private static readonly string[] TaskNames = ["semseg", "human_parts", "sal", "normals"];

    [Fact]
    public void MatchesReferenceLossesOnTiny4Fixture()
    {
        var io = SafeTensors.Load(Fixture.Path("tiny4", "io.safetensors"));
        try
        {
            using var meta = JsonDocument.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json")));
            var expected = meta.RootElement.GetProperty("task_losses");
            var outputs = TaskNames.ToDictionary(t => t, t => io["out." + t]);
            var targets = TaskNames.ToDictionary(t => t, t => io["target." + t]);

            using var result = TaskLosses.Compute(outputs, targets);

            foreach (var t in TaskNames)
                Assert.Equal(expected.GetProperty(t).GetDouble(), result.PerTask[t].item<float>(), 1e-5);
            Assert.Equal(expected.GetProperty("total").GetDouble(), result.Total.item<float>(), 1e-5);
            Assert.Empty(result.TasksWithoutLabels);
            Assert.Equal(new[] { 1f, 2f, 5f, 10f }, TaskNames.Select(t => result.Weights[t]));
        }
        finally { foreach (var t in io.Values) t.Dispose(); }
    }

    [Fact]
    public void ClassificationLossIgnoresLabel255AndAveragesOverValidPixels()
    {
        using var scope = torch.NewDisposeScope();
        // Two pixels: logits (0, ln 3) with label 1 -> p = 3/4; the second pixel is ignored whatever its logits.
        var logits = torch.tensor(new[] { 0f, 50f, MathF.Log(3f), -50f }).reshape(1, 2, 1, 2);
        var target = torch.tensor(new[] { 1f, 255f }).reshape(1, 1, 1, 2);
        var loss = TaskLosses.ClassificationLoss(logits, target, validPixels: 1);
        Assert.Equal(-Math.Log(0.75), loss.item<float>(), 1e-6);
        // Counted on the device instead of given by the host: the same mean.
        Assert.Equal(-Math.Log(0.75), TaskLosses.ClassificationLoss(logits, target, validPixels: null).item<float>(), 1e-6);

        // A second valid pixel with label 0 and logits (0, 0): mean of -ln(3/4) and -ln(1/2).
        var logits2 = torch.tensor(new[] { 0f, 0f, MathF.Log(3f), 0f }).reshape(1, 2, 1, 2);
        var target2 = torch.tensor(new[] { 1f, 0f }).reshape(1, 1, 1, 2);
        var loss2 = TaskLosses.ClassificationLoss(logits2, target2, validPixels: 2);
        Assert.Equal((-Math.Log(0.75) - Math.Log(0.5)) / 2, loss2.item<float>(), 1e-6);
    }

    [Fact]
    public void AllIgnoredClassificationBatchGivesZeroWithoutGradientAndIsFlagged()
    {
        using var scope = torch.NewDisposeScope();
        var parts = torch.randn(2, 7, 4, 4).requires_grad_(true);
        var sal = torch.randn(2, 1, 4, 4).requires_grad_(true);
        var outputs = new Dictionary<string, Tensor> { ["human_parts"] = parts, ["sal"] = sal };
        var targets = new Dictionary<string, Tensor>
        {
            ["human_parts"] = torch.full(new long[] { 2, 1, 4, 4 }, 255f),
            ["sal"] = torch.randint(0, 2, new long[] { 2, 1, 4, 4 }).to(ScalarType.Float32),
        };
        using var result = TaskLosses.Compute(outputs, targets);
        Assert.Equal(new[] { "human_parts" }, result.TasksWithoutLabels);
        Assert.Equal(0f, result.PerTask["human_parts"].item<float>());
        Assert.False(result.PerTask["human_parts"].requires_grad);
        Assert.True(float.IsFinite(result.Total.item<float>()));
        Assert.Equal(5f * result.PerTask["sal"].item<float>(), result.Total.item<float>(), 1e-6f);
        result.Total.backward();
        Assert.True(parts.grad is null);   // the flagged task contributes no gradient at all
        Assert.NotNull(sal.grad);
    }

    [Fact]
    public void BalancedCrossEntropyWeighsPositivesByShareOfNegatives()
    {
        using var scope = torch.NewDisposeScope();
        // Labels (1, 0, 0), logits (0, 2, -1): w = 2/3.
        var logits = torch.tensor(new[] { 0f, 2f, -1f }).reshape(1, 1, 1, 3);
        var target = torch.tensor(new[] { 1f, 0f, 0f }).reshape(1, 1, 1, 3);
        double pos = Math.Log(2);
        double neg = Math.Log(1 + Math.Exp(2)) + Math.Log(1 + Math.Exp(-1));
        double expected = (2.0 / 3 * pos + 1.0 / 3 * neg) / 3;
        Assert.Equal(expected, TaskLosses.BalancedBinaryCrossEntropy(logits, target).item<float>(), 1e-6);

        // Targets in [0, 1] are thresholded at 0.5; large logits stay finite (stable form).
        var big = torch.tensor(new[] { 200f, -200f }).reshape(1, 1, 1, 2);
        var soft = torch.tensor(new[] { 0.4f, 0.6f }).reshape(1, 1, 1, 2);   // -> labels (0, 1): both wrong by 200
        // w = 1/2; each pixel loses 200: (0.5·200 + 0.5·200) / 2 = 100.
        Assert.Equal(100.0, TaskLosses.BalancedBinaryCrossEntropy(big, soft).item<float>(), 1e-3);
    }

    [Fact]
    public void NormalsLossNormalisesPredictionAndCountsValidElements()
    {
        using var scope = torch.NewDisposeScope();
        // Pixel 0: prediction (3, 0, 4) -> (0.6, 0, 0.8) vs label (0, 0, 1): L1 = 0.6 + 0 + 0.2 = 0.8 over 3 elements.
        // Pixel 1: label all 255, ignored.
        var pred = torch.tensor(new[] { 3f, 1f, 0f, 1f, 4f, 1f }).reshape(1, 3, 1, 2);
        var label = torch.tensor(new[] { 0f, 255f, 0f, 255f, 1f, 255f }).reshape(1, 3, 1, 2);
        Assert.Equal(0.8 / 3, TaskLosses.NormalsL1(pred, label).item<float>(), 1e-6);

        // Element-wise mask: only channel 0 ignored -> 0 + 0.2 over 2 elements.
        var label2 = torch.tensor(new[] { 255f, 255f, 0f, 255f, 1f, 255f }).reshape(1, 3, 1, 2);
        Assert.Equal(0.2 / 2, TaskLosses.NormalsL1(pred, label2).item<float>(), 1e-6);

        // All ignored: 0 / max(0, 1e-6) = 0, as the reference.
        var none = torch.full(new long[] { 1, 3, 1, 2 }, 255f);
        Assert.Equal(0f, TaskLosses.NormalsL1(pred, none).item<float>());
    }

    [Fact]
    public void UserWeightsOverrideDefaultsPerTask()
    {
        using var scope = torch.NewDisposeScope();
        var outputs = new Dictionary<string, Tensor>
        {
            ["semseg"] = torch.randn(1, 21, 3, 3),
            ["normals"] = torch.randn(1, 3, 3, 3),
        };
        var targets = new Dictionary<string, Tensor>
        {
            ["semseg"] = torch.randint(0, 21, new long[] { 1, 1, 3, 3 }).to(ScalarType.Float32),
            ["normals"] = torch.nn.functional.normalize(torch.randn(1, 3, 3, 3), dim: 1),
        };
        using var r = TaskLosses.Compute(outputs, targets, new Dictionary<string, float> { ["semseg"] = 0.5f });
        Assert.Equal(0.5f, r.Weights["semseg"]);
        Assert.Equal(10f, r.Weights["normals"]);
        double expected = 0.5 * r.PerTask["semseg"].item<float>() + 10 * r.PerTask["normals"].item<float>();
        Assert.Equal(expected, r.Total.item<float>(), 1e-5);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        using var scope = torch.NewDisposeScope();
        var seg = torch.randn(1, 21, 2, 2);
        var ex = Assert.Throws<ArgumentException>(() => TaskLosses.Compute(
            new Dictionary<string, Tensor> { ["semseg"] = seg },
            new Dictionary<string, Tensor> { ["semseg"] = torch.full(new long[] { 1, 1, 2, 2 }, 21f) }));
        Assert.Contains("'semseg'", ex.Message);
        Assert.Contains("0..20", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => TaskLosses.Compute(
            new Dictionary<string, Tensor> { ["semseg"] = seg }, new Dictionary<string, Tensor>()));
        Assert.Contains("No target", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => TaskLosses.Compute(
            new Dictionary<string, Tensor> { ["depth"] = seg }, new Dictionary<string, Tensor> { ["depth"] = seg }));
        Assert.Contains("'depth'", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => TaskLosses.Compute(
            new Dictionary<string, Tensor> { ["semseg"] = seg },
            new Dictionary<string, Tensor> { ["semseg"] = torch.zeros(1, 1, 3, 3) }));
        Assert.Contains("disagree", ex.Message);

        ex = Assert.Throws<ArgumentException>(() => TaskLosses.Compute(
            new Dictionary<string, Tensor> { ["semseg"] = seg },
            new Dictionary<string, Tensor> { ["semseg"] = torch.zeros(1, 1, 2, 2) },
            new Dictionary<string, float> { ["semseg"] = float.NaN }));
        Assert.Contains("semseg", ex.Message);
    }
}
