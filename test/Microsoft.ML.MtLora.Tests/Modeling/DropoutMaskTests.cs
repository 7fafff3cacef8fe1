using Microsoft.ML.MtLora.Modeling.Adapters;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>The CPU dropout masks of the LoRA inputs (<see cref="DropoutMask"/>).</summary>
[Collection(SerialCollection.Name)]
public class DropoutMaskTests
{
    [Fact]
    public void DropsWithTheProbabilityAndScalesTheRest()
    {
        manual_seed(3);
        using var mask = DropoutMask.Cpu([1000, 1001], 0.05, ScalarType.Float32);   // an odd count: the vector loop's tail too
        Assert.Equal(new long[] { 1000, 1001 }, mask.shape);
        using var dropped = mask.eq(TorchScalars.ZeroF);
        using var keep = ((float)(1.0 / 0.95)).ToScalar();
        using var kept = mask.eq(keep);
        Assert.True(dropped.logical_or(kept).all().item<bool>());                     // only 0 and 1/(1 − p)
        double share = dropped.to(ScalarType.Float64).mean().item<double>();
        Assert.InRange(share, 0.049, 0.051);                                          // 1,001,000 draws: σ = 0.0002
    }

    [Fact]
    public void FollowsTorchsSeed()
    {
        Tensor Draw(long seed)
        {
            manual_seed(seed);
            return DropoutMask.Cpu([64, 37], 0.3, ScalarType.Float32);
        }
        using var a = Draw(5);
        using var b = Draw(5);
        using var c = Draw(6);
        Assert.True(a.eq(b).all().item<bool>());
        Assert.False(a.eq(c).all().item<bool>());
    }

    [Fact]
    public void TheTailContinuesTheSameStream()
    {
        var whole = new float[24];
        var part = new float[13];
        DropoutMask.Fill(whole, seed: 42, threshold: uint.MaxValue / 2, keep: 2f);
        DropoutMask.Fill(part, seed: 42, threshold: uint.MaxValue / 2, keep: 2f);
        Assert.Equal(whole[..13], part);
        Assert.Contains(0f, whole);
        Assert.Contains(2f, whole);
    }

    [Fact]
    public void ZeroProbabilityKeepsEverything()
    {
        manual_seed(1);
        using var mask = DropoutMask.Cpu([3, 5], 0, ScalarType.Float32);
        Assert.True(mask.eq(TorchScalars.OneF).all().item<bool>());
    }
}
