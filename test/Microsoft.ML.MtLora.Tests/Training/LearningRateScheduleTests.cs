using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Training;

public class LearningRateScheduleTests
{
    // The reference run: batch 32, 156 iterations per epoch, 300 epochs, 20 of warmup (reference-spec §6).
    private static readonly LearningRateSchedule Reference = LearningRateSchedule.Reference(batchSize: 32, stepsPerEpoch: 156);

    [Fact]
    public void ReferenceRecipeScalesRatesWithBatchSize()
    {
        Assert.Equal(3.125e-5, Reference.BaseRate, 1e-15);
        Assert.Equal(3.125e-8, Reference.WarmupRate, 1e-18);
        Assert.Equal(3.125e-7, Reference.MinRate, 1e-17);
        Assert.Equal(3120, Reference.WarmupSteps);
        Assert.Equal(46800, Reference.TotalSteps);
    }

    [Theory]
    [InlineData(0, 3.125e-8)]
    [InlineData(1, 3.125e-8 + (3.125e-5 - 3.125e-8) / 3120)]
    [InlineData(1560, 3.125e-8 + 1560 * ((3.125e-5 - 3.125e-8) / 3120))]
    [InlineData(3119, 3.125e-8 + 3119 * ((3.125e-5 - 3.125e-8) / 3120))]
    [InlineData(3120, 3.125e-5)]
    [InlineData(3120 + 21840, (3.125e-5 + 3.125e-7) / 2)]          // half-way through the cosine
    [InlineData(46800, 3.125e-7)]
    [InlineData(100000, 3.125e-7)]
    public void MatchesTimmCosineWithWarmupPrefix(long t, double expected)
    {
        Assert.Equal(expected, Reference.At(t), 1e-15);
    }

    [Fact]
    public void CosineFollowsTheFormulaBetweenItsEnds()
    {
        foreach (long tau in new long[] { 1, 1000, 10920, 32760, 43679 })
        {
            double expected = 3.125e-7 + 0.5 * (3.125e-5 - 3.125e-7) * (1 + Math.Cos(Math.PI * tau / 43680));
            Assert.Equal(expected, Reference.At(3120 + tau), 1e-15);
        }
        Assert.True(Reference.At(46799) > Reference.MinRate);
    }

    [Fact]
    public void StepUsesTheRateOfThePreviousIteration()
    {
        // step_update(t) runs after step t: step 0 keeps the initial warmup rate, step k runs with lr(k - 1).
        Assert.Equal(Reference.At(0), Reference.ForStep(0));
        Assert.Equal(Reference.At(0), Reference.ForStep(1));
        Assert.Equal(Reference.At(3119), Reference.ForStep(3120));
        Assert.Equal(Reference.At(3120), Reference.ForStep(3121));
    }

    [Fact]
    public void RejectsInconsistentArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(1e-3, 0, 0, warmupSteps: 10, totalSteps: 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(double.NaN, 0, 0, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => Reference.At(-1));
        var noWarmup = new LearningRateSchedule(1e-3, 0, 1e-5, warmupSteps: 0, totalSteps: 100);
        Assert.Equal(1e-3, noWarmup.At(0), 1e-15);
    }
}
