using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// Issue #15, "crashes where a message was due": every damaged dataset file gives the same one line (file and reason) and
/// exit code 2 from <c>inspect-data</c>, <c>evaluate</c> and <c>train</c>, never an unhandled exception (which aborts the
/// process with SIGABRT and a stack trace) and never a silent misread.
/// </summary>
// Training seeds torch's global generator: run alone (see SerialCollection).
[Collection(SerialCollection.Name)]
public class CorruptDatasetTests(HardeningData data) : IClassFixture<HardeningData>
{
    public static TheoryData<string, string> Faults => new()
    {
        { "truncated-jpeg", "IncompleteInput" },
        { "empty-jpeg", "cannot decode" },
        { "garbage-jpeg", "cannot decode" },
        { "rgb-semseg", "RGB image" },
        { "truncated-png", "truncated" },
        { "idat-crc", "CRC" },
        { "png-16bit-300", "16-bit value 300" },   // once read as class 1 (its high byte), silently
        { "class-id-30", "class id 30" },          // once counted by inspect-data as a class, silently
        { "png-bomb", "178,956,970-pixel limit" },
        { "truncated-parts-mat", "truncated" },
        { "wrong-struct-parts-mat", "expected a struct array" },
        { "truncated-context-mat", "truncated" },
        { "v73-context-mat", "v7.3" },
    };

    /// <summary>The one line a verb printed on stderr, without its "mtlora verb: error: " prefix.</summary>
    private static string Reason(string stderr, string verb)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("inspect-data: ", StringComparison.Ordinal)
            && !l.StartsWith("evaluating ", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(lines);
        string prefix = $"mtlora {verb}: error: ";
        Assert.StartsWith(prefix, line);
        Assert.DoesNotContain("   at ", stderr);
        return line[prefix.Length..].TrimEnd();
    }

    [Theory]
    [MemberData(nameof(Faults))]
    public void InspectDataAndEvaluateGiveTheSameLineAndExitCode2(string fault, string reason)
    {
        using var dir = Fixture.TempDir();
        var root = data.CopyData(dir);
        var id = CraftedFiles.FirstId(root, "val");
        var damaged = CraftedFiles.Damage(root, id, fault);

        var (code, stdout, stderr) = CliRunner.Run("inspect-data", "--data", root, "--split", "val");
        Assert.True(code == 2, $"inspect-data exit code {code}: {stderr}");
        Assert.Equal("", stdout);
        var inspected = Reason(stderr, "inspect-data");
        Assert.Contains(damaged, inspected);
        Assert.Contains(reason, inspected);

        (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", data.ModelPath, "--data", root, "--split", "val");
        Assert.True(code == 2, $"evaluate exit code {code}: {stderr}");
        Assert.Equal("", stdout);
        Assert.Equal(inspected, Reason(stderr, "evaluate"));
    }

    [Fact]
    public void TheRealProcessExitsWith2AndOneLineInsteadOfAborting()
    {
        // Before: "Unhandled exception. PascalSampleException ..." and SIGABRT (exit code 134) with a 25-line trace.
        using var dir = Fixture.TempDir();
        var root = data.CopyData(dir);
        var damaged = CraftedFiles.Damage(root, CraftedFiles.FirstId(root, "val"), "truncated-jpeg");
        var r = ChildProcess.RunCli(["evaluate", "--model", data.ModelPath, "--data", root], timeoutSeconds: 120);
        Assert.True(r.ExitCode == 2, $"exit code {r.ExitCode}: {r.StdErr}");
        Assert.DoesNotContain("Unhandled", r.StdErr);
        Assert.Contains(damaged, Reason(r.StdErr, "evaluate"));
    }

    [Fact]
    public void TrainStopsWithOneLineAndKeepsItsCheckpoints()
    {
        using var dir = Fixture.TempDir();
        var root = data.CopyData(dir);
        // A validation image damaged: the validation after epoch 1 meets it, after the checkpoints of epoch 1 were written.
        var damaged = CraftedFiles.Damage(root, CraftedFiles.FirstId(root, "val"), "idat-crc");
        var checkpoints = dir.File("checkpoints");
        var (code, stdout, stderr) = CliRunner.Run("train", "--data", root, "--config", Fixture.Path("tiny4", "config.json"),
            "--epochs", "2", "--batch-size", "1", "--device", "cpu", "--seed", "1", "--val-every", "1",
            "--checkpoint-dir", checkpoints, "--checkpoint-every", "1", "--out", dir.File("model.zip"));
        Assert.True(code == 2, $"train exit code {code}: {stderr}");
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora train: error: ", StringComparison.Ordinal));
        Assert.Contains(damaged, line);
        Assert.Contains("CRC", line);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(File.Exists(dir.File("model.zip")));

        // The run's checkpoints are there and intact: --resume would continue from step 2.
        var last = TrainingCheckpoint.Resolve(checkpoints);
        Assert.Equal(2, TrainingCheckpoint.ReadManifest(last).GlobalStep);

        // A damaged training image stops train the same way.
        var train = CraftedFiles.Damage(root, CraftedFiles.FirstId(root, "train"), "garbage-jpeg");
        (code, _, stderr) = CliRunner.Run("train", "--data", root, "--config", Fixture.Path("tiny4", "config.json"),
            "--epochs", "1", "--batch-size", "2", "--device", "cpu", "--out", dir.File("model.zip"));
        Assert.Equal(2, code);
        Assert.Contains(train, Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora train: error: ", StringComparison.Ordinal)));
    }

    [Fact]
    public void InspectDataDecodesPixelsAndSaysHowManyLabelsWereResized()
    {
        using var dir = Fixture.TempDir();
        var root = data.CopyData(dir);
        var id = CraftedFiles.FirstId(root, "val");
        // A label of another size is resized, as the reference does; inspect-data and evaluate say how many once.
        var semseg = CraftedFiles.SemsegPath(root, id);
        IndexedPng.WritePalette(semseg, new IndexedImage(24, 20, new byte[24 * 20]), IndexedPng.VocPalette);
        var (code, stdout, stderr) = CliRunner.Run("inspect-data", "--data", root, "--split", "val");
        Assert.True(code == 0, stderr);
        Assert.Equal(1, System.Text.Json.Nodes.JsonNode.Parse(stdout)!["resized_label_files"]!.GetValue<int>());
        var note = Assert.Single(stderr.Split('\n'), l => l.Contains("note:", StringComparison.Ordinal));
        Assert.Contains("1 label file(s) differ in size", note);
        Assert.Contains(semseg, note);

        (code, _, stderr) = CliRunner.Run("evaluate", "--model", data.ModelPath, "--data", root, "--split", "val");
        Assert.True(code == 0, stderr);
        Assert.Contains("1 label file(s) differ in size", stderr);
    }
}
