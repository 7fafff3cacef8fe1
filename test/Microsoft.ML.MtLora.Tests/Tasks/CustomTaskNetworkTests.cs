using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Tests.MlNet;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Tasks;

[Collection(SerialCollection.Name)]
public class CustomTaskNetworkTests
{
    [Fact]
    public void NetworkHeadsLossesAndConfigFollowCustomDescriptors()
    {
        var defects = DenseTaskDescriptor.Segmentation("defects", classes: 5);
        var range = DenseTaskDescriptor.Depth("range", lossWeight: 0.5f);
        var o = MtLoraTestModel.Options();
        o.Tasks = [defects, range, DenseTaskDescriptor.NyudEdge];
        o.ImageSize = 64;

        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        using var model = new MultiTaskSwin(o);
        var outputs = model.forward(torch.randn(2, 3, 64, 64));
        Assert.Equal(new long[] { 2, 5, 64, 64 }, outputs["defects"].shape);
        Assert.Equal(new long[] { 2, 1, 64, 64 }, outputs["range"].shape);
        Assert.Equal(new long[] { 2, 1, 64, 64 }, outputs["edge"].shape);
        // Task LoRA and heads are named by the descriptor's name, as the reference names its modules by task.
        Assert.Contains(model.named_parameters(), p => p.name.Contains("lora_tasks_A.defects", StringComparison.Ordinal));
        Assert.Contains(model.named_parameters(), p => p.name.StartsWith("decoders.decoders.range.", StringComparison.Ordinal));

        using var ten = 10.0.ToScalar();
        using var half = 0.5.ToScalar();
        var targets = new Dictionary<string, Tensor>
        {
            ["defects"] = torch.randint(0, 5, [2, 1, 64, 64]).to(ScalarType.Float32),
            ["range"] = torch.rand(2, 1, 64, 64).mul(ten),
            ["edge"] = torch.rand(2, 1, 64, 64).ge(half).to(ScalarType.Float32),
        };
        using var losses = TaskLosses.Compute(outputs, targets, null, o.Tasks);
        losses.Total.backward();
        Assert.True(float.IsFinite(losses.Total.item<float>()));
        Assert.Equal(0.5f, losses.Weights["range"]);
        Assert.Equal(50f, losses.Weights["edge"]);

        // The config (config.json of model.zip and checkpoints) brings the same tasks back.
        var back = MtLoraNetworkOptions.FromJson(o.ToJsonNode().ToJsonString());
        Assert.True(back.Tasks.Zip(o.Tasks).All(p => p.First.SameDefinition(p.Second)));
    }
}
