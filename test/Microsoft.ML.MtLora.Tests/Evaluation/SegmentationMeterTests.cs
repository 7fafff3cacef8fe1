using Microsoft.ML.MtLora.Evaluation;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class SegmentationMeterTests
{
    // Hand-computed: confusion (label, prediction) = (0,0)×1, (0,1)×1, (1,1)×2, (2,0)×1; the 255 pixel is ignored.
    private static readonly byte[] Label = [0, 0, 1, 1, 2, 255];
    private static readonly byte[] Predicted = [0, 1, 1, 1, 0, 2];

    [Fact]
    public void IoUAndPixelAccuracyFromTheConfusionMatrix()
    {
        var meter = new SegmentationMeter(3);
        meter.Update(Predicted, Label);
        var m = meter.GetMetrics();
        Assert.Equal(1.0 / 3, m.PerClassIoU[0], 1e-12); // TP 1, FP 1 (pixel 4), FN 1 (pixel 1)
        Assert.Equal(2.0 / 3, m.PerClassIoU[1], 1e-12); // TP 2, FP 1, FN 0
        Assert.Equal(0.0, m.PerClassIoU[2], 1e-12);     // TP 0, FN 1
        Assert.Equal(1.0 / 3, m.MeanIoU, 1e-12);
        Assert.Equal(3.0 / 5, m.PixelAccuracy, 1e-12);
        Assert.Equal(5, m.PixelCount);
        Assert.Equal(1, m.Count(2, 0));
        Assert.Equal(0, m.Count(2, 2));
    }

    [Fact]
    public void AbsentClassScoresZeroAndCountsInTheMean()
    {
        // The reference divides by max(TP+FP+FN, 1e-8), so a class nobody saw or predicted lowers the mean.
        var meter = new SegmentationMeter(4);
        meter.Update(Predicted, Label);
        var m = meter.GetMetrics();
        Assert.Equal(0.0, m.PerClassIoU[3]);
        Assert.Equal((1.0 / 3 + 2.0 / 3) / 4, m.MeanIoU, 1e-12);
    }

    [Fact]
    public void TensorPathEqualsManagedPath()
    {
        using var fx = MetricFixture.Metrics();
        foreach (var task in new[] { DenseTask.SemanticSegmentation, DenseTask.HumanParts })
        {
            var fast = SegmentationMeter.For(task);
            fast.Update(fx.Out(task), fx.Target(task));
            var slow = SegmentationMeter.For(task);
            using var pred = fx.Out(task).argmax(1).to(ScalarType.Byte);      // (N, H, W)
            using var gt = fx.Target(task).squeeze(1).to(ScalarType.Byte);    // (N, H, W)
            for (int i = 0; i < pred.size(0); i++)
                slow.Update(pred[i].contiguous().data<byte>().ToArray(), gt[i].contiguous().data<byte>().ToArray());
            Assert.Equal(slow.GetMetrics().PerClassIoU, fast.GetMetrics().PerClassIoU);
            Assert.Equal(slow.PixelCount, fast.PixelCount);
            Assert.Equal(slow.ImageCount, fast.ImageCount);
        }
    }

    [Fact]
    public void OutOfRangeClassesAreRejected()
    {
        var meter = new SegmentationMeter(3);
        var e = Assert.Throws<ArgumentException>(() => meter.Update(new byte[] { 0 }, new byte[] { 3 }));
        Assert.Contains("Label 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => meter.Update(new byte[] { 7 }, new byte[] { 1 }));
        Assert.Contains("Predicted class 7", e.Message);
        Assert.Throws<ArgumentException>(() => meter.Update(new byte[] { 0, 1 }, new byte[] { 1 }));

        using var logits = zeros(1, 3, 2, 2);
        using var target = tensor(new float[] { 0, 1, 30, 255 }).reshape(1, 1, 2, 2);
        e = Assert.Throws<ArgumentException>(() => meter.Update(logits, target));
        Assert.Contains("30", e.Message);
        using var badShape = zeros(1, 1, 2, 3);
        Assert.Throws<ArgumentException>(() => meter.Update(logits, badShape));
        using var fractional = tensor(new float[] { 0, 1.5f, 2, 255 }).reshape(1, 1, 2, 2);
        Assert.Throws<ArgumentException>(() => meter.Update(logits, fractional));
        Assert.Equal(0, meter.ImageCount);
    }
}
