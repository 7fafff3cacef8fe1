using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public class DepthMeterTests
{
    [Fact]
    public void MatchesTheReferenceFormulaOnASmallArray()
    {
        // eval_depth.py::DepthMeter by hand: gt (2, 255, 1, 4), pred (1, 2, 0, 4). Valid: gt != 255 → 3 pixels. The 0
        // prediction is clamped to 1e-9. Σ(gt − pred)² = 1 + (1 − 1e-9)² + 0; Σ(ln gt − ln pred)² = ln²2 + ln²(1e-9) + 0.
        // Values computed offline with Python's math module: rmse 0.8164965805194777, log_rmse 11.971273950067141.
        var meter = new DepthMeter();
        meter.Update([1f, 2f, 0f, 4f], [2f, 255f, 1f, 4f]);
        var m = meter.GetMetrics();
        Assert.Equal(3, m.PixelCount);
        Assert.Equal(0.8164965805194777, m.Rmse, 1e-9);
        Assert.Equal(11.971273950067141, m.LogRmse, 1e-6);
    }

    [Fact]
    public void AccumulatesPixelsOverImagesNotPerImage()
    {
        // Image 1: one pixel off by 3; image 2: two exact pixels. Pixel-level, as the reference: √(9 / 3) = √3; the mean of the
        // per-image RMSEs would be (3 + 0) / 2 = 1.5.
        var meter = new DepthMeter();
        meter.Update([4f], [1f]);
        meter.Update([2f, 2f], [2f, 2f]);
        Assert.Equal(Math.Sqrt(9.0 / 3), meter.GetMetrics().Rmse, 1e-12);
        Assert.Equal(2, meter.ImageCount);
        meter.Reset();
        Assert.True(double.IsNaN(meter.GetMetrics().Rmse));
        Assert.Throws<ArgumentException>(() => meter.Update([1f], [1f, 2f]));
    }
}
