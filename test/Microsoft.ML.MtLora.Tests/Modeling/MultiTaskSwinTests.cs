using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class MultiTaskSwinTests
{
    [Fact]
    public void MergedOutputsEqualUnmergedAndUnmergeRestoresWeights()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        using var io = new DisposableDict(Tiny4.Io());
        using var _ = no_grad();
        var input = io.Items["input"];
        var before = model.forward(input);
        var weights = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        model.MergeLora();
        Assert.True(model.IsMerged);
        Assert.True(Tiny4.MaxAbs(model.state_dict()["backbone.layers.0.blocks.0.attn.qkv.linear.weight"],
            weights["backbone.layers.0.blocks.0.attn.qkv.linear.weight"]) > 1e-4f);
        var merged = model.forward(input);
        foreach (var t in Tiny4.TaskOrder)
        {
            Assert.True(Tiny4.MaxAbs(merged[t], before[t]) < 1e-4f, t);
            Assert.True(Tiny4.MaxAbs(merged[t], io.Items["out." + t]) < 1e-4f, t);
        }
        model.UnmergeLora();
        Assert.False(model.IsMerged);
        foreach (var (k, v) in model.state_dict())
            Assert.True(v.eq(weights[k]).all().item<bool>(), k);
    }

    [Fact]
    public void MergeRequiresEvaluationMode()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        model.train();
        Assert.Throws<InvalidOperationException>(() => model.MergeLora());
        model.eval();
        model.MergeLora();
        model.train();
        var x = zeros(1, 3, 128, 128);
        Assert.Throws<InvalidOperationException>(() => model.forward(x));
    }

    [Fact]
    public void StrictLoadNamesMissingUnexpectedAndMisshapenKeys()
    {
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(Tiny4.Options());
        using var file = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors")));
        var sd = new Dictionary<string, Tensor>(file.Items);
        const string dropped = "backbone.layers.1.blocks.1.mlp.fc1.lora_tasks_B.sal";
        sd.Remove(dropped);
        sd["backbone.layers.9.bogus"] = zeros(2);
        // Derived buffers may be absent: they are rebuilt.
        sd.Remove("backbone.layers.0.blocks.1.attn_mask");
        sd.Remove("backbone.layers.0.blocks.0.attn.relative_position_index");

        var e = Assert.Throws<InvalidDataException>(() => model.LoadStateDict(sd));
        Assert.Contains(dropped, e.Message);
        Assert.Contains("backbone.layers.9.bogus", e.Message);
        Assert.DoesNotContain("attn_mask", e.Message);
        Assert.DoesNotContain("relative_position_index", e.Message);

        var report = model.LoadStateDict(sd, strict: false);
        Assert.Equal([dropped], report.Missing);
        Assert.Equal(["backbone.layers.9.bogus"], report.Unexpected);
        Assert.Contains("backbone.layers.1.blocks.1.attn_mask", report.Ignored);
        Assert.Equal(340 - 1 - 3 - 8, report.Loaded.Count); // all but the dropped key, 3 masks and 8 index buffers
        Assert.True(model.state_dict()["backbone.patch_embed.proj.weight"].eq(file.Items["backbone.patch_embed.proj.weight"]).all().item<bool>());

        sd["backbone.patch_embed.proj.weight"] = zeros(16, 3, 2, 2);
        var shape = Assert.Throws<InvalidDataException>(() => model.LoadStateDict(sd, strict: false));
        Assert.Contains("backbone.patch_embed.proj.weight", shape.Message);
        Assert.Contains("[16, 3, 2, 2]", shape.Message);
        Assert.Contains("[16, 3, 4, 4]", shape.Message);

        sd["backbone.patch_embed.proj.weight"] = file.Items["backbone.patch_embed.proj.weight"];
        sd["backbone.layers.0.blocks.0.attn.relative_position_index"] = zeros(new long[] { 16, 16 }, int64);
        var index = Assert.Throws<InvalidDataException>(() => model.LoadStateDict(sd, strict: false));
        Assert.Contains("backbone.layers.0.blocks.0.attn.relative_position_index", index.Message);
    }

    [Fact]
    public void PretrainedBackboneLoadsEverythingButLora()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = new MultiTaskSwin(Tiny4.Options());
        var loraBefore = model.state_dict()["backbone.layers.2.blocks.0.attn.qkv.lora_shared_A"].clone();
        using var file = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors")));
        // An ImageNet checkpoint renamed to backbone keys: no LoRA, no masks, plus the classifier's final norm and head.
        var ckpt = file.Items.Where(kv => kv.Key.StartsWith("backbone.") && !kv.Key.Contains("lora_") && !kv.Key.EndsWith("attn_mask"))
            .ToDictionary(kv => kv.Key["backbone.".Length..], kv => kv.Value);
        ckpt["norm.weight"] = ones(128);
        ckpt["head.weight"] = zeros(10, 128);

        var report = model.LoadPretrainedBackbone(ckpt);
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Contains("norm.weight", report.Ignored);
        var sd = model.state_dict();
        Assert.True(sd["backbone.layers.2.blocks.0.attn.qkv.linear.weight"].eq(file.Items["backbone.layers.2.blocks.0.attn.qkv.linear.weight"]).all().item<bool>());
        Assert.True(sd["backbone.layers.2.blocks.0.attn.qkv.lora_shared_A"].eq(loraBefore).all().item<bool>());

        ckpt.Remove("layers.1.downsample.reduction.weight");
        ckpt["layers.0.blocks.0.attn.qkv.weight"] = zeros(48, 16);
        var e = Assert.Throws<InvalidDataException>(() => model.LoadPretrainedBackbone(ckpt));
        Assert.Contains("backbone.layers.1.downsample.reduction.weight", e.Message);
        Assert.Contains("layers.0.blocks.0.attn.qkv.weight", e.Message);
        var lenient = model.LoadPretrainedBackbone(ckpt, strict: false);
        Assert.Equal(["backbone.layers.1.downsample.reduction.weight"], lenient.Missing);
        Assert.Equal(["layers.0.blocks.0.attn.qkv.weight"], lenient.Unexpected);
    }

    [Fact]
    public void RejectsWrongInputShape()
    {
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(Tiny4.Options());
        var e = Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 3, 96, 96)));
        Assert.Contains("(B, 3, 128, 128)", e.Message);
        Assert.Contains("(1, 3, 96, 96)", e.Message);
        Assert.Throws<ArgumentException>(() => model.forward(zeros(new long[] { 1, 3, 128, 128 }, int64)));
    }

    [Fact]
    public void OtherGeometryBuildsRunsAndCountsConsistently()
    {
        // Not tiny4: window 7 at 224 px (stage 3 is 7x7: window = grid, no shift), uneven depths, MTLoRA+, LoRA on qkv only.
        var o = new MtLoraNetworkOptions
        {
            EmbedDim = 16, Depths = [1, 2, 3, 2], NumHeads = [1, 2, 2, 2], WindowSize = 7, ImageSize = 224,
            SharedRank = 4, TaskRank = 2, MtLoraPlus = true, LoraOn = new LoraTargets { Proj = false, Fc1 = false, Fc2 = false },
            DecoderChannels = [4, 4, 8, 8], Tasks = [DenseTask.Saliency, DenseTask.SemanticSegmentation],
        };
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = new MultiTaskSwin(o);
        Assert.Equal([56, 28, 14, 7], model.Stages.Select(s => s.Resolution));
        Assert.Equal([3, 3, 3, 0], model.Stages.Select(s => s.Shift));
        var keys = model.state_dict().Keys.ToList();
        Assert.Contains("backbone.layers.3.blocks.1.attn.proj.weight", keys);     // no LoRA on proj: a plain linear
        Assert.Contains("backbone.layers.0.downsample.reduction.linear.weight", keys);
        Assert.DoesNotContain(keys, k => k.Contains("lora_tasks"));
        Assert.DoesNotContain("backbone.layers.3.blocks.1.attn_mask", keys);

        // Independent count: qkv LoRA r(C + 3C) per block, merging LoRA r(4C + 2C) per merge.
        int r = 4;
        long lora = 0, extra = 16 * 3 * 16 + 16 + 2 * 16, decoder = 0;
        int[] dims = [16, 32, 64, 128];
        for (int i = 0; i < 4; i++)
        {
            int c = dims[i];
            int nH = o.NumHeads[i];
            int win = i == 3 ? 7 : 7;
            lora += o.Depths[i] * 4L * c * r;
            extra += o.Depths[i] * (4L * c + (2 * win - 1) * (2 * win - 1) * nH);
            if (i < 3) { lora += 6L * c * r; extra += 2 * 4L * c; }
        }
        int[] outDims = [32, 64, 128, 128];
        foreach (var t in o.Tasks)
        {
            decoder += outDims.Zip(o.DecoderChannels, (a, b) => (long)a * b).Sum();
            long sum = o.DecoderChannels.Sum(), mid = 4 * sum;
            decoder += sum * mid + mid + 2 * mid + mid * t.OutputChannels + t.OutputChannels;
        }
        var counts = model.CountParameters();
        Assert.Equal(lora, counts.Lora);
        Assert.Equal(decoder, counts.Decoder);
        Assert.Equal(lora + extra + decoder, counts.Trainable);

        model.eval();
        var outs = model.forward(randn(2, 3, 224, 224));
        Assert.Equal(["sal", "semseg"], outs.Keys);
        Assert.Equal(new long[] { 2, 1, 224, 224 }, outs["sal"].shape);
        Assert.Equal(new long[] { 2, 21, 224, 224 }, outs["semseg"].shape);
        Assert.True(outs["semseg"].isfinite().all().item<bool>());
    }

    [Theory]
    [InlineData(NetworkMode.FullFineTune)]
    [InlineData(NetworkMode.DecodersOnly)]
    [InlineData(NetworkMode.TaskAgnosticOnly)]
    public void ModesBuildTheReferenceVariants(NetworkMode mode)
    {
        var o = Tiny4.Options();
        o.Mode = mode;
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(o);
        var keys = model.state_dict().Keys.ToList();
        var c = model.CountParameters();
        switch (mode)
        {
            case NetworkMode.FullFineTune:
                Assert.Contains("backbone.layers.0.blocks.0.attn.qkv.weight", keys);
                Assert.DoesNotContain(keys, k => k.Contains("lora_"));
                Assert.Equal(c.Total, c.Trainable);
                break;
            case NetworkMode.DecodersOnly:
                Assert.Contains("backbone.layers.0.blocks.0.mlp.fc2.bias", keys);
                Assert.Equal(c.Decoder, c.Trainable);
                break;
            default:
                Assert.Contains("backbone.layers.0.blocks.1.attn.proj.lora_shared_A", keys);
                Assert.DoesNotContain(keys, k => k.Contains("lora_tasks"));
                Assert.True(c.Lora > 0);
                break;
        }
        model.eval();
        using var _ = no_grad();
        var outs = model.forward(randn(1, 3, 128, 128));
        Assert.Equal(Tiny4.TaskOrder, outs.Keys.ToArray());
    }

}

