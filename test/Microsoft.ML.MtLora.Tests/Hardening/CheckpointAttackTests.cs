using System.Text;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Checkpoints.Pickle;
using Microsoft.ML.MtLora.Tests.Checkpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// Issue #15, crafted weights files: tensor records that made libtorch abort the process, members whose CRC does not
/// match, pickles that ask for memory without bound, and safetensors headers that break the format's rules. Each is
/// refused with an <see cref="InvalidDataException"/> naming the file, before any large allocation.
/// </summary>
public class CheckpointAttackTests
{
    private static byte[] OneTensorPickle(long numel, long[] size, long[] stride) =>
        new PickleWriter().Proto().OrderedDict().Mark().Str("w").Tensor("FloatStorage", "0", numel, 0, size, stride).SetItems().Stop().ToArray();

    private static InvalidDataException LoadFails(string file, byte[] bytes)
    {
        File.WriteAllBytes(file, bytes);
        var e = Assert.Throws<InvalidDataException>(() => StateDictFile.Load(file));
        Assert.Contains(file, e.Message);
        return e;
    }

    [Fact]
    public void ZeroStrideExpansionOfATinyStorageIsRefusedBeforeLibtorchSeesIt()
    {
        using var dir = Fixture.TempDir();
        // One float stored, viewed as 2^40 floats through stride 0: a ~540-byte file that made a later copy ask libtorch
        // for 4 TiB, and "DefaultCPUAllocator: can't allocate memory" aborted the process.
        var bomb = TorchZip.Build(OneTensorPickle(1, [1L << 40], [0]), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) });
        Assert.True(bomb.Length < 700, $"{bomb.Length} bytes");
        var e = LoadFails(dir.File("stride0.pth"), bomb);
        Assert.Contains("zero-stride expansion", e.Message);

        // Sizes whose extent overflows: libtorch's "Storage size calculation overflowed", also when another dimension is empty.
        e = LoadFails(dir.File("overflow.pth"), TorchZip.Build(OneTensorPickle(1, [3, 1L << 62], [1L << 62, 0]), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) }));
        Assert.Contains("overflows 64 bits", e.Message);
        e = LoadFails(dir.File("empty.pth"), TorchZip.Build(OneTensorPickle(1, [0, 1L << 62, 8], [1, 1L << 62, 1]), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) }));
        Assert.Contains("overflows 64 bits", e.Message);

        // The command line says it in one line with exit code 2.
        var (code, stdout, stderr) = CliRunner.Run("convert", "--checkpoint", dir.File("stride0.pth"), "--out", dir.File("out.safetensors"));
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains("zero-stride expansion", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora convert: error:", StringComparison.Ordinal)));
        Assert.False(File.Exists(dir.File("out.safetensors")));
    }

    [Fact]
    public void AMemberWhoseBytesDoNotMatchItsCrcIsRefused()
    {
        using var dir = Fixture.TempDir();
        var pickle = OneTensorPickle(2, [2], [1]);
        var zip = TorchZip.Build(pickle, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1.5f, -2.25f) });
        // torch.save stores members uncompressed: a flipped bit in a weight changes the weight and nothing else, so
        // only the CRC-32 the zip records can tell (this loaded silently before).
        int at = CraftedFiles.IndexOf(zip, TorchZip.Floats(1.5f, -2.25f));
        zip[at + 1] ^= 0x10;
        var e = LoadFails(dir.File("flipped.pth"), zip);
        Assert.Contains("archive/data/0", e.Message);
        Assert.Contains("CRC-32", e.Message);

        // The pickle member too.
        zip = TorchZip.Build(pickle, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1.5f, -2.25f) });
        zip[CraftedFiles.IndexOf(zip, "storage"u8) + 2] ^= 0x01;
        e = LoadFails(dir.File("pickle.pth"), zip);
        Assert.Contains("data.pkl", e.Message);
        Assert.Contains("CRC-32", e.Message);

        // ZipIntegrity.Verify checks every member of any zip (the command line runs it on a model.zip before loading it).
        var verify = Assert.Throws<InvalidDataException>(() => ZipIntegrity.Verify(dir.File("flipped.pth")));
        Assert.Contains("archive/data/0", verify.Message);
        File.WriteAllBytes(dir.File("ok.pth"), TorchZip.Build(pickle, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1.5f, -2.25f) }));
        ZipIntegrity.Verify(dir.File("ok.pth"));
    }

    [Fact]
    public void APickleThatCopiesOneListAgainAndAgainIsRefusedWithinItsBudget()
    {
        // [pairs] once (6 bytes per distinct pair), then OrderedDict(pairs) kept in a list M times (7 bytes each): CPython
        // and the old reader build M·N dictionary entries from 6N + 7M bytes, here 20,000^2 = 400 million (~20 GB).
        const int n = 20_000, m = 20_000;
        var w = new PickleWriter().Proto().Global("collections", "OrderedDict").Put(0).Op((byte)'0');
        w.EmptyList().Put(1).Mark();
        for (int i = 0; i < n; i++) w.Int(i).Int(i).Op(0x86); // (i, i)
        w.Op((byte)'e').Op((byte)'0');                         // APPENDS, POP (the list stays in memo 1)
        w.EmptyList();
        for (int i = 0; i < m; i++) w.Get(0).Get(1).Op(0x85).Reduce().Op((byte)'a');
        var pickle = w.Stop().ToArray();

        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(pickle, "copies.pkl").Load());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("'copies.pkl'", e.Message);
        Assert.Contains("objects and container items", e.Message);
        // The budget: 4 per byte plus 65,536, about 200 bytes each at most.
        long budget = SafeUnpickler.BaseUnits + SafeUnpickler.UnitsPerByte * pickle.Length;
        Assert.True(allocated < 200 * budget, $"allocated {allocated:N0} bytes for a {pickle.Length:N0}-byte pickle");

        // A plain pickle of the same size is far inside the budget: the torch.save fixture uses 0.3 units per byte.
        var reference = new SafeUnpickler(TorchZip.Entry(File.ReadAllBytes(Fixture.Path("tiny4", "model.pth")), "data.pkl"), "model.pth", new CountingHost());
        reference.Load();
        Assert.InRange(reference.UnitsUsed, 1, TorchZip.Entry(File.ReadAllBytes(Fixture.Path("tiny4", "model.pth")), "data.pkl").Length);
    }

    [Fact]
    public void AFloodOfEmptyContainersCostsMemoryInProportionToTheFile()
    {
        // 1 MiB of EMPTY_LIST opcodes: each is one object (about 90 bytes), well inside the budget; memory stays linear.
        var pickle = Enumerable.Repeat((byte)']', 1 << 20).Append((byte)'.').ToArray();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(pickle, "lists.pkl").Load());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("extra item(s)", e.Message);
        Assert.True(allocated < 200L * pickle.Length, $"allocated {allocated:N0} bytes for a {pickle.Length:N0}-byte pickle");

        // A legitimate bulk insertion (ADDITEMS of 100,000 marked items into a set) costs 2 units per byte: allowed.
        var w = new PickleWriter().Proto().Op(0x8f).Mark();
        for (int i = 0; i < 100_000; i++) w.Op(0x88); // True, 1 byte each
        var sets = w.Op(0x90).Stop().ToArray();
        new SafeUnpickler(sets, "set.pkl").Load(); // 200,000 units for 100,005 bytes: allowed
    }

    /// <summary>Accepts the torch globals of a torch.save pickle and builds nothing: counts what the pickle itself costs.</summary>
    private sealed class CountingHost : IPickleHost
    {
        private sealed class Callable(string name) : PickleCallable
        {
            public override string FullName => name;
        }

        public PickleCallable? ResolveGlobal(string module, string name) => new Callable(module + "." + name);

        public object? Call(PickleCallable callable, PickleSequence args) => callable.FullName;

        public object? PersistentLoad(object? pid) => "storage";
    }
}

