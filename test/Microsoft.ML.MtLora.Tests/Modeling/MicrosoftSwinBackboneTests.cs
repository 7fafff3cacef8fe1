using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>
/// A backbone checkpoint in Microsoft's ImageNet Swin layout (swin_ms fixture: head, final norm, attn_mask and
/// relative_position_index included, built for 128 px) loaded into an MTLoRA network run at 256 px — the way the
/// 224-px ImageNet checkpoint is used at 448 — must reproduce the reference's shared-stream stage outputs.
/// </summary>
public class MicrosoftSwinBackboneTests
{
    private static MtLoraNetworkOptions Options(NetworkMode mode = NetworkMode.MtLora)
    {
        var o = Tiny4.Options();
        o.ImageSize = 256;
        o.Mode = mode;
        return o;
    }

    [Theory]
    [InlineData(NetworkMode.MtLora)]
    [InlineData(NetworkMode.FullFineTune)]
    public void StageOutputsMatchTheReference(NetworkMode mode)
    {
        using var scope = NewDisposeScope();
        var raw = StateDictFile.Load(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        var expected = SafeTensors.Load(Fixture.Path("swin_ms", "swin_ms_features_256.safetensors"));
        using var model = new MultiTaskSwin(Options(mode));
        var layout = mode == NetworkMode.MtLora ? SwinLoraLayout.MtLora : SwinLoraLayout.Plain;
        var mapped = SwinCheckpointMapping.MicrosoftSwinToBackbone(raw, layout);
        Assert.Contains(mapped.IgnoredKeys, k => k.StartsWith("head.", StringComparison.Ordinal));
        Assert.Contains(mapped.IgnoredKeys, k => k.EndsWith("attn_mask", StringComparison.Ordinal));

        var report = model.LoadPretrainedBackbone(mapped.Tensors, strict: true);
        Assert.Empty(report.Missing);   // LoRA tensors are expected to be absent and keep their init (B = 0)
        Assert.Empty(report.Unexpected);
        model.eval();
        using var _ = no_grad();
        var stages = model.ForwardSharedStages(expected["input"]);
        for (int i = 0; i < 4; i++)
        {
            var want = expected[$"stage{i}"];
            Assert.Equal(want.shape, stages[i].shape);
            Assert.True(Tiny4.MaxAbs(stages[i], want) < 1e-4f, $"stage {i}: max abs error {Tiny4.MaxAbs(stages[i], want)}");
        }
    }

    [Fact]
    public void MissingBackboneTensorIsReportedByName()
    {
        using var scope = NewDisposeScope();
        var raw = StateDictFile.Load(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        raw.Remove("layers.1.blocks.0.mlp.fc1.weight");
        using var model = new MultiTaskSwin(Options());
        var mapped = SwinCheckpointMapping.MicrosoftSwinToBackbone(raw, SwinLoraLayout.MtLora);
        var e = Assert.ThrowsAny<Exception>(() => model.LoadPretrainedBackbone(mapped.Tensors, strict: true));
        Assert.Contains("layers.1.blocks.0.mlp.fc1.linear.weight", e.Message);
        var report = model.LoadPretrainedBackbone(mapped.Tensors, strict: false);
        Assert.Contains(report.Missing, k => k.EndsWith("layers.1.blocks.0.mlp.fc1.linear.weight", StringComparison.Ordinal));
    }
}
