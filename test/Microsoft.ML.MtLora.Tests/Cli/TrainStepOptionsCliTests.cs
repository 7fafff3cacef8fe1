using System.Globalization;
using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>
/// <c>mtlora train</c>'s step options: <c>--accumulation-steps</c>, <c>--augmentation</c>, <c>--nonfinite-loss</c>, and
/// <c>--bf16</c> refused on the CPU before any data is read. The maths behind them is tested on the library
/// (GradientAccumulationTests, the augmentation geometry tests, the trainer's non-finite loss tests); these check that the
/// command line reaches it.
/// </summary>
// Training seeds torch's global generator (as Fit does): run alone.
[Collection(SerialCollection.Name)]
public class TrainStepOptionsCliTests(TinyPascal data) : IClassFixture<TinyPascal>
{
    private static string OneLineError(int code, string stderr)
    {
        Assert.True(code == 2, $"exit code {code}: {stderr}");
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        return Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora train: error:", StringComparison.Ordinal));
    }

    [Fact]
    public void Bfloat16OnTheCpuIsRefusedBeforeAnyDataIsGenerated()
    {
        using var dir = Fixture.TempDir();
        var cache = dir.File("cache");
        // --device cpu is refused by the options' own check; the default device "auto" resolves to the CPU here (no CUDA
        // libtorch in the test run) and is refused once it is resolved, still before the data.
        foreach (var (device, expected) in new[] { ("cpu", "MtLoraOptions.UseBFloat16: bfloat16 needs a CUDA device"), ("auto", "--bf16 needs a CUDA device; the device is cpu") })
        {
            if (device == "auto" && TorchSharp.torch.cuda.is_available()) continue;          // "auto" is CUDA there, where bfloat16 is allowed
            var (code, _, stderr) = CliRunner.Run("train", "--bf16", "--device", device, "--cache-dir", cache, "--out", dir.File("model.zip"));
            Assert.Contains(expected, OneLineError(code, stderr), StringComparison.Ordinal);
            Assert.False(Directory.Exists(cache), "the synthetic data set was generated before the option was refused");
            Assert.False(File.Exists(dir.File("model.zip")));
        }
    }

    [Theory]
    [InlineData(new[] { "--accumulation-steps", "0" }, "AccumulationSteps")]
    [InlineData(new[] { "--accumulation-steps", "3" }, "AccumulationSteps")]             // does not divide --batch-size 2
    [InlineData(new[] { "--augmentation", "fast" }, "--augmentation: unknown value 'fast'")]
    [InlineData(new[] { "--nonfinite-loss", "ignore" }, "--nonfinite-loss: unknown value 'ignore'")]
    public void BadStepOptionsAreOneLineNamingTheOption(string[] option, string expected)
    {
        using var dir = Fixture.TempDir();
        var (code, _, stderr) = CliRunner.Run(data.Train(dir.File("model.zip"), option));
        Assert.Contains(expected, OneLineError(code, stderr), StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("model.zip")));
    }

    /// <summary>The first step's total loss from the run's training_log.csv (header step,epoch,learning_rate,total_loss,…).</summary>
    private (double Loss, JsonObject Report) TrainOneStep(params string[] more)
    {
        using var dir = Fixture.TempDir();
        var logs = dir.File("logs");
        var (code, stdout, stderr) = CliRunner.Run(data.Train(dir.File("model.zip"), ["--max-steps", "1", "--val-every", "0", "--log-dir", logs, .. more]));
        Assert.True(code == 0, stderr);
        var rows = File.ReadAllLines(Path.Combine(logs, "training_log.csv"));
        Assert.Equal(2, rows.Length);                                                      // header + step 1
        Assert.Equal("total_loss", rows[0].Split(',')[3]);
        return (double.Parse(rows[1].Split(',')[3], CultureInfo.InvariantCulture), JsonNode.Parse(stdout)!.AsObject());
    }

    [Fact]
    public void TheStepOptionsReachTheTrainer()
    {
        var (singlePass, report) = TrainOneStep();
        Assert.Equal(1, report["steps"]!.GetValue<long>());
        // The reference's two-step warp interpolates the image twice: the same seed's first batch, hence its loss, differs.
        var (twoStep, _) = TrainOneStep("--augmentation", "reference-two-step");
        Assert.NotEqual(singlePass, twoStep);
        // Two micro-batches of one image: one optimizer step over the same two images. Each micro-batch's loss is a mean
        // over its own pixels, so the step's loss is close to, but not bit-equal with, the whole batch's.
        var (accumulated, accumulatedReport) = TrainOneStep("--accumulation-steps", "2");
        Assert.Equal(1, accumulatedReport["steps"]!.GetValue<long>());
        Assert.True(double.IsFinite(accumulated) && Math.Abs(accumulated - singlePass) < 0.25 * singlePass,
            $"accumulated loss {accumulated} vs whole batch {singlePass}");
        // SkipStep with finite losses changes nothing.
        var (skip, skipReport) = TrainOneStep("--nonfinite-loss", "skip-step");
        Assert.Equal(singlePass, skip);
        Assert.Equal(0, skipReport["skipped_steps"]!.GetValue<long>());
    }
}