public class MultiTaskSwinConversionTests
{
    [Fact]
    public void ConvertedModelKeepsNamesTrainabilityAndOutputs()
    {
        // dtype conversion runs the same re-registration path as a device move (TorchSharp Module._toEpilog).
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        var trainable = model.TrainableParameters().Select(p => p.Name).ToHashSet();
        var keys = model.state_dict().Keys.ToList();
        model.to(float64);
        Assert.Equal(keys, model.state_dict().Keys.ToList());
        Assert.Equal(trainable, model.TrainableParameters().Select(p => p.Name).ToHashSet());
        Assert.All(model.parameters(), p => Assert.Equal(float64, p.dtype));
        using var io = new DisposableDict(Tiny4.Io());
        using var _ = no_grad();
        var outs = model.forward(io.Items["input"].to(float64));
        foreach (var t in Tiny4.TaskOrder)
            Assert.True(Tiny4.MaxAbs(outs[t].to(float32), io.Items["out." + t]) < 1e-4f, t);
    }
}

public class FreshLoraEqualsPlainSwinTests
{
    [Fact]
    public void ZeroInitialisedLoraReproducesThePlainNetwork()
    {
        // Reference §2.2: B = 0 at init, so an MTLoRA model reproduces the frozen Swin exactly, shared and task streams alike.
        using var scope = NewDisposeScope();
        manual_seed(21);
        using var lora = new MultiTaskSwin(Tiny4.Options());
        var plainOptions = Tiny4.Options();
        plainOptions.Mode = NetworkMode.FullFineTune;
        using var plain = new MultiTaskSwin(plainOptions);
        var sd = lora.state_dict()
            .Where(kv => !kv.Key.Contains("lora_"))
            .ToDictionary(kv => kv.Key.Replace(".linear.", "."), kv => kv.Value);
        var report = plain.LoadStateDict(sd);
        Assert.Empty(report.Missing);
        lora.eval();
        plain.eval();
        using var _ = no_grad();
        var x = randn(2, 3, 128, 128);
        var a = lora.ForwardSharedStages(x);
        var b = plain.ForwardSharedStages(x);
        Assert.Equal([1024 / 4, 1024 / 16, 1024 / 64, 1024 / 64], a.Select(t => t.shape[1]));
        for (int i = 0; i < 4; i++) Assert.True(Tiny4.MaxAbs(a[i], b[i]) < 1e-5f, $"stage {i}");
        var outA = lora.forward(x);
        var outB = plain.forward(x);
        foreach (var t in Tiny4.TaskOrder) Assert.True(Tiny4.MaxAbs(outA[t], outB[t]) < 1e-5f, t);
    }
}

