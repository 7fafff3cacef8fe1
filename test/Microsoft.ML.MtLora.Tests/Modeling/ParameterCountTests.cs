using System.Text.Json;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class ParameterCountTests
{
    /// <summary>The options of each row of param_counts_swin_tiny_448.json (README of the fixtures).</summary>
    internal static MtLoraNetworkOptions RowOptions(string row)
    {
        var o = new MtLoraNetworkOptions();
        switch (row)
        {
            case "mtlora_r16": o.SharedRank = 16; break;
            case "mtlora_r32": o.SharedRank = 32; break;
            case "mtlora_r64": o.SharedRank = 64; break;
            case "mtlora_plus_r4": o.MtLoraPlus = true; o.SharedRank = 4; o.TaskRank = 4; break;
            case "mtlora_plus_r8": o.MtLoraPlus = true; o.SharedRank = 8; o.TaskRank = 8; break;
            case "mtlora_plus_r16": o.MtLoraPlus = true; o.SharedRank = 16; o.TaskRank = 16; break;
            case "full_finetune": o.Mode = NetworkMode.FullFineTune; break;
            case "decoders_only": o.Mode = NetworkMode.DecodersOnly; break;
            default:
                Assert.StartsWith("single_task_", row);
                o.Mode = NetworkMode.FullFineTune;
                o.Tasks = [DenseTasks.Parse(row["single_task_".Length..])];
                break;
        }
        return o;
    }

    public static TheoryData<string> Rows()
    {
        var data = new TheoryData<string>();
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture.Path("param_counts_swin_tiny_448.json")));
        foreach (var p in doc.RootElement.EnumerateObject()) data.Add(p.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void SwinTiny448CountsEqualReference(string row)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixture.Path("param_counts_swin_tiny_448.json")));
        var expected = doc.RootElement.GetProperty(row);
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(RowOptions(row), META);
        var c = model.CountParameters();
        Assert.Equal(expected.GetProperty("trainable").GetInt64(), c.Trainable);
        Assert.Equal(expected.GetProperty("lora").GetInt64(), c.Lora);
        Assert.Equal(expected.GetProperty("decoder").GetInt64(), c.Decoder);
        Assert.Equal(expected.GetProperty("total").GetInt64(), c.Total);
    }

    [Fact]
    public void Tiny4CountsAndTrainableNamesEqualReference()
    {
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(Tiny4.Options());
        var meta = Tiny4.Meta();
        var t = meta.GetProperty("trainable");
        var c = model.CountParameters();
        Assert.Equal(new ParameterCounts(t.GetProperty("trainable").GetInt64(), t.GetProperty("lora").GetInt64(),
            t.GetProperty("decoder").GetInt64(), t.GetProperty("total").GetInt64()), c);
        var expectedNames = meta.GetProperty("trainable_names").EnumerateArray().Select(e => e.GetString()!).Order().ToArray();
        Assert.Equal(expectedNames, model.TrainableParameters().Select(p => p.Name).Order().ToArray());
    }
}

public class FreezeSwitchTests
{
    [Fact]
    public void FreezeSwitchesFollowTheReferenceSubstringRule()
    {
        var o = Tiny4.Options();
        o.Freeze = new FrozenParts { Norm = true, PatchMerging = true, RelativePositionBias = true };
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(o, META);
        var trainable = model.TrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.DoesNotContain("backbone.layers.0.blocks.0.norm1.weight", trainable);
        Assert.DoesNotContain("backbone.layers.0.downsample.norm.weight", trainable);
        Assert.DoesNotContain("backbone.layers.0.downsample.reduction.weight", trainable);
        Assert.DoesNotContain("backbone.layers.0.blocks.0.attn.relative_position_bias_table", trainable);
        Assert.Contains("backbone.patch_embed.norm.weight", trainable);  // still matched by 'patch_embed'
        Assert.Contains("backbone.layers.0.blocks.0.attn.qkv.lora_shared_A", trainable);
        Assert.Contains("decoders.decoders.sal.last_layer.1.weight", trainable);

        o.Freeze = new FrozenParts { PatchEmbed = true };
        using var model2 = new MultiTaskSwin(o, META);
        var trainable2 = model2.TrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.DoesNotContain("backbone.patch_embed.proj.weight", trainable2);
        Assert.Contains("backbone.patch_embed.norm.weight", trainable2);  // still matched by 'norm'
    }
}
