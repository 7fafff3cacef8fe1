using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Modeling.Swin;
using Microsoft.ML.MtLora.Tests.Checkpoints;
using static TorchSharp.torch;

using static Microsoft.ML.MtLora.Tests.CliRunner;
namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>
/// Swin backbone presets (Swin-T/S/B, Microsoft's ImageNet checkpoints) and the loading of a checkpoint pretrained with another
/// window: its relative-position bias tables resized bicubically as the reference's UPDATE_RELATIVE_POSITION path does
/// (utils.py::load_checkpoint), its derived buffers rebuilt.
/// </summary>
public class SwinBackbonePresetTests
{
    // Expected values of PyTorch's F.interpolate(mode='bicubic', align_corners=False) on a relative-position bias table
    // (viewed as nH maps of (2w − 1)²), computed offline by a plain Python script (no torch) that writes the algorithm of
    // aten/src/ATen/native/UpSample.h out: source x = (x' + 0.5)·in/out − 0.5, taps floor(x) − 1 … floor(x) + 2 clamped to
    // the border, Keys' cubic convolution weights with A = −0.75 (W(d) = ((A+2)d − (A+3))d² + 1 for d ≤ 1,
    // ((Ad − 5A)d + 8A)d − 4A for 1 < d < 2), rows then columns, in double precision.
    // Input: table[l][h] = (l + 1)·(h + 1)² − 3·(l mod 4)·h, 2 heads.
    private static readonly double[][] Window3To2 =
    [
        [2.55555556, 4.2962963, 6.03703704, 11.2592593, 13, 14.7407407, 19.962963, 21.7037037, 23.4444444],
        [8.7037037, 9.74074074, 21.8065844, 37.5925926, 52, 53.7407407, 77.5102881, 81.5925926, 88.9670782],
    ];

    private static readonly double[][] Window2To3 =
    [
        [0.616, 1.028, 1.712, 2.396, 2.808, 1.852, 2.264, 2.948, 3.632, 4.044, 3.904, 4.316, 5, 5.684, 6.096, 5.956, 6.368, 7.052, 7.736, 8.148, 7.192, 7.604, 8.288, 8.972, 9.384],
        [3.726592, 3.581024, 3.56, 4.161056, 4.656, 3.45808, 6.603968, 10.604, 11.156672, 10.753056, 5.752, 11.972, 20, 21.548, 21.096, 15.77008, 18.324992, 22.916, 28.491968, 32.061024, 23.454592, 22.36208, 23.288, 31.93808, 38.798592],
    ];

    // The same script on a window-12 table (23², heads) with table[l][h] = sin(0.37·l + 1.3·h) + 0.01·l, resized to window 7
    // (13²): (l, h) → value.
    private static readonly (int L, int H, double Value)[] Window12To7 =
    [
        (0, 0, 0.524498306), (6, 1, 0.133067387), (84, 2, 2.39166124), (168, 3, 4.99218029), (100, 0, 3.01065829),
    ];

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static float SmallTable(int l, int h) => (l + 1) * (h + 1) * (h + 1) - 3 * (l % 4) * h;

    private static float Window12Table(int l, int h) => (float)(Math.Sin(0.37 * l + 1.3 * h) + 0.01 * l);

