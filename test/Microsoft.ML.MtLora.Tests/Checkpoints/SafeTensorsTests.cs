using Microsoft.ML.MtLora.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Checkpoints;

public class SafeTensorsTests
{
    [Fact]
    public void ReadsReferenceFixture()
    {
        var io = SafeTensors.Load(Fixture.Path("tiny4", "io.safetensors"));
        try
        {
            Assert.Equal(new long[] { 2, 3, 128, 128 }, io["input"].shape);
            Assert.Equal(new long[] { 2, 21, 128, 128 }, io["out.semseg"].shape);
            Assert.Equal(ScalarType.Float32, io["input"].dtype);
            // Normalised ImageNet input: finite values of moderate size, not all equal.
            Assert.True(io["input"].abs().max().item<float>() < 10f);
            Assert.True(io["input"].std().item<float>() > 0.1f);
        }
        finally { foreach (var t in io.Values) t.Dispose(); }
    }

    [Fact]
    public void RoundTripsEveryDtypeAndMetadata()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("x.safetensors");
        var src = new Dictionary<string, Tensor>
        {
            ["f32"] = torch.arange(12, dtype: ScalarType.Float32).reshape(3, 4),
            ["f64"] = torch.tensor(new[] { 1.5, -2.25 }),
            ["bf16"] = torch.tensor(new[] { 0.5f, 3f }).to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { long.MaxValue, -7 }),
            ["u8"] = torch.tensor(new byte[] { 0, 255, 7 }),
            ["bool"] = torch.tensor(new[] { true, false }),
            ["scalar"] = torch.tensor(3.25f),
            ["empty"] = torch.zeros(0, 5),
        };
        SafeTensors.Save(file, src, new Dictionary<string, string> { ["format"] = "pt" });
        var back = SafeTensors.Load(file, out var meta);
        Assert.Equal("pt", meta["format"]);
        Assert.Equal(src.Keys, back.Keys);
        foreach (var (k, v) in src)
        {
            Assert.Equal(v.dtype, back[k].dtype);
            Assert.Equal(v.shape, back[k].shape);
            Assert.True(v.eq(back[k]).all().item<bool>(), k);
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void TruncatedFileNamesTheTensor()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("t.safetensors");
        var bytes = File.ReadAllBytes(Fixture.Path("tiny4", "model.safetensors"));
        File.WriteAllBytes(file, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(file, e.Message);
    }

    [Fact]
    public void GarbageHeaderIsRefused()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("g.safetensors");
        File.WriteAllBytes(file, [16, 0, 0, 0, 0, 0, 0, 0, .. "{not json at all"u8.ToArray()]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
        Assert.Contains("JSON", e.Message);
        File.WriteAllBytes(file, [0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2]);
        Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
    }

    [Fact]
    public void RandomByteFlipsInTheHeaderOnlyEverGiveInvalidData()
    {
        var bytes = File.ReadAllBytes(Fixture.Path("tiny4", "model.safetensors"));
        int headerEnd = 8 + (int)BitConverter.ToInt64(bytes, 0);
        var rng = new Random(4321);
        const string file = "flip.safetensors";
        int refused = 0;
        for (int iter = 0; iter < 200; iter++)
        {
            var bad = (byte[])bytes.Clone();
            for (int f = 1 + rng.Next(3); f > 0; f--) bad[rng.Next(headerEnd)] ^= (byte)(1 << rng.Next(8));
            try
            {
                using var stream = new MemoryStream(bad);
                foreach (var t in SafeTensors.Read(stream, file, out _).Values) t.Dispose();
            }
            catch (InvalidDataException e)
            {
                Assert.Contains(file, e.Message);
                refused++;
            }
        }
        Assert.True(refused > 100, $"only {refused} of 200 damaged headers were refused");
    }

    [Fact]
    public void WrongJsonTypesAreInvalidData()
    {
        using var dir = Fixture.TempDir();
        var file = dir.File("types.safetensors");
        foreach (var header in new[]
        {
            """{"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}}""",
            """{"a":{"dtype":"F32","shape":["x"],"data_offsets":[0,4]}}""",
            """{"a":{"dtype":"F32","shape":[null],"data_offsets":[0,4]}}""",
            """{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""",
            """{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}""",
            """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""",
        })
        {
            var json = System.Text.Encoding.UTF8.GetBytes(header);
            File.WriteAllBytes(file, [.. BitConverter.GetBytes((long)json.Length), .. json, 0, 0, 0, 0]);
            var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(file));
            Assert.Contains(file, e.Message);
        }
    }
}
