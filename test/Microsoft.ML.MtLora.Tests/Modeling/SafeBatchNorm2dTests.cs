using Microsoft.ML.MtLora.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>
/// <see cref="SafeBatchNorm2d"/> against TorchSharp's BatchNorm2d (banned in the library for its implicit Scalar, allowed here
/// as the oracle: the test project does not import eng/TorchScalarRule.targets): same state dict, outputs, gradients, running
/// statistics and batch count, step by step, in training and evaluation mode.
/// </summary>
[Collection(SerialCollection.Name)]
public class SafeBatchNorm2dTests
{
    private static readonly string[] StateNames = ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"];

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.3)]
    public void MatchesTorchSharpsBatchNorm2dInTrainingAndEvaluation(double momentum)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var theirs = nn.BatchNorm2d(3, eps: 1e-5, momentum: momentum);
        using var ours = new SafeBatchNorm2d(3, eps: 1e-5, momentum: momentum);
        AssertSameState(theirs, ours);
        using (no_grad())
        {
            // Non-trivial affine parameters in both.
            theirs.weight.copy_(rand(3).add_(TorchScalars.Half, TorchScalars.One));
            theirs.bias!.copy_(randn(3));
            ours.weight.copy_(theirs.weight);
            ours.bias!.copy_(theirs.bias);
        }

        for (int step = 1; step <= 3; step++)
        {
            using var s = step.ToScalar();
            var x = randn(4, 3, 5, 6).mul_(s).add_(s, TorchScalars.One);                                    // shifting statistics
            var a = x.clone().requires_grad_();
            var b = x.clone().requires_grad_();
            var ya = theirs.call(a);
            var yb = ours.call(b);
            Assert.True(Same(ya, yb), $"training output, step {step}");
            var g = randn(4, 3, 5, 6);
            ya.backward([g]);
            yb.backward([g]);
            Assert.True(Same(a.grad!, b.grad!), $"input gradient, step {step}");
            Assert.True(Same(theirs.weight.grad!, ours.weight.grad!), $"weight gradient, step {step}");
            Assert.True(Same(theirs.bias!.grad!, ours.bias!.grad!), $"bias gradient, step {step}");
            AssertSameState(theirs, ours);
            Assert.Equal(step, ours.num_batches_tracked!.item<long>());
        }

        theirs.eval();
        ours.eval();
        using var before = ours.running_mean!.clone();
        var xe = randn(2, 3, 4, 4);
        Assert.True(Same(theirs.call(xe), ours.call(xe)), "evaluation output");
        AssertSameState(theirs, ours);
        Assert.Equal(3, ours.num_batches_tracked!.item<long>());
        Assert.True(Same(ours.running_mean!, before), "evaluation leaves the running statistics alone");
    }

    [Fact]
    public void UpdatesTheRunningStatisticsWithMomentum()
    {
        // PyTorch's rule, computed here from the batch: mean ← 0.9·0 + 0.1·μ_B, var ← 0.9·1 + 0.1·σ²_B (unbiased).
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var norm = new SafeBatchNorm2d(2);
        var x = randn(3, 2, 4, 5);
        var y = norm.call(x);
        var perChannel = x.transpose(0, 1).reshape(2, -1).to(ScalarType.Float64);                          // (C, N·H·W)
        var mean = perChannel.mean([1L]).data<double>().ToArray();
        var variance = perChannel.var(1, unbiased: true).data<double>().ToArray();
        var runningMean = norm.running_mean!.data<float>().ToArray();
        var runningVar = norm.running_var!.data<float>().ToArray();
        for (int c = 0; c < 2; c++)
        {
            Assert.Equal(0.1 * mean[c], runningMean[c], 1e-6);
            Assert.Equal(0.9 + 0.1 * variance[c], runningVar[c], 1e-6);
        }
        // The output has zero mean and unit (biased) variance per channel (γ = 1, β = 0).
        var outChannels = y.transpose(0, 1).reshape(2, -1).to(ScalarType.Float64);
        foreach (var m in outChannels.mean([1L]).data<double>().ToArray()) Assert.Equal(0, m, 1e-6);
        foreach (var v in outChannels.var(1, unbiased: false).data<double>().ToArray()) Assert.Equal(1, v, 1e-4);
    }

    [Fact]
    public void LoadsTorchSharpsStateDictAndRejectsOtherRanks()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var theirs = nn.BatchNorm2d(4);
        for (int i = 0; i < 2; i++) theirs.call(randn(2, 4, 3, 3));
        using var ours = new SafeBatchNorm2d(4);
        ours.load_state_dict(theirs.state_dict());
        AssertSameState(theirs, ours);
        Assert.Equal(2, ours.num_batches_tracked!.item<long>());

        var error = Assert.Throws<ArgumentException>(() => ours.call(randn(2, 4, 3)));
        Assert.Contains("4D", error.Message, StringComparison.Ordinal);
        // Normalize takes any (N, C, *) input: the channels-last decoder head normalises a (pixels, C) matrix.
        ours.eval();
        theirs.eval();
        var nchw = randn(2, 4, 3, 3);
        var rows = nchw.permute(0, 2, 3, 1).reshape(-1, 4);                                                  // (N·H·W, C)
        var expected = theirs.call(nchw).permute(0, 2, 3, 1).reshape(-1, 4);
        Assert.True(ours.Normalize(rows).allclose(expected, rtol: 0, atol: 1e-6));
    }

    /// <summary>Same shape and the same values, element for element.</summary>
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static void AssertSameState(nn.Module theirs, nn.Module ours)
    {
        var a = theirs.state_dict();
        var b = ours.state_dict();
        Assert.Equal(StateNames, a.Keys.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(StateNames, b.Keys.Order(StringComparer.Ordinal).ToArray());
        foreach (var name in StateNames)
        {
            Assert.Equal(a[name].dtype, b[name].dtype);
            Assert.True(Same(a[name], b[name]), name);
        }
    }
}
