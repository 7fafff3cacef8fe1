using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Checkpoints;

public class SwinCheckpointMappingTests
{
    private static string[] ReferenceKeys()
    {
        using var meta = JsonDocument.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json")));
        return meta.RootElement.GetProperty("state_dict_keys").EnumerateArray().Select(e => e.GetString()!).ToArray();
    }

    [Fact]
    public void MicrosoftSwinMapsOntoTheReferenceBackboneNamesAndShapes()
    {
        var ms = StateDictFile.Load(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        var reference = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try
        {
            var mapped = SwinCheckpointMapping.MicrosoftSwinToBackbone(ms, SwinLoraLayout.MtLora);

            // The backbone weights of the reference MTLoRA model (same tiny Swin), less what LoRA adds and what is rebuilt.
            var expected = ReferenceKeys()
                .Where(k => k.StartsWith("backbone.", StringComparison.Ordinal) && !k.Contains(".lora_", StringComparison.Ordinal)
                    && !k.EndsWith("attn_mask", StringComparison.Ordinal) && !k.EndsWith("relative_position_index", StringComparison.Ordinal))
                .Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(expected, mapped.Tensors.Keys.Order(StringComparer.Ordinal).ToArray());
            foreach (var (k, t) in mapped.Tensors)
                Assert.True(reference[k].shape.SequenceEqual(t.shape), $"'{k}': [{string.Join(", ", t.shape)}] vs reference [{string.Join(", ", reference[k].shape)}]");

            // Everything not mapped is the classifier, the final norm and the derived buffers.
            Assert.Equal(ms.Count, mapped.Tensors.Count + mapped.IgnoredKeys.Count);
            Assert.Contains("head.weight", mapped.IgnoredKeys);
            Assert.Contains("layers.0.blocks.1.attn_mask", mapped.IgnoredKeys);
            Assert.Contains("layers.3.blocks.0.attn.relative_position_index", mapped.IgnoredKeys);
            Assert.All(mapped.IgnoredKeys, k => Assert.Matches(@"^(head\.|norm\.|.*attn_mask$|.*relative_position_index$)", k));

            // Same tensors, renamed (no copy).
            Assert.Same(ms["layers.0.blocks.0.attn.qkv.weight"], mapped.Tensors["backbone.layers.0.blocks.0.attn.qkv.linear.weight"]);
            Assert.Same(ms["layers.2.downsample.reduction.weight"], mapped.Tensors["backbone.layers.2.downsample.reduction.weight"]);
        }
        finally
        {
            foreach (var t in ms.Values) t.Dispose();
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Fact]
    public void LayoutDecidesWhereLinearIsInserted()
    {
        using var w = torch.zeros(1);
        var ms = new Dictionary<string, Tensor>
        {
            ["layers.1.blocks.0.attn.qkv.bias"] = w,
            ["layers.1.blocks.0.attn.proj.weight"] = w,
            ["layers.1.blocks.0.mlp.fc1.weight"] = w,
            ["layers.1.blocks.0.mlp.fc2.bias"] = w,
            ["layers.1.downsample.reduction.weight"] = w,
            ["layers.1.downsample.norm.weight"] = w,
            ["patch_embed.proj.weight"] = w,
            ["norm.weight"] = w,
        };
        var plus = SwinCheckpointMapping.MicrosoftSwinToBackbone(ms, SwinLoraLayout.MtLoraPlus).Tensors.Keys;
        Assert.Equal(new[]
        {
            "backbone.layers.1.blocks.0.attn.qkv.linear.bias", "backbone.layers.1.blocks.0.attn.proj.linear.weight",
            "backbone.layers.1.blocks.0.mlp.fc1.linear.weight", "backbone.layers.1.blocks.0.mlp.fc2.linear.bias",
            "backbone.layers.1.downsample.reduction.linear.weight", "backbone.layers.1.downsample.norm.weight",
            "backbone.patch_embed.proj.weight",
        }, plus);
        Assert.Equal(new[] { "norm.weight" }, SwinCheckpointMapping.MicrosoftSwinToBackbone(ms, SwinLoraLayout.MtLoraPlus).IgnoredKeys);

        var plain = SwinCheckpointMapping.MicrosoftSwinToBackbone(ms, SwinLoraLayout.Plain).Tensors.Keys;
        Assert.Equal(ms.Keys.Where(k => k != "norm.weight").Select(k => "backbone." + k), plain);

        var some = SwinCheckpointMapping.MicrosoftSwinToBackbone(ms, new SwinLoraLayout { Qkv = true, Prefix = "" }).Tensors.Keys;
        Assert.Contains("layers.1.blocks.0.attn.qkv.linear.bias", some);
        Assert.Contains("layers.1.blocks.0.attn.proj.weight", some);
    }

    [Fact]
    public void ForeignKeysAreRefusedWithAHint()
    {
        var reference = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try
        {
            var e = Assert.Throws<ArgumentException>(() => SwinCheckpointMapping.MicrosoftSwinToBackbone(reference, SwinLoraLayout.MtLora));
            Assert.StartsWith($"{reference.Count} key(s) are not part of a Microsoft Swin-V1 checkpoint: 'backbone.", e.Message);
            Assert.Contains("NormalizeMtLoraCheckpoint", e.Message);
        }
        finally { foreach (var t in reference.Values) t.Dispose(); }
    }

    [Fact]
    public void ReferenceCheckpointIsNormalisedForAStrictLoad()
    {
        var reference = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try
        {
            var wrapped = reference.ToDictionary(kv => "module." + kv.Key, kv => kv.Value);
            var normal = SwinCheckpointMapping.NormalizeMtLoraCheckpoint(wrapped);
            Assert.Equal(ReferenceKeys().Order(StringComparer.Ordinal), normal.Keys.Order(StringComparer.Ordinal));
            Assert.Same(reference["backbone.patch_embed.proj.weight"], normal["backbone.patch_embed.proj.weight"]);
            Assert.Equal(reference.Keys, SwinCheckpointMapping.NormalizeMtLoraCheckpoint(reference).Keys);
        }
        finally { foreach (var t in reference.Values) t.Dispose(); }

        var ms = StateDictFile.Load(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        try
        {
            var e = Assert.Throws<ArgumentException>(() => SwinCheckpointMapping.NormalizeMtLoraCheckpoint(ms));
            Assert.Contains("MicrosoftSwinToBackbone", e.Message);
        }
        finally { foreach (var t in ms.Values) t.Dispose(); }
    }
}
