using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Checkpoints.Pickle;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Checkpoints;

public class PyTorchCheckpointTests
{
    private static void AssertBitEqual(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal)); // same names (order: see the meta.json check)
        foreach (var (k, e) in expected)
        {
            var a = actual[k];
            Assert.Equal(e.dtype, a.dtype);
            Assert.Equal(e.shape, a.shape);
            using var ec = e.contiguous();
            using var ac = a.contiguous();
            Assert.True(ec.bytes.SequenceEqual(ac.bytes), $"tensor '{k}' differs");
        }
    }

    private static void DisposeAll(IEnumerable<Tensor> tensors)
    {
        foreach (var t in tensors) t.Dispose();
    }

    [Fact]
    public void ModelPthEqualsSafetensorsBitForBit()
    {
        var st = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try
        {
            using var ckpt = PyTorchCheckpoint.Load(Fixture.Path("tiny4", "model.pth"));
            Assert.Equal("model", ckpt.ArchiveName);
            var root = Assert.IsType<PickleDictionary>(ckpt.Root);
            Assert.True(root.IsOrderedDict);
            Assert.IsType<PickleDictionary>(root.Attributes["_metadata"]); // state_dict()'s per-module versions, via BUILD
            AssertBitEqual(st, ckpt.GetStateDict());

            // The key list is the reference's, in the reference's order.
            using var meta = JsonDocument.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json")));
            var keys = meta.RootElement.GetProperty("state_dict_keys").EnumerateArray().Select(e => e.GetString()!).ToArray();
            Assert.Equal(keys, ckpt.GetStateDict().Keys);
            Assert.Equal(ScalarType.Int64, ckpt.GetStateDict()["backbone.layers.0.blocks.0.attn.relative_position_index"].dtype);
        }
        finally { DisposeAll(st.Values); }
    }

    [Fact]
    public void WrappedCheckpointIsUnwrappedAndKeepsItsOtherEntries()
    {
        var st = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        var sd = StateDictFile.Load(Fixture.Path("tiny4", "checkpoint_wrapped.pth"));
        try
        {
            AssertBitEqual(st, sd);
            using var ckpt = PyTorchCheckpoint.Load(Fixture.Path("tiny4", "checkpoint_wrapped.pth"));
            var root = Assert.IsType<PickleDictionary>(ckpt.Root);
            Assert.Equal(new object[] { "model", "epoch", "max_accuracy", "config" }, root.Keys.ToArray());
            Assert.Equal(3L, root["epoch"]);
            Assert.Equal(0.5, root["max_accuracy"]);
            Assert.Equal("tiny", root["config"]);
        }
        finally
        {
            DisposeAll(st.Values);
            DisposeAll(sd.Values);
        }
    }

    [Fact]
    public void TakenTensorsOutliveTheCheckpoint()
    {
        Dictionary<string, Tensor> sd;
        using (var ckpt = PyTorchCheckpoint.Load(Fixture.Path("tiny4", "model.pth")))
            sd = ckpt.TakeStateDict();
        var st = StateDictFile.Load(Fixture.Path("tiny4", "model.safetensors"));
        try { AssertBitEqual(st, sd); }
        finally
        {
            DisposeAll(st.Values);
            DisposeAll(sd.Values);
        }
    }

    [Fact]
    public void ViewsOffsetsStridesSharedStoragesModulePrefixAndNestedOptimizerState()
    {
        // {'model': OrderedDict(module.a = s0[0:6] as (2, 3), module.at = its transpose (3, 2) stride (1, 3),
        //                       module.tail = s0[4:6], module.i = s1 (int64)),
        //  'optimizer': {'state': {0: {'exp_avg': tensor}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}, 'epoch': 7}
        var w = new PickleWriter().Proto().EmptyDict().Mark();
        w.Str("model").OrderedDict().Mark();
        w.Str("module.a").Tensor("FloatStorage", "0", 6, 0, [2, 3], [3, 1]);
        w.Str("module.at").Tensor("FloatStorage", "0", 6, 0, [3, 2], [1, 3]);
        w.Str("module.tail").Tensor("FloatStorage", "0", 6, 4, [2], [1]);
        w.Str("module.i").Tensor("LongStorage", "1", 2, 0, [2], [1]);
        w.SetItems();
        w.Str("optimizer").EmptyDict().Mark()
            .Str("state").EmptyDict().Int(0).EmptyDict().Str("exp_avg").Tensor("FloatStorage", "2", 1, 0, [1], [1]).Op((byte)'s').Op((byte)'s')
            .Str("param_groups").EmptyList().EmptyDict().Mark().Str("lr").Float(0.1).Str("params").EmptyList().Int(0).Op((byte)'a').SetItems().Op((byte)'a')
            .SetItems();
        w.Str("epoch").Int(7).SetItems().Stop();
        var storages = new Dictionary<string, byte[]>
        {
            ["0"] = TorchZip.Floats(0, 1, 2, 3, 4, 5),
            ["1"] = [.. BitConverter.GetBytes(-3L), .. BitConverter.GetBytes(long.MaxValue)],
            ["2"] = TorchZip.Floats(42),
        };
        using var dir = Fixture.TempDir();
        var file = dir.File("views.pth");
        File.WriteAllBytes(file, TorchZip.Build(w.ToArray(), storages));

        var sd = StateDictFile.Load(file);
        try
        {
            Assert.Equal(new[] { "a", "at", "tail", "i" }, sd.Keys);
            using var expectedA = torch.arange(6, dtype: ScalarType.Float32).reshape(2, 3);
            Assert.True(sd["a"].eq(expectedA).all().item<bool>());
            Assert.True(sd["at"].eq(expectedA.t()).all().item<bool>());
            Assert.Equal(new long[] { 1, 3 }, sd["at"].stride());
            Assert.Equal(new[] { 4f, 5f }, sd["tail"].data<float>().ToArray());
            Assert.Equal(new[] { -3L, long.MaxValue }, sd["i"].data<long>().ToArray());
            // Views of one storage share memory, as torch.load gives them.
            sd["a"][0, 1] = torch.tensor(9f);
            Assert.Equal(9f, sd["at"][1, 0].item<float>());
        }
        finally { DisposeAll(sd.Values); }

        using var ckpt = PyTorchCheckpoint.Load(file);
        var root = (PickleDictionary)ckpt.Root!;
        var opt = (PickleDictionary)root["optimizer"]!;
        var state0 = (PickleDictionary)((PickleDictionary)opt["state"]!)[0L]!;
        Assert.Equal(42f, ((Tensor)state0["exp_avg"]!).item<float>());
        var group = (PickleDictionary)((PickleSequence)opt["param_groups"]!)[0]!;
        Assert.Equal(0.1, group["lr"]);
    }

    [Fact]
    public void ParametersAndTorchSizeAreRebuilt()
    {
        // {'p': _rebuild_parameter(_rebuild_tensor_v2(..., size=torch.Size((2,)), ...), True, OrderedDict()), 'shape': torch.Size((3, 4))}
        var w = new PickleWriter().Proto().EmptyDict().Mark();
        w.Str("p").Global("torch._utils", "_rebuild_parameter").Mark().Tensor("HalfStorage", "0", 2, 0, [2], [1]).Op(0x88).OrderedDict().Tuple().Reduce();
        w.Str("shape").Global("torch", "Size").IntTuple(3, 4).Op(0x85).Reduce();
        w.SetItems().Stop();
        using var dir = Fixture.TempDir();
        var file = dir.File("param.pth");
        File.WriteAllBytes(file, TorchZip.Build(w.ToArray(), new Dictionary<string, byte[]> { ["0"] = [0x00, 0x3c, 0x00, 0xc0] })); // 1.0, -2.0 in fp16

        using var ckpt = PyTorchCheckpoint.Load(file);
        var root = (PickleDictionary)ckpt.Root!;
        var p = Assert.IsType<Tensor>(root["p"]);
        Assert.Equal(ScalarType.Float16, p.dtype);
        using var pf = p.to(ScalarType.Float32);
        Assert.Equal(new[] { 1f, -2f }, pf.data<float>().ToArray());
        Assert.Equal(new object[] { 3L, 4L }, ((PickleSequence)root["shape"]!).ToArray());
        var e = Assert.Throws<InvalidDataException>(() => ckpt.GetStateDict());
        Assert.Contains("state dict entry 'shape' holds a tuple, not a tensor", e.Message);
    }

    public static TheoryData<string, string> EvilGlobals => new()
    {
        { "posix", "system" },
        { "builtins", "eval" },
        { "subprocess", "check_output" },
        { "torch", "load" }, // torch itself, but not a rebuild function
    };

    [Theory]
    [MemberData(nameof(EvilGlobals))]
    public void MaliciousCheckpointIsRefusedWithFileAndGlobal(string module, string name)
    {
        // A zip exactly like torch.save's whose data.pkl calls module.name('echo pwned') while building the state dict.
        var w = new PickleWriter().Proto().OrderedDict().Mark()
            .Str("w").Tensor("FloatStorage", "0", 1, 0, [1], [1])
            .Str("evil").Global(module, name).Str("echo pwned").Op(0x85).Reduce()
            .SetItems().Stop();
        using var dir = Fixture.TempDir();
        var file = dir.File("x.pth");
        File.WriteAllBytes(file, TorchZip.Build(w.ToArray(), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) }));

        var e = Assert.Throws<InvalidDataException>(() => PyTorchCheckpoint.Load(file));
        Assert.Equal($"'{file}': refusing to load global '{module}.{name}' (only tensor/storage rebuilds, OrderedDict and plain containers are allowed).", e.Message);
        Assert.Equal($"{module}.{name}", e.Data[PyTorchCheckpoint.RefusedGlobalKey]);
        var e2 = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
        Assert.Contains($"'{module}.{name}'", e2.Message);
    }

    [Fact]
    public void RawPicklesAreNotRead()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("legacy.pth");
        // A non-zip pickle: what a legacy torch.save or a hand-made exploit looks like.
        File.WriteAllBytes(file, new PickleWriter().Proto().Global("posix", "system").Str("ls").Op(0x85).Reduce().Stop().ToArray());
        var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
        Assert.Contains(file, e.Message);
        Assert.Contains("raw pickle", e.Message);
        Assert.Contains("legacy (pre-1.6)", e.Message);

        File.WriteAllBytes(file, "not a checkpoint at all"u8.ToArray());
        e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
        Assert.Contains("neither a torch.save checkpoint (zip) nor a safetensors file", e.Message);
    }

    [Fact]
    public void StrictOptionsRefuseTheReferenceConfigObject()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("train.pth");
        File.WriteAllBytes(file, TorchZip.Build(Convert.FromBase64String(SafeUnpicklerTests.YacsPickle)));
        Assert.Empty(StateDictFile.Load(file)); // {"model": {}, "config": CfgNode}: the config is inert data
        var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file, CheckpointReadOptions.Default));
        Assert.Contains("'yacs.config.CfgNode'", e.Message);
    }

    [Fact]
    public void BadArchivesNameTheFileAndTheProblem()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("bad.pth");
        var ok = new PickleWriter().Proto().OrderedDict().Mark().Str("w").Tensor("FloatStorage", "0", 2, 0, [2], [1]).SetItems().Stop().ToArray();

        void Expect(byte[] zip, string part)
        {
            File.WriteAllBytes(file, zip);
            var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
            Assert.Contains(file, e.Message);
            Assert.Contains(part, e.Message);
        }

        Expect(TorchZip.Build(ok, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2) }, byteOrder: "big"), "'big'-endian");
        Expect(TorchZip.Build(ok, new Dictionary<string, byte[]>()), "no zip entry 'archive/data/0'");
        Expect(TorchZip.Build(ok, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) }), "needs 8 bytes but zip entry 'archive/data/0' has 4");
        var past = new PickleWriter().Proto().OrderedDict().Mark().Str("w").Tensor("FloatStorage", "0", 2, 1, [2], [1]).SetItems().Stop().ToArray();
        Expect(TorchZip.Build(past, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2) }), "reaches past storage '0'");
        var notTensor = new PickleWriter().Proto().OrderedDict().Mark().Str("w").Int(3).SetItems().Stop().ToArray();
        Expect(TorchZip.Build(notTensor), "state dict entry 'w' holds an int, not a tensor");
        // A zip bomb: 4 MB of zeros deflated into a few kB.
        var bomb = new PickleWriter().Proto().OrderedDict().Mark().Str("w").Tensor("FloatStorage", "0", 1 << 20, 0, [1 << 20], [1]).SetItems().Stop().ToArray();
        Expect(TorchZip.Build(bomb, new Dictionary<string, byte[]> { ["0"] = new byte[4 << 20] }, storageCompression: System.IO.Compression.CompressionLevel.Optimal), "more than the file's");
        Expect(TorchZip.Rewrite(TorchZip.Build(ok, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2) }), (n, b) => n.EndsWith("data.pkl") ? null : b), "without '<archive>/data.pkl'");
    }

    [Fact]
    public void TruncatedFilesAreInvalidDataNamingTheFile()
    {
        var bytes = File.ReadAllBytes(Fixture.Path("tiny4", "model.pth"));
        using var dir = Fixture.TempDir();
        var file = dir.File("cut.pth");
        foreach (int n in new[] { 1, 2, 30, bytes.Length / 3, bytes.Length / 2, bytes.Length - 100, bytes.Length - 22, bytes.Length - 1 })
        {
            File.WriteAllBytes(file, bytes[..n]);
            var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
            Assert.Contains(file, e.Message);
        }

        // A zip that is whole but whose data.pkl stops half-way.
        File.WriteAllBytes(file, TorchZip.Rewrite(bytes, (n, b) => n.EndsWith("/data.pkl") ? b[..(b.Length / 2)] : b));
        var cut = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
        Assert.Contains(file, cut.Message);
        Assert.Contains("truncated", cut.Message);
    }

    [Fact]
    public void RandomByteFlipsInDataPklOnlyEverGiveInvalidData()
    {
        var zip = File.ReadAllBytes(Fixture.Path("swin_ms", "swin_ms_format.pth"));
        var pickle = TorchZip.Entry(zip, "/data.pkl");
        var rng = new Random(1234);
        int refused = 0, loaded = 0;
        for (int iter = 0; iter < 200; iter++)
        {
            var bad = (byte[])pickle.Clone();
            int flips = 1 + rng.Next(3);
            for (int f = 0; f < flips; f++) bad[rng.Next(bad.Length)] ^= (byte)(1 << rng.Next(8));
            var file = TorchZip.Rewrite(zip, (n, b) => n.EndsWith("/data.pkl") ? bad : b);
            using var stream = new MemoryStream(file);
            try
            {
                using var ckpt = PyTorchCheckpoint.Read(stream, "fuzz.pth");
                loaded++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains("'fuzz.pth'", e.Message);
                refused++;
            }
        }
        Assert.Equal(200, refused + loaded);
        Assert.True(refused > 50, $"only {refused} of 200 corrupted pickles were refused");
    }
}
