using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;

using static Microsoft.ML.MtLora.Tests.CliRunner;
namespace Microsoft.ML.MtLora.Tests.Checkpoints;

public class ConvertCommandTests
{
    [Theory]
    [InlineData("model.pth")]
    [InlineData("checkpoint_wrapped.pth")]
    public void ConvertsACheckpointToSafetensors(string input)
    {
        using var dir = Fixture.TempDir();
        var output = dir.File("out.safetensors");
        var (code, stdout, stderr) = Run("convert", "--checkpoint", Fixture.Path("tiny4", input), "--out", output);
        Assert.True(code == 0, stderr);

        using var json = JsonDocument.Parse(stdout);
        var expected = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        var written = SafeTensors.Load(output, out var meta);
        try
        {
            Assert.Equal(expected.Count, json.RootElement.GetProperty("tensors").GetInt32());
            Assert.Equal(expected.Values.Sum(t => t.numel()), json.RootElement.GetProperty("parameters").GetInt64());
            Assert.Equal(Path.GetFullPath(output), json.RootElement.GetProperty("out").GetString());
            Assert.Equal(input, meta["source"]);
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), written.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, t) in expected)
                Assert.True(t.eq(written[k]).all().item<bool>(), k);
            Assert.Single(Directory.GetFiles(dir.Path)); // no temporary file left behind
        }
        finally
        {
            foreach (var t in expected.Values) t.Dispose();
            foreach (var t in written.Values) t.Dispose();
        }
    }

    [Fact]
    public void RefusesAMaliciousCheckpointAndWritesNothing()
    {
        using var dir = Fixture.TempDir();
        var input = dir.File("evil.pth");
        File.WriteAllBytes(input, TorchZip.Build(new PickleWriter().Proto().Global("posix", "system").Str("id").Op(0x85).Reduce().Stop().ToArray()));
        var output = dir.File("out.safetensors");
        var (code, stdout, stderr) = Run("convert", "--checkpoint", input, "--out", output);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains("refusing to load global 'posix.system'", stderr);
        Assert.Contains(input, stderr);
        Assert.False(File.Exists(output));

        (code, _, stderr) = Run("convert", "--checkpoint", dir.File("missing.pth"), "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("does not exist", stderr);
    }
}
