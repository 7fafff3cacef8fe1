using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Tests.Cli;
using MtLora.Cli.Commands;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// Numeric options that used to take the machine down (32,000 threads, a 24 GB rank, a 65536 px network) or end in a
/// stack trace (--lr 1e300): each is refused before anything is built, with one line naming the option and why.
/// </summary>
[Collection(SerialCollection.Name)]
public class OptionBoundsTests
{
    private static MtLoraNetworkOptions Tiny() => MtLoraNetworkOptions.Load(Fixture.Path("tiny4", "config.json")); // embed 16, 128 px

    [Fact]
    public void RanksAreBoundedByTheNarrowestLayerTheyAdapt()
    {
        var o = Tiny();
        o.TaskRank = 17; // stage 0 is 16 wide: proj 16 → 16, fc1 16 → 64, fc2 64 → 16
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("'task_rank' 17", e.Message);
        Assert.Contains("at most 16", e.Message);
        o.TaskRank = 16;
        o.Validate();

        o.SharedRank = 100_000;
        e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("'shared_rank' 100000", e.Message);

        // A rank no layer carries is not bounded: full fine-tuning has no adapters.
        o.Mode = NetworkMode.FullFineTune;
        o.Validate();
    }

    [Fact]
    public void ImageSizeHasAStatedMaximum()
    {
        var o = Tiny();
        o.ImageSize = MtLoraNetworkOptions.MaxImageSize; // 2048 = 4 · 8 · 4 · 16: a valid geometry for window 4
        o.Validate();
        o.ImageSize = 4096;
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("largest supported size 2048", e.Message);
    }

    [Theory]
    [InlineData(1e300)]
    [InlineData(1.5)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0.0)]
    public void LearningRateIsInASaneRange(double lr)
    {
        var o = new MtLoraOptions { Network = Tiny(), LearningRate = lr, Epochs = 2, WarmupEpochs = 1 };
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.StartsWith("MtLoraOptions.LearningRate:", e.Message);
        Assert.Contains("(0, 1]", e.Message);
        o.LearningRate = MtLoraOptions.MaxLearningRate;
        o.Validate();
    }

    [Fact]
    public void TrainingMemoryEstimateMatchesTheReferenceWithinItsStatedMargin()
    {
        // Swin-T 448, MTLoRA r64: 35.1 GiB at batch 32 in the reference (eng/benchmarks/README.md). The estimate is
        // meant to stay below what a run takes (40 of the ~51 floats per token-channel), so it refuses only what cannot fit.
        var swinT = new MtLoraNetworkOptions();
        var counts = new ParameterCounts(Trainable: 8_344_634, Lora: 0, Decoder: 0, Total: 34_262_906);
        double gib = TrainOptionChecks.EstimateTrainingBytes(swinT, counts, 32) / (double)(1L << 30);
        Assert.InRange(gib, 0.7 * 35.1, 35.1);
    }

    [Theory]
    [InlineData("--threads 100000", "--threads is 100000; it must be in 1..")]
    [InlineData("--threads 0", "--threads is 0")]
    [InlineData("--task-rank 100000", "--task-rank 100000 is larger than the narrowest layer")]
    [InlineData("--shared-rank 100000", "--shared-rank 100000 is larger than the narrowest layer")]
    [InlineData("--image-size 4096", "--image-size 4096 is above the largest supported size 2048")]
    [InlineData("--image-size 65536", "--image-size 65536 is above the largest supported size 2048")]
    [InlineData("--lr 1e300", "--lr is 1E+300; it must be in (0, 1]")]
    [InlineData("--lr 0", "--lr is 0")]
    [InlineData("--epochs 0", "--epochs is 0; it must be at least 1")]
    [InlineData("--max-steps 0", "--max-steps is 0")]
    [InlineData("--batch-size 0", "--batch-size is 0")]
    [InlineData("--warmup-epochs -1", "--warmup-epochs is -1")]
    [InlineData("--checkpoint-every 5", "--checkpoint-every is 5 but no --checkpoint-dir is set")]
    [InlineData("--checkpoint-every -1", "--checkpoint-every is -1")]
    [InlineData("--val-every -1", "--val-every is -1")]
    [InlineData("--resume {dir}/missing", "--resume: folder")]
    [InlineData("--tasks semseg,sal,semseg", "--tasks: 'semseg' is listed more than once")]
    [InlineData("--synthetic-train 999999", "--synthetic-train/--synthetic-val")]
    [InlineData("--image-size 2048 --batch-size 4096", "would need about")]
    public void EachOptionOutOfBoundsIsOneLineNamingItAndExit2(string options, string expected)
    {
        using var dir = Fixture.TempDir();
        var args = new List<string> { "train", "--out", Path.Combine(dir.Path, "m.zip"), "--cache-dir", Path.Combine(dir.Path, "cache"), "--device", "cpu" };
        args.AddRange(options.Replace("{dir}", dir.Path).Split(' '));
        var (code, stdout, stderr) = CliVerbTests.Invoke([.. args]);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("mtlora train: error: ", line);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("MtLoraOptions.", line);
        // Refused before anything was generated or written.
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "cache")), "the synthetic set was generated before the options were checked");
        Assert.False(File.Exists(Path.Combine(dir.Path, "m.zip")));
    }

    [Fact]
    public void BatchLargerThanTheDataIsRefusedBeforeTraining()
    {
        using var dir = Fixture.TempDir();
        var data = Path.Combine(dir.Path, "data");
        SyntheticPascal.Generate(data, new SyntheticPascalOptions { TrainCount = 4, ValCount = 2, Width = 48, Height = 40 });
        var (code, _, stderr) = CliVerbTests.Invoke("train", "--data", data, "--config", Fixture.Path("tiny4", "config.json"), "--batch-size", "5",
            "--device", "cpu", "--out", Path.Combine(dir.Path, "m.zip"));
        Assert.Equal(2, code);
        Assert.Contains("--batch-size is 5, more than the 4 training images", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Theory]
    [InlineData("--train", "-3", "--train:")]
    [InlineData("--size", "8x8", "--size:")]
    [InlineData("--train", "999999", "--train:")]
    public void MakeSyntheticNamesItsOwnOptions(string option, string value, string named)
    {
        using var dir = Fixture.TempDir();
        var (code, stdout, stderr) = CliVerbTests.Invoke("make-synthetic", "--out", Path.Combine(dir.Path, "set"), option, value);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(named, Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