/// <summary>Tests that reseed TorchSharp's global generator and need no other test drawing from it meanwhile.</summary>
[Collection(SerialCollection.Name)]
public class MultiTaskSwinTrainingModeTests
{
    [Fact]
    public void TrainingModeDrawsDropoutAndDropPath()
    {
        var o = Tiny4.Options();
        o.LoraDropout = 0.3;
        o.DropPathRate = 0.5;
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        using var dropping = new MultiTaskSwin(o);
        using (var file = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors")))) dropping.LoadStateDict(file.Items);
        var x = randn(2, 3, 128, 128);
        dropping.eval();
        using (no_grad())
        {
            var eval = dropping.forward(x);
            var reference = model.forward(x);
            Assert.True(Tiny4.MaxAbs(eval["sal"], reference["sal"]) < 1e-5f); // eval: no dropout, no drop path
            dropping.train();
            manual_seed(1);
            var a = dropping.forward(x);
            manual_seed(2);
            var b = dropping.forward(x);
            manual_seed(1);
            var a2 = dropping.forward(x);
            Assert.True(Tiny4.MaxAbs(a["sal"], b["sal"]) > 1e-3f);
            Assert.True(Tiny4.MaxAbs(a["sal"], a2["sal"]) < 1e-5f);
        }
    }
}
