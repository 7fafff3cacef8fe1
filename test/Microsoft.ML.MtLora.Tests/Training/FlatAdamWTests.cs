using Microsoft.ML.MtLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>The library's AdamW against TorchSharp's (<c>torch.optim.AdamW</c>, PyTorch's algorithm), which it replaces.</summary>
[Collection(SerialCollection.Name)]
public class FlatAdamWTests
{
    /// <summary>Named parameters in two groups' worth: 2-D and 0-D (decayed), 1-D and *.bias (not).</summary>
    private static List<(string Name, Parameter Parameter)> MakeParameters(long seed)
    {
        using var g = new Generator((ulong)seed);
        return
        [
            ("a.weight", new Parameter(randn([5, 3], generator: g))),
            ("a.bias", new Parameter(randn([5], generator: g))),
            ("norm.weight", new Parameter(randn([7], generator: g))),
            ("table", new Parameter(randn([4, 2, 3], generator: g))),
            ("scale", new Parameter(randn([], generator: g))),
            ("b.weight", new Parameter(randn([2, 6], generator: g))),
        ];
    }

    [Fact]
    public void StepsEqualTorchSharpAdamWIncludingSkippedParametersAndChangingRates()
    {
        var ours = MakeParameters(1);
        var theirs = MakeParameters(1);
        using var flat = OptimizerFactory.CreateAdamW(ours, weightDecay: 0.05, beta1: 0.85, beta2: 0.99, epsilon: 1e-6);
        var (decayed, notDecayed) = OptimizerFactory.Group(theirs);
        using var reference = torch.optim.AdamW(
        [
            new AdamW.ParamGroup(decayed.Select(p => p.Parameter), 0.01, 0.85, 0.99, 1e-6, 0.05),
            new AdamW.ParamGroup(notDecayed.Select(p => p.Parameter), 0.01, 0.85, 0.99, 1e-6, 0.0),
        ]);
        using var g = new Generator(2);
        for (int step = 0; step < 6; step++)
        {
            double lr = 0.01 * (1 + step);
            foreach (var group in reference.ParamGroups) group.LearningRate = lr;
            flat.ZeroGrad();
            for (int i = 0; i < ours.Count; i++)
            {
                // "b.weight" gets no gradient (None) in steps 2 and 3: both optimizers must leave it alone, and its own
                // step count (bias correction) then lags behind the others'.
                theirs[i].Parameter.grad = null;
                if (ours[i].Name == "b.weight" && step is 2 or 3) continue;
                var grad = randn(ours[i].Parameter.shape, generator: g);
                ours[i].Parameter.grad = grad.clone();
                theirs[i].Parameter.grad = grad;
            }
            flat.CollectGradients();
            flat.Step(lr);
            reference.step();
        }
        for (int i = 0; i < ours.Count; i++)
        {
            float diff = (ours[i].Parameter - theirs[i].Parameter).abs().max().item<float>();
            Assert.True(diff < 1e-5f, $"'{ours[i].Name}' differs by {diff}");
        }
        Assert.Equal(4, flat.Parameters.Single(p => p.Name == "b.weight").Step);
        Assert.Equal(6, flat.Parameters.Single(p => p.Name == "a.weight").Step);
    }

    [Fact]
    public void ParametersLiveInTheOptimizersBufferAndKeepTheirValues()
    {
        var parameters = MakeParameters(3);
        var before = parameters.Select(p => p.Parameter.detach().clone()).ToList();
        using var flat = OptimizerFactory.CreateAdamW(parameters, weightDecay: 0.05);
        for (int i = 0; i < parameters.Count; i++)
        {
            Assert.True(parameters[i].Parameter.eq(before[i]).all().item<bool>());
            Assert.Equal(before[i].shape, parameters[i].Parameter.shape);
        }
        // The master of a float32 parameter is the parameter itself: an update through one shows in the other.
        var first = flat.Parameters.First();
        using (no_grad()) first.Master.add_(TorchScalars.OneF);
        Assert.True(first.Parameter.eq(before[parameters.FindIndex(p => p.Name == first.Name)] + 1).all().item<bool>());
    }

    [Fact]
    public void ClippingMatchesClipGradNorm()
    {
        var ours = MakeParameters(4);
        var theirs = MakeParameters(4);
        using var flat = OptimizerFactory.CreateAdamW(ours, weightDecay: 0);
        using var g = new Generator(5);
        for (int i = 0; i < ours.Count; i++)
        {
            var grad = randn(ours[i].Parameter.shape, generator: g).mul(TorchScalars.IgnoreF);   // large: clipping bites
            ours[i].Parameter.grad = grad.clone();
            theirs[i].Parameter.grad = grad;
        }
        flat.CollectGradients();
        using var norm = flat.ClipGradientNorm(1.5)!;
        double expected = torch.nn.utils.clip_grad_norm_(theirs.Select(p => p.Parameter), 1.5);
        Assert.Equal(expected, norm.item<float>(), expected * 1e-5);
        for (int i = 0; i < ours.Count; i++)
        {
            using var clipped = flat.GradientOf(ours[i].Name)!;
            float diff = (clipped - theirs[i].Parameter.grad!).abs().max().item<float>();
            Assert.True(diff < 1e-4f, $"'{ours[i].Name}': clipped gradients differ by {diff}");
        }
    }
}
