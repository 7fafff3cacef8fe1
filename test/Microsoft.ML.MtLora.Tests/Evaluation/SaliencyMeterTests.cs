using Microsoft.ML.MtLora.Evaluation;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class SaliencyMeterTests
{
    [Fact]
    public void MatchesABruteForceComputationOfTheProtocol()
    {
        var random = new Random(7);
        var images = new List<(float[] P, byte[] G)>();
        for (int i = 0; i < 6; i++)
        {
            int n = 50 + random.Next(100);
            // Probabilities on a grid of 1/1000 offset by half a step never sit on a threshold.
            var p = Enumerable.Range(0, n).Select(_ => (random.Next(1000) + 0.5f) / 1000f).ToArray();
            var g = Enumerable.Range(0, n).Select(j => (byte)(p[j] + 0.4 * (random.NextDouble() - 0.5) > 0.5 ? 1 : 0)).ToArray();
            images.Add((p, g));
        }
        images.Add((Enumerable.Repeat(0.1f, 20).ToArray(), new byte[20])); // nothing salient, nothing predicted: IoU 1

        var meter = new SaliencyMeter();
        foreach (var (p, g) in images) meter.Update(p, g);
        var m = meter.GetMetrics();

        var thresholds = Enumerable.Range(0, 15).Select(j => 0.2 + 0.05 * j).ToArray();
        var iou = new double[15];
        var f = new double[15];
        var fBeta = new double[15];
        for (int j = 0; j < 15; j++)
        {
            double sumJ = 0, sumP = 0, sumR = 0;
            foreach (var (p, g) in images)
            {
                int tp = 0, fp = 0, fn = 0;
                for (int k = 0; k < p.Length; k++)
                {
                    bool mask = p[k] > thresholds[j], gt = g[k] == 1;
                    if (mask && gt) tp++; else if (mask) fp++; else if (gt) fn++;
                }
                sumJ += tp + fp + fn == 0 ? 1 : (double)tp / (tp + fp + fn);
                sumP += tp / (tp + fp + 1e-12);
                sumR += tp / (tp + fn + 1e-12);
            }
            iou[j] = sumJ / images.Count;
            double prec = sumP / images.Count, rec = sumR / images.Count;
            f[j] = 2 * prec * rec / (prec + rec + 1e-12);
            fBeta[j] = 1.3 * prec * rec / (0.3 * prec + rec + 1e-12);
        }
        for (int j = 0; j < 15; j++)
        {
            Assert.Equal(thresholds[j], m.Thresholds[j], 1e-12);
            Assert.Equal(iou[j], m.MeanIoUPerThreshold[j], 1e-12);
            Assert.Equal(f[j], m.FPerThreshold[j], 1e-12);
        }
        Assert.Equal(iou.Max(), m.MeanIoU, 1e-12);
        Assert.Equal(thresholds[Array.IndexOf(iou, iou.Max())], m.BestThreshold, 1e-12);
        Assert.Equal(f.Max(), m.MaxF, 1e-12);
        Assert.Equal(fBeta.Max(), m.MaxFBeta, 1e-12);
        Assert.Equal(images.Count, m.ImageCount);
    }

    [Fact]
    public void EmptyPredictionOfEmptyLabelIsAPerfectImage()
    {
        var meter = new SaliencyMeter();
        meter.Update(new float[] { 0.1f, 0.15f, 0.05f }, new byte[] { 0, 0, 255 });
        var m = meter.GetMetrics();
        Assert.All(m.MeanIoUPerThreshold, v => Assert.Equal(1.0, v));
        Assert.Equal(0.0, m.MaxF); // precision and recall are 0 (no true positive)
    }

    [Fact]
    public void IgnoredPixelsDoNotCount()
    {
        var a = new SaliencyMeter();
        a.Update(new float[] { 0.9f, 0.1f, 0.95f }, new byte[] { 1, 0, 255 });
        var b = new SaliencyMeter();
        b.Update(new float[] { 0.9f, 0.1f }, new byte[] { 1, 0 });
        Assert.Equal(b.GetMetrics().MeanIoUPerThreshold, a.GetMetrics().MeanIoUPerThreshold);
        Assert.Equal(1.0, a.GetMetrics().MeanIoU);
    }

    [Fact]
    public void TensorPathEqualsManagedPath()
    {
        using var fx = MetricFixture.Metrics();
        var fast = new SaliencyMeter();
        fast.Update(fx.Out(DenseTask.Saliency), fx.Target(DenseTask.Saliency));
        var slow = new SaliencyMeter();
        using var p = fx.Out(DenseTask.Saliency).sigmoid();                          // (N, 1, H, W)
        using var g = fx.Target(DenseTask.Saliency).to(ScalarType.Byte);              // (N, 1, H, W)
        for (int i = 0; i < p.size(0); i++)
            slow.Update(p[i].contiguous().data<float>().ToArray(), g[i].contiguous().data<byte>().ToArray());
        Assert.Equal(slow.GetMetrics().MeanIoUPerThreshold, fast.GetMetrics().MeanIoUPerThreshold);
        Assert.Equal(slow.GetMetrics().PrecisionPerThreshold, fast.GetMetrics().PrecisionPerThreshold);
        Assert.Equal(slow.GetMetrics().RecallPerThreshold, fast.GetMetrics().RecallPerThreshold);
    }

    [Fact]
    public void BadInputIsRejected()
    {
        var meter = new SaliencyMeter();
        Assert.Contains("Saliency label 2", Assert.Throws<ArgumentException>(() => meter.Update(new float[] { 0.5f }, new byte[] { 2 })).Message);
        Assert.Throws<ArgumentException>(() => meter.Update(new float[] { 0.5f, 0.2f }, new byte[] { 1 }));
        using var logits = zeros(1, 1, 2, 2);
        using var target = tensor(new float[] { 0, 1, 0.5f, 255 }).reshape(1, 1, 2, 2);
        Assert.Contains("0.5", Assert.Throws<ArgumentException>(() => meter.Update(logits, target)).Message);
        Assert.Throws<InvalidOperationException>(() => meter.GetMetrics());
    }
}
