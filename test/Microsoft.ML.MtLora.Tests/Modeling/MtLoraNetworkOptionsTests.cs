using Microsoft.ML.MtLora.Modeling;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class MtLoraNetworkOptionsTests
{
    [Fact]
    public void DefaultsAreThePaperSetting()
    {
        var o = new MtLoraNetworkOptions();
        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), o.Tasks);
        Assert.Equal(96, o.EmbedDim);
        Assert.Equal([2, 2, 6, 2], o.Depths);
        Assert.Equal([3, 6, 12, 24], o.NumHeads);
        Assert.Equal((7, 448, 4, 4.0), (o.WindowSize, o.ImageSize, o.PatchSize, o.MlpRatio));
        Assert.Equal((NetworkMode.MtLora, 64, 4, 4.0, 0.05, false), (o.Mode, o.SharedRank, o.TaskRank, o.LoraScale, o.LoraDropout, o.MtLoraPlus));
        Assert.Equal([18, 36, 72, 144], o.DecoderChannels);
        Assert.Equal(0.2, o.DropPathRate);
        var stages = o.Stages();
        Assert.Equal([112, 56, 28, 14], stages.Select(s => s.Resolution));
        Assert.Equal([56, 28, 14, 14], stages.Select(s => s.OutputResolution));
        Assert.Equal([192, 384, 768, 768], stages.Select(s => s.OutputDim));
        Assert.Equal([256, 64, 16, 4], stages.Select(s => s.WindowsPerImage));
        Assert.All(stages, s => Assert.Equal(3, s.Shift));
    }

    [Fact]
    public void ParsesTiny4Config()
    {
        var o = Tiny4.Options();
        Assert.Equal((16, 4, 128, 8, 4, 4.0, 0.0), (o.EmbedDim, o.WindowSize, o.ImageSize, o.SharedRank, o.TaskRank, o.LoraScale, o.LoraDropout));
        Assert.Equal([2, 2, 2, 2], o.Depths);
        Assert.Equal([1, 2, 2, 4], o.NumHeads);
        Assert.Equal([8, 8, 16, 16], o.DecoderChannels);
        Assert.Equal(Tiny4.TaskOrder, o.Tasks.Select(t => t.ReferenceName()));
        Assert.Equal(0.2, o.DropPathRate);                              // missing key: default
        var last = o.Stages()[3];
        Assert.Equal((4, 4, 0), (last.Resolution, last.Window, last.Shift)); // window = grid, no shift
    }

    [Fact]
    public void JsonRoundTrips()
    {
        var o = new MtLoraNetworkOptions
        {
            Tasks = [DenseTask.SurfaceNormals], Mode = NetworkMode.TaskAgnosticOnly, MtLoraPlus = true, LoraScale = 2.5,
            LoraOn = new LoraTargets { Fc2 = false }, Freeze = new FrozenParts { Norm = true }, DropPathRate = 0.1,
        };
        var json = o.ToJson();
        Assert.Contains("\"mode\": \"task_agnostic_only\"", json);
        var back = MtLoraNetworkOptions.FromJson(json);
        Assert.Equal(json, back.ToJson());
    }

    [Theory]
    [InlineData("{\"embed_dims\": 96}", "unknown key 'embed_dims' (did you mean 'embed_dim'?)")]
    [InlineData("{\"depths\": [2, 2, 6]}", "'depths' must have 4 positive entries")]
    [InlineData("{\"depths\": [2, 0, 6, 2]}", "'depths' must have 4 positive entries")]
    [InlineData("{\"mode\": \"lora\"}", "'mode' is 'lora', expected one of mtlora, full_finetune, decoders_only, task_agnostic_only")]
    [InlineData("{\"embed_dim\": \"96\"}", "'embed_dim' must be an integer")]
    [InlineData("{\"embed_dim\": 96.5}", "'embed_dim' must be an integer")]
    [InlineData("{\"tasks\": [\"depth\"]}", "unknown task 'depth'")]
    [InlineData("{\"lora_on\": {\"qkv\": true, \"mlp\": false}}", "unknown key 'lora_on.mlp'")]
    [InlineData("{\"freeze\": {\"norm\": 1}}", "'freeze.norm' must be true or false")]
    [InlineData("{\"lora_dropout\": 1.5}", "'lora_dropout' must be in [0, 1)")]
    [InlineData("{\"img_size\": 512}", "stage 0 has a 128x128 token grid, which the window 7 does not divide")]
    [InlineData("{\"img_size\": 450}", "'img_size' 450 must be divisible by 'patch_size' 4")]
    [InlineData("{\"num_heads\": [5, 6, 12, 24]}", "'num_heads'[0] = 5 must divide the stage 0 width")]
    [InlineData("{\"mode\": \"full_finetune\", \"mtlora_plus\": true}", "'mtlora_plus' needs a LoRA mode")]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("{\"embed_dim\": 9", "not valid JSON")]
    public void InvalidConfigsNameTheKey(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => MtLoraNetworkOptions.FromJson(json, "x.json"));
        Assert.StartsWith("config 'x.json': ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void GeometryErrorSuggestsSizes()
    {
        var e = Assert.Throws<FormatException>(() => MtLoraNetworkOptions.FromJson("{\"img_size\": 512}", "x.json"));
        Assert.Contains("448 or 672", e.Message);
        var ok = MtLoraNetworkOptions.FromJson("{\"img_size\": 224}");
        Assert.Equal(0, ok.Stages()[3].Shift);                         // 7x7 grid at stage 3: no shift, as the 224 checkpoint
    }

    [Fact]
    public void LoadNamesMissingFile()
    {
        var e = Assert.Throws<FileNotFoundException>(() => MtLoraNetworkOptions.Load("/nonexistent/cfg.json"));
        Assert.Contains("/nonexistent/cfg.json", e.Message);
    }
}
