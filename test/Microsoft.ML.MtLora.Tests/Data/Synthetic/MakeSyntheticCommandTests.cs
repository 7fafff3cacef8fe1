using System.Text.Json;

namespace Microsoft.ML.MtLora.Tests.Data.Synthetic;

/// <summary>The <c>mtlora make-synthetic</c> verb, run in-process.</summary>
[Collection(SerialCollection.Name)]
public class MakeSyntheticCommandTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            int exit = global::MtLora.Cli.Program.BuildRoot().Parse(args).Invoke();
            return (exit, stdout.ToString(), stderr.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void WritesTheDatasetAndPrintsOneJsonSummary()
    {
        using var dir = Fixture.TempDir();
        var (exit, output, error) = Run("make-synthetic", "--out", dir.Path, "--train", "3", "--val", "2", "--size", "48x40", "--seed", "2");
        Assert.True(exit == 0, error);
        using var json = JsonDocument.Parse(output);
        var r = json.RootElement;
        Assert.Equal(3, r.GetProperty("train").GetInt32());
        Assert.Equal(2, r.GetProperty("val").GetInt32());
        Assert.Equal(48, r.GetProperty("width").GetInt32());
        Assert.Equal(40, r.GetProperty("height").GetInt32());
        Assert.Equal(2, r.GetProperty("seed").GetInt32());
        Assert.Equal(Path.GetFullPath(dir.Path), r.GetProperty("root").GetString());
        Assert.Equal(5, Directory.GetFiles(Path.Combine(dir.Path, "JPEGImages")).Length);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir.Path, "ImageSets/Context/train.txt")).Length);
    }

    [Fact]
    public void RealSizesFlagGivesPascalLikeImages()
    {
        using var dir = Fixture.TempDir();
        var (exit, output, error) = Run("make-synthetic", "--out", dir.Path, "--train", "2", "--val", "0", "--real-sizes");
        Assert.True(exit == 0, error);
        using var json = JsonDocument.Parse(output);
        Assert.True(json.RootElement.GetProperty("realSizes").GetBoolean());
        foreach (var file in Directory.GetFiles(Path.Combine(dir.Path, "JPEGImages")))
        {
            using var codec = SkiaSharp.SKCodec.Create(file);
            Assert.Equal(500, Math.Max(codec.Info.Width, codec.Info.Height));
        }
    }

    [Fact]
    public void DefaultSizeIs160x120()
    {
        using var dir = Fixture.TempDir();
        var (exit, output, _) = Run("make-synthetic", "--out", dir.Path, "--train", "1", "--val", "0");
        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(output);
        Assert.Equal((160, 120), (json.RootElement.GetProperty("width").GetInt32(), json.RootElement.GetProperty("height").GetInt32()));
        Assert.False(json.RootElement.GetProperty("realSizes").GetBoolean());
    }

    [Theory]
    [InlineData("--size", "160by120", "--size")]
    [InlineData("--train", "-3", "TrainCount")]
    [InlineData("--size", "8x8", "Width")]
    public void BadOptionsGiveAOneLineErrorAndNonZeroExit(string option, string value, string named)
    {
        using var dir = Fixture.TempDir();
        var (exit, output, error) = Run("make-synthetic", "--out", dir.Path, option, value);
        Assert.NotEqual(0, exit);
        Assert.Equal("", output);
        Assert.Contains(named, error);
        Assert.Single(error.Trim().Split('\n'));
    }
}
