using Microsoft.ML.MtLora.Modeling.Swin;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class WindowOpsTests
{
    [Fact]
    public void PartitionAndReverseAreInverse()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 8, 8, 3);
        var w = WindowOps.Partition(x, 4);
        Assert.Equal(new long[] { 8, 16, 3 }, w.shape);
        // Window 1 of image 0 is rows 0..3, columns 4..7; its first token is (0, 4).
        Assert.True(w[1, 0].eq(x[0, 0, 4]).all().item<bool>());
        Assert.True(WindowOps.Reverse(w, 4, 8, 8).eq(x).all().item<bool>());
    }

    [Fact]
    public void DropPathDropsWholeSamplesAndRescales()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var x = ones(4000, 3, 2);
        var y = WindowOps.AddDropPath(zeros(4000, 3, 2), x, 0.25, training: true);
        var perSample = y.amax(new long[] { 1, 2 });
        Assert.True(y.amin(new long[] { 1, 2 }).eq(perSample).all().item<bool>()); // constant within a sample
        var kept = perSample.gt(0).to(float32).mean().item<float>();
        Assert.InRange(kept, 0.72f, 0.78f);
        Assert.True(perSample.masked_select(perSample.gt(0)).sub(1 / 0.75f).abs().max().item<float>() < 1e-5f);
        var residual = arange(4000 * 3 * 2, float32).view(4000, 3, 2);
        Assert.True(WindowOps.AddDropPath(residual, x, 0.25, training: false).eq(residual + x).all().item<bool>());
    }
}
