using Microsoft.ML.MtLora.Evaluation;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class NormalsMeterTests
{
    [Fact]
    public void KnownAngles()
    {
        // Five pixels in CHW: errors 0°, 45°, 90°, 90°, and one invalid pixel (255 in the label's first plane).
        float[] pred =
        [
            2, 1, 0, -1, 5,   // x
            0, 1, 0, 0, 5,    // y
            0, 0, 3, 0, 5,    // z
        ];
        float[] label =
        [
            1, 1, 1, 0, 255,
            0, 0, 0, 1, 255,
            0, 0, 0, 0, 255,
        ];
        var meter = new NormalsMeter();
        meter.Update(pred, label);
        var m = meter.GetMetrics();
        Assert.Equal(4, m.PixelCount);
        Assert.Equal((0 + 45 + 90 + 90) / 4.0, m.Mean, 1e-4);
        Assert.Equal(m.Mean, m.ReferenceRmse);
        Assert.Equal(Math.Sqrt((0 + 45.0 * 45 + 2 * 90.0 * 90) / 4), m.Rmse, 1e-4);
        Assert.Equal((45 + 90) / 2.0, m.Median, NormalsMeter.MedianBinWidth / 2 + 1e-4);
        Assert.Equal(0.25, m.Within11_25);
        Assert.Equal(0.25, m.Within22_5);
        Assert.Equal(0.25, m.Within30);

        // The same pixels as a (1, 3, 1, 5) tensor batch.
        var fast = new NormalsMeter();
        using var p = tensor(pred).reshape(1, 3, 1, 5);
        using var g = tensor(label).reshape(1, 3, 1, 5);
        fast.Update(p, g);
        Assert.Equal(m.Mean, fast.GetMetrics().Mean, 1e-5);
        Assert.Equal(m.Median, fast.GetMetrics().Median, NormalsMeter.MedianBinWidth);
    }

    [Fact]
    public void MedianIsWithinHalfABinOfTheExactMedian()
    {
        using var fx = MetricFixture.Metrics();
        var output = fx.Out(DenseTask.SurfaceNormals);
        var target = fx.Target(DenseTask.SurfaceNormals);
        var meter = new NormalsMeter();
        meter.Update(output, target);
        var m = meter.GetMetrics();

        // Exact angles in double, sorted.
        using var scope = NewDisposeScope();
        var n = nn.functional.normalize(output.to(ScalarType.Float64), p: 2, dim: 1);
        var deg = n.mul(target.to(ScalarType.Float64)).sum(1).clamp(-1, 1).acos().rad2deg()
            .masked_select(target.select(1, 0).ne(255));
        var sorted = deg.sort().Values.data<double>().ToArray();
        int count = sorted.Length;
        double median = count % 2 == 1 ? sorted[count / 2] : (sorted[count / 2 - 1] + sorted[count / 2]) / 2;
        Assert.Equal(count, m.PixelCount);
        Assert.Equal(median, m.Median, NormalsMeter.MedianBinWidth / 2 + 1e-5);
        Assert.Equal(sorted.Average(), m.Mean, 1e-5);
        Assert.Equal(Math.Sqrt(sorted.Average(v => v * v)), m.Rmse, 1e-5);
        Assert.Equal(sorted.Count(v => v < 11.25) / (double)count, m.Within11_25, 1e-4);
        Assert.Equal(sorted.Count(v => v < 22.5) / (double)count, m.Within22_5, 1e-4);
        Assert.Equal(sorted.Count(v => v < 30) / (double)count, m.Within30, 1e-4);
    }

    [Fact]
    public void TensorPathEqualsManagedPath()
    {
        using var fx = MetricFixture.Metrics();
        var fast = new NormalsMeter();
        fast.Update(fx.Out(DenseTask.SurfaceNormals), fx.Target(DenseTask.SurfaceNormals));
        var slow = new NormalsMeter();
        for (int i = 0; i < fx.Out(DenseTask.SurfaceNormals).size(0); i++)
        {
            slow.Update(
                fx.Out(DenseTask.SurfaceNormals)[i].contiguous().data<float>().ToArray(),
                fx.Target(DenseTask.SurfaceNormals)[i].contiguous().data<float>().ToArray());
        }
        Assert.Equal(fast.PixelCount, slow.PixelCount);
        Assert.Equal(fast.GetMetrics().Mean, slow.GetMetrics().Mean, 1e-5);
        Assert.Equal(fast.GetMetrics().Rmse, slow.GetMetrics().Rmse, 1e-5);
        Assert.Equal(fast.GetMetrics().Median, slow.GetMetrics().Median, NormalsMeter.MedianBinWidth);
    }

    [Fact]
    public void NoValidPixelIsAnError()
    {
        var meter = new NormalsMeter();
        meter.Update(new float[] { 1, 0, 0 }, new float[] { 255, 255, 255 });
        Assert.Contains("no valid pixel", Assert.Throws<InvalidOperationException>(() => meter.GetMetrics()).Message);
        Assert.Throws<ArgumentException>(() => meter.Update(new float[] { 1, 0 }, new float[] { 1, 0 }));
        Assert.Throws<ArgumentException>(() => meter.Update(new float[] { 1, 0, 0 }, new float[] { 1, 0, 0, 0, 0, 0 }));
    }
}