/// <summary>Issue #15: safetensors files that break the format's rules, and tensors over 2 GiB.</summary>
public class SafeTensorsAttackTests
{
    private static void Write(string file, string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(file, [.. BitConverter.GetBytes((long)json.Length), .. json, .. new byte[dataBytes]]);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlaps")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, "belong to no tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "belong to no tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8, "after the last tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "overlaps")]
    // A tensor over 2 GiB whose data is not there: a message naming it, not .NET's "Span only supports up to int.MaxValue".
    [InlineData("""{"big":{"dtype":"F32","shape":[600000000],"data_offsets":[0,2400000000]}}""", 16, "tensor 'big' ends at byte 2400000000")]
    public void HolesOverlapsAndMissingDataAreRefusedAsTheFormatRequires(string header, int dataBytes, string expected)
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("bad.safetensors");
        Write(file, header, dataBytes);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
        Assert.Contains(file, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AHeaderWithTooManyEntriesIsRefusedWithBoundedMemory()
    {
        // 200,000 zero-size entries (11 MB of header): the old reader built a JSON tree of about 0.7 GB for it.
        using var dir = Fixture.TempDir();
        var file = dir.File("many.safetensors");
        using (var s = File.Create(file))
        {
            var json = new StringBuilder("{");
            for (int i = 0; i < 200_000; i++) json.Append(i == 0 ? "" : ",").Append("\"t").Append(i).Append("\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}");
            var bytes = Encoding.UTF8.GetBytes(json.Append('}').ToString());
            s.Write(BitConverter.GetBytes((long)bytes.Length));
            s.Write(bytes);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains($"more than {SafeTensors.MaxTensors} tensors", e.Message);
        Assert.True(allocated < 4 * new FileInfo(file).Length + (64 << 20), $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void TensorsAreReadAndWrittenInSlicesSoOver2GiBWorks()
    {
        // The same code path as a tensor over 2 GiB, with 12-byte slices instead of 1 GiB ones.
        using var source = arange(10, dtype: ScalarType.Float32);
        using var buffer = new MemoryStream();
        TensorBytes.Write(buffer, source, sliceBytes: 12);
        Assert.Equal(40, buffer.Length);
        buffer.Position = 0;
        using var back = empty(10, ScalarType.Float32);
        TensorBytes.Read(buffer, back, sliceBytes: 12);
        Assert.Equal(source.data<float>().ToArray(), back.data<float>().ToArray());
        buffer.Position = 20;
        Assert.Throws<EndOfStreamException>(() => TensorBytes.Read(buffer, back, sliceBytes: 12));
    }
}
