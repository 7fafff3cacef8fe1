using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Tasks;

[Collection(SerialCollection.Name)]
public class DescriptorLossesTests
{
    [Fact]
    public void DepthL1AveragesOverThePixelsThatAreNot255()
    {
        using var scope = torch.NewDisposeScope();
        // By hand: |1 − 1.5| + |3 − 2| + |4 − 4| = 1.5 over the 3 valid pixels (the 255 one is skipped) = 0.5,
        // as mtl_loss_schemes.py::DepthLoss: L1Loss(masked_select(out, label != 255), masked_select(label, ...)).
        var prediction = torch.tensor(new[] { 1f, 2f, 3f, 4f }).reshape(1, 1, 2, 2);
        var target = torch.tensor(new[] { 1.5f, 255f, 2f, 4f }).reshape(1, 1, 2, 2);
        Assert.Equal(0.5, TaskLosses.DepthL1(prediction, target, 255f).item<float>(), 1e-6);
        // No valid pixel: 0 (the reference's mean of nothing would be NaN).
        var none = torch.full(new long[] { 1, 1, 2, 2 }, 255f);
        Assert.Equal(0f, TaskLosses.DepthL1(prediction, none, 255f).item<float>());
    }

    [Fact]
    public void EdgeLossUsesTheFixedPositiveWeight()
    {
        using var scope = torch.NewDisposeScope();
        // Logits (0, 2, −1, 3), labels (1, 0, 0, 1). Expected value computed offline with Python's math module:
        // ℓ = log1p(exp(−x)) for y = 1, log1p(exp(x)) for y = 0; (0.95·Σ_pos ℓ + 0.05·Σ_neg ℓ) / 4 = 0.20666432261376566
        // (BalancedCrossEntropyLoss(size_average=True, pos_weight=0.95)).
        var logits = torch.tensor(new[] { 0f, 2f, -1f, 3f }).reshape(1, 1, 2, 2);
        var labels = torch.tensor(new[] { 1f, 0f, 0f, 1f }).reshape(1, 1, 2, 2);
        Assert.Equal(0.20666432261376566, TaskLosses.BalancedBinaryCrossEntropy(logits, labels, 0.95f).item<float>(), 1e-6);
    }

    [Fact]
    public void ComputeChoosesTheLossByKindAndTheWeightByDescriptor()
    {
        using var scope = torch.NewDisposeScope();
        var defects = DenseTaskDescriptor.Segmentation("defects", classes: 3, lossWeight: 2f);
        var range = DenseTaskDescriptor.Depth("range", lossWeight: 0.5f, ignoreValue: 0f);
        var edges = DenseTaskDescriptor.NyudEdge;
        // defects: logits (0, ln 3, 0) at one pixel, label 1 → −ln(3/5); the other pixel is ignored (255).
        var outputs = new Dictionary<string, Tensor>
        {
            ["defects"] = torch.tensor(new[] { 0f, 9f, MathF.Log(3f), 9f, 0f, 9f }).reshape(1, 3, 1, 2),
            ["range"] = torch.tensor(new[] { 2f, 7f }).reshape(1, 1, 1, 2),
            ["edge"] = torch.tensor(new[] { 0f, 0f }).reshape(1, 1, 1, 2),
        };
        var targets = new Dictionary<string, Tensor>
        {
            ["defects"] = torch.tensor(new[] { 1f, 255f }).reshape(1, 1, 1, 2),
            ["range"] = torch.tensor(new[] { 3f, 0f }).reshape(1, 1, 1, 2),       // ignore value 0: only |2 − 3| counts
            ["edge"] = torch.tensor(new[] { 1f, 0f }).reshape(1, 1, 1, 2),         // ln 2 each: (0.95 + 0.05)·ln 2 / 2
        };
        using var r = TaskLosses.Compute(outputs, targets, null, [defects, range, edges]);
        Assert.Equal(-Math.Log(0.6), r.PerTask["defects"].item<float>(), 1e-6);
        Assert.Equal(1.0, r.PerTask["range"].item<float>(), 1e-6);
        Assert.Equal(Math.Log(2) / 2, r.PerTask["edge"].item<float>(), 1e-6);
        Assert.Equal(2f, r.Weights["defects"]);
        Assert.Equal(0.5f, r.Weights["range"]);
        Assert.Equal(50f, r.Weights["edge"]);
        Assert.Equal(2 * -Math.Log(0.6) + 0.5 + 50 * Math.Log(2) / 2, r.Total.item<float>(), 1e-4);

        // A class id ≥ K that is not the ignore label, and an output of a task not in the list: errors naming the task.
        targets["defects"] = torch.tensor(new[] { 3f, 255f }).reshape(1, 1, 1, 2);
        Assert.Contains("'defects'", Assert.Throws<ArgumentException>(() => TaskLosses.Compute(outputs, targets, null, [defects, range, edges])).Message);
        targets["defects"] = torch.tensor(new[] { 1f, 255f }).reshape(1, 1, 1, 2);
        Assert.Contains("'edge'", Assert.Throws<ArgumentException>(() => TaskLosses.Compute(outputs, targets, null, [defects, range])).Message);
    }
}
