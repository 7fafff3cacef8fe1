using Microsoft.ML.MtLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

[Collection(SerialCollection.Name)]
public class OptimizerFactoryTests
{
    [Theory]
    [InlineData("backbone.layers.0.blocks.0.attn.relative_position_bias_table", new long[] { 169, 3 }, true)]
    [InlineData("backbone.layers.0.blocks.0.attn.qkv.lora_shared_A", new long[] { 64, 96 }, true)]
    [InlineData("backbone.patch_embed.proj.weight", new long[] { 96, 3, 4, 4 }, true)]
    [InlineData("backbone.patch_embed.proj.bias", new long[] { 96 }, false)]
    [InlineData("backbone.layers.0.blocks.0.norm1.weight", new long[] { 96 }, false)]
    [InlineData("decoders.semseg.last_layer.1.weight", new long[] { 270 }, false)]
    [InlineData("some.2d.bias", new long[] { 4, 4 }, false)]
    [InlineData("scalar", new long[0], true)]
    public void DecaysLikeTheReference(string name, long[] shape, bool decayed)
    {
        using var t = torch.zeros(shape);
        Assert.Equal(decayed, OptimizerFactory.IsDecayed(name, t));
    }

    [Fact]
    public void AdamWStepMatchesTheFormulaInBothGroups()
    {
        using var scope = torch.NewDisposeScope();
        var w = new Parameter(torch.tensor(new[] { 1f, -2f, 3f, 0.5f }).reshape(2, 2));   // decayed
        var b = new Parameter(torch.tensor(new[] { 0.25f, -1f }));                          // not decayed
        using var opt = OptimizerFactory.CreateAdamW([("layer.weight", w), ("layer.bias", b)], weightDecay: 0.05);
        Assert.Equal(["layer.weight", "layer.bias"], opt.Parameters.Select(o => o.Name));

        w.grad = torch.tensor(new[] { 0.5f, -1f, 2f, 0f }).reshape(2, 2);
        b.grad = torch.tensor(new[] { 3f, -0.1f });
        opt.CollectGradients();
        opt.Step(learningRate: 0.1);

        // First step: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + eps).
        static float[] Expected(float[] p, float[] g, double lr, double wd) =>
            p.Select((v, i) => (float)(v * (1 - lr * wd) - lr * g[i] / (Math.Abs(g[i]) + 1e-8))).ToArray();
        var ew = Expected([1f, -2f, 3f, 0.5f], [0.5f, -1f, 2f, 0f], 0.1, 0.05);
        var eb = Expected([0.25f, -1f], [3f, -0.1f], 0.1, 0);
        Assert.Equal(ew, w.detach().flatten().data<float>().ToArray(), (x, y) => Math.Abs(x - y) < 1e-6f);
        Assert.Equal(eb, b.detach().flatten().data<float>().ToArray(), (x, y) => Math.Abs(x - y) < 1e-6f);
        Assert.True(opt.Parameters.All(o => o.Step == 1));
    }

    [Fact]
    public void OnlyTrainableParametersAreOptimized()
    {
        using var lin = torch.nn.Linear(3, 2);
        lin.weight!.requires_grad = false;
        Assert.Equal(["bias"], OptimizerFactory.TrainableParameters(lin).Select(p => p.Name));
        lin.bias!.requires_grad = false;
        Assert.Throws<ArgumentException>(() => OptimizerFactory.CreateAdamW(OptimizerFactory.TrainableParameters(lin), 0.05));
    }
}
