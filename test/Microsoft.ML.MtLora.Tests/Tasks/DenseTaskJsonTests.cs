using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Modeling;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public class DenseTaskJsonTests
{
    [Fact]
    public void PascalTasksStayNamesAndOthersRoundTripAsObjects()
    {
        // PASCAL built-ins are written as before descriptors existed (a name), so model.zip files agree both ways.
        Assert.Equal("\"human_parts\"", DenseTaskJson.Write(DenseTaskDescriptor.PascalHumanParts).ToJsonString());
        Assert.Same(DenseTaskDescriptor.PascalSaliency, DenseTaskJson.Read(JsonValue.Create("sal"), "tasks"));

        foreach (var task in new[]
        {
            DenseTaskDescriptor.NyudSemanticSegmentation, DenseTaskDescriptor.NyudEdge, DenseTaskDescriptor.NyudDepth,
            DenseTaskDescriptor.Segmentation("defects", classes: 5, lossWeight: 3f, columnStem: "Defect"),
            DenseTaskDescriptor.Depth("range", ignoreValue: 0f), DenseTaskDescriptor.BinaryMap("cracks", positiveWeight: 0.9f),
        })
        {
            var node = DenseTaskJson.Write(task);
            Assert.IsType<JsonObject>(node);
            var back = DenseTaskJson.Read(JsonNode.Parse(node.ToJsonString()), "tasks");
            Assert.True(back.SameDefinition(task), task.Name);
        }
        Assert.Same(DenseTaskDescriptor.NyudEdge, DenseTaskJson.Read(DenseTaskJson.Write(DenseTaskDescriptor.NyudEdge), "tasks"));
    }

    [Fact]
    public void BadTaskObjectsGiveErrorsNamingTheTask()
    {
        Assert.Contains("unknown task 'road'", Assert.Throws<FormatException>(() => DenseTaskJson.Read(JsonValue.Create("road"), "tasks")).Message);
        var bad = JsonNode.Parse("""{"name":"defects","kind":"segmentation","channels":1,"loss_weight":1,"column_stem":"Defects"}""");
        Assert.Contains("task 'defects'", Assert.Throws<FormatException>(() => DenseTaskJson.Read(bad, "tasks")).Message);
        var kind = JsonNode.Parse("""{"name":"x","kind":"blob","channels":1,"loss_weight":1,"column_stem":"X"}""");
        Assert.Contains("'kind'", Assert.Throws<FormatException>(() => DenseTaskJson.Read(kind, "tasks")).Message);
        var extra = JsonNode.Parse("""{"name":"x","kind":"depth","channels":1,"loss_weight":1,"column_stem":"X","oops":2}""");
        Assert.Contains("'oops'", Assert.Throws<FormatException>(() => DenseTaskJson.Read(extra, "tasks")).Message);
    }

    [Fact]
    public void NetworkOptionsWithCustomTasksRoundTrip()
    {
        var o = new MtLoraNetworkOptions { Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.PascalSaliency] };
        var back = NetworkOptionsJson.Parse(NetworkOptionsJson.ToNode(o).ToJsonString(), "config.json");
        Assert.Equal(["defects", "sal"], back.Tasks.Select(t => t.Name));
        Assert.Equal(5, back.Tasks[0].OutputChannels);
    }
}
