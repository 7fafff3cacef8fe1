using Microsoft.ML.MtLora.Evaluation;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests.Tasks;

[Collection(SerialCollection.Name)]
public class NyudMeterTests
{
    [Fact]
    public void NyudSemsegIsScoredOverItsFortyClasses()
    {
        using var scope = torch.NewDisposeScope();
        var meter = new MultiTaskMeter([DenseTaskDescriptor.NyudSemanticSegmentation]);
        // Two pixels: class 39 predicted and labelled (a class PASCAL's 21 could not hold), and an ignored one.
        var logits = torch.zeros(1, 40, 1, 2);
        logits[0, 39, 0, 0] = torch.tensor(5f);
        var target = torch.tensor(new[] { 39f, 255f }).reshape(1, 1, 1, 2);
        meter.Update(DenseTaskDescriptor.NyudSemanticSegmentation, logits, target);
        var m = meter.GetMetrics(SingleTaskBaselines.None).SemanticSegmentation!;
        Assert.Equal(40, m.NumClasses);
        Assert.Equal(1, m.PixelCount);
        Assert.Equal(1.0, m.PerClassIoU[39]);
        // mIoU over all 40 classes, as the reference's SemsegMeter: only class 39 has a union, so 1/40.
        Assert.Equal(1.0 / 40, m.MeanIoU, 12);
        // A surface-normals task under another name has no meter; depth and edge have theirs (MultiTaskMeterKindsTests).
        Assert.Contains("'normals2'", Assert.Throws<ArgumentOutOfRangeException>(() => new MultiTaskMeter([DenseTaskDescriptor.SurfaceNormals("normals2")])).Message);
    }
}