    [Theory]
    [InlineData(3, 2)]
    [InlineData(2, 3)]
    public void BicubicResizeEqualsPyTorchsInterpolate(int from, int to)
    {
        using var scope = NewDisposeScope();
        int s1 = 2 * from - 1, s2 = 2 * to - 1;
        var table = tensor(Enumerable.Range(0, s1 * s1 * 2).Select(i => SmallTable(i / 2, i % 2)).ToArray()).view(s1 * s1, 2);
        var resized = MicrosoftSwinCheckpoint.ResizeRelativePositionBiasTable(table, to);
        Assert.Equal(new long[] { s2 * s2, 2 }, resized.shape);
        var expected = from == 3 ? Window3To2 : Window2To3;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < s2 * s2; l++)
                Assert.True(Math.Abs(resized[l, h].item<float>() - expected[h][l]) < 2e-5 * Math.Max(1, Math.Abs(expected[h][l])),
                    $"window {from} → {to}, row {l}, head {h}: {resized[l, h].item<float>()} vs {expected[h][l]}");
        Assert.True(Same(MicrosoftSwinCheckpoint.ResizeRelativePositionBiasTable(table, from), table));   // same window: unchanged
    }

    [Fact]
    public void SwinBWindow12CheckpointLoadsStrictlyIntoAWindow7Network()
    {
        using var dir = Fixture.TempDir();
        var preset = SwinBackbonePreset.Get("swin_base_patch4_window12_384");
        var (path, floats, offsets) = WriteMicrosoftSwinB(dir.File(preset.CheckpointFileName), preset);
        var options = preset.ToNetworkOptions();
        options.ImageSize = 224;          // the network's window stays 7; 224 keeps the shift masks small
        options.SharedRank = 8;
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var model = new MultiTaskSwin(options);
        var weights = PretrainedWeights.Load(path, model.Options, out bool whole);
        Assert.False(whole);
        StateDictLoadReport report;
        try { report = model.LoadPretrainedBackbone(weights, strict: true); }
        finally { foreach (var t in weights.Values) t.Dispose(); }
        Assert.Empty(report.Missing);
        Assert.Empty(report.Unexpected);
        // Every backbone tensor of Swin-B that is neither LoRA nor derived: 4 of the patch embedding, 13 per block of the 24
        // (norms 4, bias table 1, qkv/proj/fc1/fc2 weights and biases 8), 3 per merging layer.
        Assert.Equal(4 + 24 * 13 + 3 * 3, report.Loaded.Count);

        var sd = model.state_dict();
        // A frozen weight: the checkpoint's values, renamed to .linear.
        long at = offsets["layers.2.blocks.17.mlp.fc1.weight"];
        var want = tensor(floats[(int)at..(int)(at + 4 * 512 * 512)]).view(4 * 512, 512);
        Assert.True(Same(sd["backbone.layers.2.blocks.17.mlp.fc1.linear.weight"], want));
        // The tables: window 12 (529 rows) resized to 7 (169 rows), equal to the independently computed values.
        foreach (var (key, heads) in new[] { ("backbone.layers.0.blocks.0", 4), ("backbone.layers.3.blocks.1", 32) })
        {
            var table = sd[$"{key}.attn.relative_position_bias_table"];
            Assert.Equal(new long[] { 169, heads }, table.shape);
            foreach (var (l, h, value) in Window12To7)
                Assert.True(Math.Abs(table[l, h].item<float>() - value) < 1e-5, $"{key} ({l}, {h}): {table[l, h].item<float>()} vs {value}");
        }
        // Derived buffers are the network's own, not the file's (whose index is all zeros and whose masks are for 384 px).
        using var index7 = WindowOps.RelativePositionIndex(7);
        Assert.True(Same(sd["backbone.layers.1.blocks.1.attn.relative_position_index"], index7));
        using var mask = WindowOps.ShiftMask(56, 56, 7, 3);
        Assert.True(Same(sd["backbone.layers.0.blocks.1.attn_mask"], mask));

        // describe's counts of this network equal the formulas of docs/mtlora-reference.md §3.4 (SwinBFormulaCounts).
        var counts = model.CountParameters();
        Assert.Equal(86_741_176L + counts.Lora + 2_190_848L, counts.Total);
    }

    [Fact]
    public void CheckpointOfAnotherArchitectureNamesTheFileAndThePreset()
    {
        using var dir = Fixture.TempDir();
        var preset = SwinBackbonePreset.Get("swin_base_patch4_window12_384.ms_in1k");
        var (path, _, _) = WriteMicrosoftSwinB(dir.File("weights.pth"), preset);
        var swinT = SwinBackbonePreset.Get("swin_tiny_patch4_window7_224").ToNetworkOptions();
        var e = Assert.Throws<InvalidDataException>(() => PretrainedWeights.Load(path, swinT, out _));
        Assert.Contains($"'{path}'", e.Message);
        Assert.Contains("the Swin checkpoint has embed_dim 128, depths [2, 2, 18, 2], num_heads [4, 8, 16, 32], patch_size 4 (Swin-B)", e.Message);
        Assert.Contains("the network expects embed_dim 96, depths [2, 2, 6, 2], num_heads [3, 6, 12, 24], patch_size 4 (Swin-T)", e.Message);
        Assert.Contains("swin_base_patch4_window12_384", e.Message);
    }

    [Fact]
    public void TableThatCannotBeInterpolatedIsNamed()
    {
        using var scope = NewDisposeScope();
        var raw = StateDictFile.Load(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        var options = Tiny4.Options();
        Assert.Empty(MicrosoftSwinCheckpoint.FitToNetwork(raw, options));     // the same window: nothing resized
        const string key = "layers.1.blocks.0.attn.relative_position_bias_table";
        raw[key] = zeros(50, raw[key].shape[1]);
        var e = Assert.Throws<ArgumentException>(() => MicrosoftSwinCheckpoint.FitToNetwork(raw, options));
        Assert.Contains($"'{key}' has 50 rows, which is not (2·window − 1)² for any window, so it cannot be interpolated to the network's window 4", e.Message);
        raw[key] = zeros(81, raw[key].shape[1]);                              // window 5: resized to 4
        Assert.Equal(new[] { key }, MicrosoftSwinCheckpoint.FitToNetwork(raw, options));
        Assert.Equal(new long[] { 49, raw[key].shape[1] }, raw[key].shape);
        foreach (var k in raw.Keys.Where(k => k.StartsWith("layers.3.blocks.1.", StringComparison.Ordinal)).ToList()) raw.Remove(k);
        e = Assert.Throws<ArgumentException>(() => MicrosoftSwinCheckpoint.FitToNetwork(raw, options));
        Assert.Contains("depths [2, 2, 2, 1]", e.Message);
    }

    [Fact]
    public void PresetsAreFoundByEachName()
    {
        Assert.Equal(8, SwinBackbonePreset.All.Count);
        var b = SwinBackbonePreset.Get("SWIN_BASE_PATCH4_WINDOW12_384_22K.pth");
        Assert.Same(b, SwinBackbonePreset.Get("swin_base_patch4_window12_384.ms_in22k"));
        Assert.Equal(("Swin-B", 128, 12, 384, true), (b.Variant, b.EmbedDim, b.PretrainWindowSize, b.PretrainImageSize, b.IsImageNet22k));
        Assert.Equal("https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window12_384_22k.pth", b.CheckpointUrl.ToString());
        Assert.Equal("https://github.com/SwinTransformer/storage/releases/download/v1.0.8/swin_tiny_patch4_window7_224_22k.pth",
            SwinBackbonePreset.Get("swin_tiny_patch4_window7_224.ms_in22k").CheckpointUrl.ToString());
        var o = b.ToNetworkOptions(new MtLoraNetworkOptions { SharedRank = 32 });
        Assert.Equal((128, 7, 448, 32), (o.EmbedDim, o.WindowSize, o.ImageSize, o.SharedRank));
        Assert.True(b.Fits(o));
        Assert.False(b.Fits(new MtLoraNetworkOptions()));
        var e = Assert.Throws<ArgumentException>(() => SwinBackbonePreset.Get("swin_large_patch4_window7_224"));
        Assert.Contains("unknown backbone preset 'swin_large_patch4_window7_224'; expected one of swin_tiny_patch4_window7_224, ", e.Message);
    }

    // MTLoRA r64 / task rank 4, 4 tasks, at 448 with window 7, counted by the formulas of docs/mtlora-reference.md §3.4
    // generalised to embed C, depths d_i and heads h_i (a Python script, offline): Swin body 51C + Σ blocks (12c² + 13c + 169h)
    // + Σ merging (8c² + 8c); LoRA Σ blocks 16·c·64 + Σ stages 12·c·4·4; extra 51C + Σ blocks (4c + 169h) + Σ merging (8c² + 8c);
    // decoders 4·(Σ_k out_k·ch_k + 294,840) + 34,592 with out = 2C, 4C, 8C, 8C and ch = 18, 36, 72, 144.
    // Swin-T gives the reference fixture's mtlora_r64 row (8,344,634 / 34,262,906), Swin-B's body 86,741,176 is its published
    // 87,768,224 parameters less the 1000-class head and the final norm.
    [Theory]
    [InlineData("swin_tiny_patch4_window7_224", 8_344_634L, 4_798_464L, 1_946_624L, 34_262_906L)]
    [InlineData("swin_small_patch4_window7_224_22k", 13_105_994L, 9_517_056L, 1_946_624L, 60_299_402L)]
    [InlineData("swin_base_patch4_window12_384_22k", 17_758_136L, 12_689_408L, 2_190_848L, 101_621_432L)]
    public void DescribePrintsThePresetsCounts(string name, long trainable, long lora, long decoder, long total)
    {
        var (code, stdout, stderr) = Run("describe", "--backbone-preset", name);
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(trainable, doc.RootElement.GetProperty("trainable").GetInt64());
        Assert.Equal(lora, doc.RootElement.GetProperty("lora").GetInt64());
        Assert.Equal(decoder, doc.RootElement.GetProperty("decoder").GetInt64());
        Assert.Equal(total, doc.RootElement.GetProperty("total").GetInt64());

        (code, stdout, stderr) = Run("describe", "--backbone-presets");
        Assert.True(code == 0, stderr);
        using var all = JsonDocument.Parse(stdout);
        Assert.Equal(8, all.RootElement.GetArrayLength());
        var row = all.RootElement.EnumerateArray().Single(r => r.GetProperty("preset").GetString() == name);
        Assert.Equal(trainable, row.GetProperty("trainable").GetInt64());
        Assert.Equal(total, row.GetProperty("total").GetInt64());
        // Swin-T's rows (ImageNet-1k and -22k) equal the reference's own count (param_counts_swin_tiny_448.json).
        using var fixture = JsonDocument.Parse(File.ReadAllText(Fixture.Path("param_counts_swin_tiny_448.json")));
        foreach (var t in all.RootElement.EnumerateArray().Where(r => r.GetProperty("variant").GetString() == "Swin-T"))
            Assert.Equal(fixture.RootElement.GetProperty("mtlora_r64").GetProperty("trainable").GetInt64(), t.GetProperty("trainable").GetInt64());
    }

    [Fact]
    public void DescribeAndTrainRefuseABadPresetOrAClashingConfig()
    {
        using var dir = Fixture.TempDir();
        foreach (var args in new[] { new[] { "describe" }, new[] { "train", "--out", dir.File("m.zip") } })
        {
            var (code, stdout, stderr) = Run([.. args, "--backbone-preset", "swin_huge"]);
            Assert.Equal(2, code);
            Assert.Equal("", stdout);
            Assert.Contains("--backbone-preset: unknown preset 'swin_huge'; expected one of swin_tiny_patch4_window7_224", stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
        Assert.False(File.Exists(dir.File("m.zip")));

        var config = dir.File("c.json");
        File.WriteAllText(config, """{"embed_dim": 96, "shared_rank": 16}""");
        var (c2, _, e2) = Run("describe", "--backbone-preset", "swin_base_patch4_window7_224", "--config", config);
        Assert.Equal(2, c2);
        Assert.Contains("'embed_dim' is set by --backbone-preset swin_base_patch4_window7_224", e2);
    }

    /// <summary>
    /// Writes a checkpoint as torch.save writes Microsoft's (<c>{"model": state_dict}</c> in a zip) with the key layout and shapes
    /// of the preset's Swin-B: derived buffers (relative_position_index, attn_mask for its own resolution), final norm and
    /// classifier included. To keep the file small, the weights are views at different offsets of one shared float storage
    /// (as torch.save writes views); the bias tables hold <see cref="Window12Table"/>; the index buffers are all zeros.
    /// </summary>
    private static (string Path, float[] Floats, Dictionary<string, long> Offsets) WriteMicrosoftSwinB(string path, SwinBackbonePreset preset)
    {
        int c0 = preset.EmbedDim, w = preset.PretrainWindowSize, n = w * w, side = 2 * w - 1, res0 = preset.PretrainImageSize / 4;
        var tensors = new List<(string Key, string Storage, long[] Shape)>();
        void Add(string key, params long[] shape) => tensors.Add((key, "w", shape));
        Add("patch_embed.proj.weight", c0, 3, 4, 4);
        Add("patch_embed.proj.bias", c0);
        Add("patch_embed.norm.weight", c0);
        Add("patch_embed.norm.bias", c0);
        for (int i = 0; i < 4; i++)
        {
            int c = c0 << i, res = res0 >> i, heads = preset.NumHeads[i];
            for (int j = 0; j < preset.Depths[i]; j++)
            {
                string b = $"layers.{i}.blocks.{j}";
                if (j % 2 == 1 && res > w) Add($"{b}.attn_mask", (res / w) * (res / w), n, n);
                Add($"{b}.norm1.weight", c);
                Add($"{b}.norm1.bias", c);
                tensors.Add(($"{b}.attn.relative_position_bias_table", $"t{heads}", [side * side, heads]));
                tensors.Add(($"{b}.attn.relative_position_index", "index", [n, n]));
                Add($"{b}.attn.qkv.weight", 3 * c, c);
                Add($"{b}.attn.qkv.bias", 3 * c);
                Add($"{b}.attn.proj.weight", c, c);
                Add($"{b}.attn.proj.bias", c);
                Add($"{b}.norm2.weight", c);
                Add($"{b}.norm2.bias", c);
                Add($"{b}.mlp.fc1.weight", 4 * c, c);
                Add($"{b}.mlp.fc1.bias", 4 * c);
                Add($"{b}.mlp.fc2.weight", c, 4 * c);
                Add($"{b}.mlp.fc2.bias", c);
            }
            if (i < 3)
            {
                Add($"layers.{i}.downsample.norm.weight", 4 * c);
                Add($"layers.{i}.downsample.norm.bias", 4 * c);
                Add($"layers.{i}.downsample.reduction.weight", 2 * c, 4 * c);
            }
        }
        Add("norm.weight", 8 * c0);
        Add("norm.bias", 8 * c0);
        Add("head.weight", preset.IsImageNet22k ? 21841 : 1000, 8 * c0);
        Add("head.bias", preset.IsImageNet22k ? 21841 : 1000);

        const int Spread = 65536;
        long floatCount = tensors.Where(t => t.Storage == "w").Max(t => t.Shape.Aggregate(1L, (a, d) => a * d)) + Spread;
        var floats = new float[floatCount];
        for (long k = 0; k < floatCount; k++) floats[k] = (k % 1000 - 500) / 1000f;
        var storages = new Dictionary<string, byte[]> { ["w"] = TorchZip.Floats(floats), ["index"] = new byte[n * n * 8] };
        foreach (int heads in preset.NumHeads)
            storages[$"t{heads}"] = TorchZip.Floats(Enumerable.Range(0, side * side * heads).Select(e => Window12Table(e / heads, e % heads)).ToArray());

        var offsets = new Dictionary<string, long>(StringComparer.Ordinal);
        var p = new PickleWriter().Proto().EmptyDict().Str("model").EmptyDict().Mark();
        for (int t = 0; t < tensors.Count; t++)
        {
            var (key, storage, shape) = tensors[t];
            long offset = storage == "w" ? (long)t * 7919 % Spread : 0;
            offsets[key] = offset;
            var stride = new long[shape.Length];
            long s = 1;
            for (int d = shape.Length - 1; d >= 0; d--) { stride[d] = s; s *= shape[d]; }
            long numel = storage == "w" ? floatCount : storage == "index" ? (long)n * n : side * side * int.Parse(storage[1..], System.Globalization.CultureInfo.InvariantCulture);
            p.Str(key).Tensor(storage == "index" ? "LongStorage" : "FloatStorage", storage, numel, offset, shape, stride);
        }
        p.SetItems().Op((byte)'s').Stop();
        File.WriteAllBytes(path, TorchZip.Build(p.ToArray(), storages));
        return (path, floats, offsets);
    }
}
