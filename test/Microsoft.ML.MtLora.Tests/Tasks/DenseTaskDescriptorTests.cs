using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public class DenseTaskDescriptorTests
{
    [Fact]
    public void PascalBuiltInsCarryTheFactsTheEnumHad()
    {
        // The values the enum's switch statements returned before the descriptor existed (reference §4, §5).
        var d = DenseTaskDescriptor.Pascal;
        Assert.Equal(["semseg", "human_parts", "sal", "normals"], d.Select(t => t.Name));
        Assert.Equal([21, 7, 1, 3], d.Select(t => t.OutputChannels));
        Assert.Equal([1f, 2f, 5f, 10f], d.Select(t => t.DefaultLossWeight));
        Assert.Equal(["SemsegLabel", "HumanPartsLabel", "SaliencyLabel", "NormalsLabel"], d.Select(t => t.LabelColumnName));
        Assert.Equal(["SemsegPredictedLabel", "HumanPartsPredictedLabel", "SaliencyProbability", "NormalsPredicted"], d.Select(t => t.PredictionColumnName));
        Assert.Equal(["SemsegScore", "HumanPartsScore", null, null], d.Select(t => t.ScoreColumnName));
        Assert.Equal([true, true, false, false], d.Select(t => t.IsClassification));
        Assert.Equal([true, true, true, false], d.Select(t => t.HigherIsBetter));
        Assert.Equal([DenseResize.Nearest, DenseResize.Nearest, DenseResize.Nearest, DenseResize.BicubicRenormalize], d.Select(t => t.LabelResize));
        Assert.Same(NumberDataViewType.Single, DenseTaskDescriptor.PascalSurfaceNormals.LabelItemType);
        Assert.Same(NumberDataViewType.Byte, DenseTaskDescriptor.PascalSaliency.LabelItemType);
        Assert.Null(DenseTaskDescriptor.PascalSaliency.PositiveWeight);
    }

    [Fact]
    public void EnumConvertsToTheBuiltIns()
    {
        Assert.Equal(DenseTasks.All.Count, DenseTaskDescriptor.Pascal.Count);
        for (int i = 0; i < DenseTasks.All.Count; i++)
        {
            DenseTaskDescriptor converted = DenseTasks.All[i];
            Assert.Same(DenseTaskDescriptor.Pascal[i], converted);
            Assert.Equal(DenseTasks.All[i].ReferenceName(), converted.Name);
            Assert.Equal(DenseTasks.All[i].OutputChannels(), converted.OutputChannels);
        }
        Assert.True(DenseTaskDescriptor.PascalSaliency == DenseTask.Saliency);
    }

    [Fact]
    public void NyudBuiltInsFollowTheReference()
    {
        // data/mtl_ds.py::get_tasks_config and mtl_loss_schemes.py::get_loss; main.py's weights.
        var d = DenseTaskDescriptor.Nyud;
        Assert.Equal(["semseg", "depth", "normals", "edge"], d.Select(t => t.Name));
        Assert.Equal([40, 1, 3, 1], d.Select(t => t.OutputChannels));
        Assert.Equal([1f, 1f, 10f, 50f], d.Select(t => t.DefaultLossWeight));
        Assert.Equal(0.95f, DenseTaskDescriptor.NyudEdge.PositiveWeight);
        Assert.Equal(255f, DenseTaskDescriptor.NyudDepth.IgnoreValue);
        Assert.Equal("rmse", DenseTaskDescriptor.NyudDepth.MetricName);
        Assert.False(DenseTaskDescriptor.NyudDepth.HigherIsBetter);
        Assert.Equal("edge_f@0.5", DenseTaskDescriptor.NyudEdge.MetricName);
        Assert.Equal("DepthPredicted", DenseTaskDescriptor.NyudDepth.PredictionColumnName);
        Assert.Equal("EdgeProbability", DenseTaskDescriptor.NyudEdge.PredictionColumnName);
    }

    [Fact]
    public void EqualityIsByName()
    {
        var a = DenseTaskDescriptor.Segmentation("defects", classes: 5);
        var b = DenseTaskDescriptor.Segmentation("defects", classes: 7);
        Assert.Equal(a, b);
        Assert.True(a == b);
        Assert.False(a.SameDefinition(b));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, DenseTaskDescriptor.BinaryMap("defect_edges"));
        Assert.Equal(DenseTaskDescriptor.PascalSemanticSegmentation, DenseTaskDescriptor.NyudSemanticSegmentation);
        var dict = new Dictionary<DenseTaskDescriptor, int> { [a] = 1 };
        Assert.Equal(1, dict[b]);
    }

    [Fact]
    public void CustomTasksGetColumnsFromTheirName()
    {
        var t = DenseTaskDescriptor.Segmentation("road_defects", classes: 5, lossWeight: 2f);
        Assert.Equal("RoadDefectsLabel", t.LabelColumnName);
        Assert.Equal("RoadDefectsPredictedLabel", t.PredictionColumnName);
        Assert.Equal("RoadDefectsScore", t.ScoreColumnName);
        Assert.Equal(5, t.OutputChannels);
        var depth = DenseTaskDescriptor.Depth("range", ignoreValue: 0f, columnStem: "Range");
        Assert.Equal(0f, depth.IgnoreValue);
        Assert.Same(NumberDataViewType.Single, depth.LabelItemType);
        var rebuilt = DenseTaskDescriptor.FromParts(t.Name, t.Kind, t.OutputChannels, t.DefaultLossWeight, t.ColumnStem, t.PositiveWeight, t.IgnoreValue);
        Assert.True(rebuilt.SameDefinition(t));
        Assert.Same(DenseTaskDescriptor.NyudEdge, DenseTaskDescriptor.FromParts("edge", DenseTaskKind.BinaryMap, 1, 50f, "Edge", 0.95f, null));
    }

    [Fact]
    public void BadDefinitionsAreRefusedWithTheTaskName()
    {
        Assert.Contains("'x'", Assert.Throws<ArgumentOutOfRangeException>(() => DenseTaskDescriptor.Segmentation("x", classes: 1)).Message);
        Assert.Contains("not valid", Assert.Throws<ArgumentException>(() => DenseTaskDescriptor.BinaryMap("9lives")).Message);
        Assert.Contains("'e'", Assert.Throws<ArgumentOutOfRangeException>(() => DenseTaskDescriptor.BinaryMap("e", positiveWeight: 1.5f)).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() =>
            DenseTaskDescriptor.Validate([DenseTaskDescriptor.NyudDepth, DenseTaskDescriptor.Depth("depth")], "Tasks")).Message);
        Assert.Contains("column stem", Assert.Throws<ArgumentException>(() =>
            DenseTaskDescriptor.Validate([DenseTaskDescriptor.Depth("a", columnStem: "S"), DenseTaskDescriptor.BinaryMap("b", columnStem: "S")], "Tasks")).Message);
        Assert.Throws<ArgumentException>(() => DenseTaskDescriptor.FromParts("n", DenseTaskKind.SurfaceNormals, 2, 1f, "N", null, 255f));
    }
}
