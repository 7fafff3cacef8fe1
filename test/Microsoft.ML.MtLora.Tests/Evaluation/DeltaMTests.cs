using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class DeltaMTests
{
    private static KeyValuePair<DenseTask, double>[] Row(double semseg, double humanParts, double saliency, double normals) =>
    [
        new(DenseTask.SemanticSegmentation, semseg),
        new(DenseTask.HumanParts, humanParts),
        new(DenseTask.Saliency, saliency),
        new(DenseTask.SurfaceNormals, normals),
    ];

    [Fact]
    public void PaperMtLoraRank64Row()
    {
        double dm = DeltaM.Compute(Row(67.90, 59.84, 65.40, 16.60), SingleTaskBaselines.Paper)!.Value;
        Assert.Equal(2.54, Math.Round(dm, 2));
    }

    [Fact]
    public void IssueSixRun()
    {
        double dm = DeltaM.Compute(Row(68.38, 59.58, 63.85, 16.76), SingleTaskBaselines.Paper)!.Value;
        Assert.Equal(1.77, Math.Round(dm, 2));
        // Per task, as the spec lists them: +1.741, −3.795, +2.406, +6.733.
        Assert.Equal(6.733, DeltaM.RelativeGain(DenseTask.SurfaceNormals, 16.76, 17.97), 3);
        Assert.Equal(-3.795, DeltaM.RelativeGain(DenseTask.HumanParts, 59.58, 61.93), 3);
    }

    [Fact]
    public void OnlyTasksWithABaselineCount()
    {
        var baselines = SingleTaskBaselines.Parse("semseg=67.21, normals=17.97");
        double dm = DeltaM.Compute(Row(68.38, 10, 10, 16.76), baselines)!.Value;
        Assert.Equal((1.7408123791 + 6.7334446300) / 2, dm, 6);
        Assert.Null(DeltaM.Compute(Row(1, 2, 3, 4), SingleTaskBaselines.None));
        Assert.Null(DeltaM.Compute([new KeyValuePair<DenseTask, double>(DenseTask.HumanParts, 50)], baselines));
    }

    [Fact]
    public void BaselinesParseAndPrint()
    {
        Assert.Same(SingleTaskBaselines.Paper, SingleTaskBaselines.Parse("paper"));
        Assert.Same(SingleTaskBaselines.None, SingleTaskBaselines.Parse("none"));
        Assert.Equal("semseg=67.21,human_parts=61.93,sal=62.35,normals=17.97", SingleTaskBaselines.Paper.ToString());
        var b = SingleTaskBaselines.Parse("normals=17.5,SemanticSegmentation=70");
        Assert.Equal([DenseTask.SemanticSegmentation, DenseTask.SurfaceNormals], b.Tasks);
        Assert.True(b.TryGetValue(DenseTask.SurfaceNormals, out double n));
        Assert.Equal(17.5, n);
        Assert.False(b.TryGetValue(DenseTask.Saliency, out _));

        Assert.Contains("task=value", Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("semseg")).Message);
        Assert.Contains("unknown task 'depth'", Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("depth=3")).Message);
        Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("semseg=-1"));
        Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("semseg=abc"));
        Assert.Throws<FormatException>(() => SingleTaskBaselines.Parse("semseg=1,semseg=2"));
        Assert.Throws<ArgumentException>(() => new SingleTaskBaselines([new(DenseTask.Saliency, 0)]));
    }
}
