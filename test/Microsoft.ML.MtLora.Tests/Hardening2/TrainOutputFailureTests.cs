using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Tests.Cli;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// Output failures must not lose the trained model: every output path is checked before training, the model is saved
/// first, a failed write leaves no temporary file and is one line naming the path and the cause, and a failed log,
/// curves or checkpoint write never costs the model. Disks fill up on purpose through the CLI's write seam (no tmpfs).
/// </summary>
[Collection(SerialCollection.Name)]
public class TrainOutputFailureTests(TinyPascal data) : IClassFixture<TinyPascal>
{
    private static string[] Errors(string stderr) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("mtlora train: error:", StringComparison.Ordinal)).ToArray();

    /// <summary>What the CLI says, without its progress lines ("training 1/2 ...", "evaluating ...").</summary>
    private static string[] Said(string stderr) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("mtlora ", StringComparison.Ordinal)).ToArray();

    private static void AssertLoads(string model)
    {
        var ml = new MLContext(seed: 0);
        var loaded = ml.Model.Load(model, out _);
        (loaded as IDisposable)?.Dispose();
    }

    [Fact]
    public void OutNamingAFolderIsRefusedBeforeTraining()
    {
        using var dir = Fixture.TempDir();
        var (code, stdout, stderr) = CliVerbTests.Invoke(data.Train(dir.Path));
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"--out: '{dir.Path}' is a folder; give a file name", line);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("--log-dir", "{file}", "is a file; expected a folder")]
    [InlineData("--checkpoint-dir", "{file}/checkpoints", "cannot create folder")]
    [InlineData("--log-dir", "{file}/logs", "cannot create folder")]
    public void OutputFoldersThatCannotBeWrittenAreRefusedBeforeTraining(string option, string value, string expected)
    {
        using var dir = Fixture.TempDir();
        var file = Path.Combine(dir.Path, "a-file");
        File.WriteAllText(file, "");
        var model = Path.Combine(dir.Path, "m.zip");
        var (code, _, stderr) = CliVerbTests.Invoke(data.Train(model, option, value.Replace("{file}", file)));
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"mtlora train: error: {option}: ", line);
        Assert.Contains(expected, line);
        Assert.Equal(["a-file"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFullDiskAtOutSavesTheModelInTheTempFolderInstead()
    {
        using var dir = Fixture.TempDir();
        var model = Path.Combine(dir.Path, "model.zip");
        int code;
        string stdout, stderr;
        using (FullDisk.For(p => p == model))
            (code, stdout, stderr) = CliVerbTests.Invoke(data.Train(model, "--epochs", "1"));
        var saved = JsonNode.Parse(stdout)!["model"]!.GetValue<string>();
        try
        {
            Assert.Equal(1, code);
            var line = Assert.Single(Errors(stderr));
            Assert.Equal($"mtlora train: error: cannot write '{model}' (No space left on device); the trained model was saved to '{saved}' instead.", line);
            Assert.StartsWith(Path.GetTempPath(), saved);
            AssertLoads(saved);
            Assert.False(File.Exists(model));
            Assert.Empty(FullDisk.Temporaries(dir.Path));
            // The log and curves do not depend on the model's disk.
            Assert.Equal(1 + 2, File.ReadAllLines(Path.Combine(dir.Path, "model.zip.logs", "training_log.csv")).Length);
        }
        finally
        {
            File.Delete(saved);
        }
    }

    [Fact]
    public void WhenNoModelCanBeWrittenTheCheckpointKeepsItAndResumeSavesIt()
    {
        using var dir = Fixture.TempDir();
        var model = Path.Combine(dir.Path, "model.zip");
        var checkpoints = Path.Combine(dir.Path, "ckpt");
        int code;
        string stderr;
        using (FullDisk.For(p => p.EndsWith(".zip", StringComparison.Ordinal)))
            (code, _, stderr) = CliVerbTests.Invoke(data.Train(model, "--epochs", "1", "--checkpoint-dir", checkpoints));
        Assert.Equal(2, code);
        var line = Assert.Single(Said(stderr));
        Assert.StartsWith($"mtlora train: error: cannot write '{model}' (No space left on device), nor '", line);
        Assert.Contains($"the checkpoint of step 2 is in '{Path.Combine(checkpoints, "step-000000002")}': continue with --resume '{checkpoints}', which saves it without training further.", line);
        Assert.Empty(FullDisk.Temporaries(dir.Path));
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"mtlora-model-*-{Environment.ProcessId}.zip*")); // nor the fallback, nor its temporary

        // With space again, --resume trains nothing more and saves the trained weights.
        var (resumed, stdout, err) = CliVerbTests.Invoke(data.Train(model, "--epochs", "1", "--checkpoint-dir", checkpoints, "--resume", checkpoints));
        Assert.True(resumed == 0, err);
        Assert.Equal(2, JsonNode.Parse(stdout)!["steps"]!.GetValue<long>());
        AssertLoads(model);
    }

    [Theory]
    [InlineData("training_log.csv")]
    [InlineData("training_curves.html")]
    public void AFullLogDiskCostsTheLogButNeverTheModel(string failing)
    {
        using var dir = Fixture.TempDir();
        var model = Path.Combine(dir.Path, "model.zip");
        var logs = Path.Combine(dir.Path, "logs");
        int code;
        string stderr;
        using (FullDisk.For(p => Path.GetFileName(p) == failing, capacity: 100))
            (code, _, stderr) = CliVerbTests.Invoke(data.Train(model, "--epochs", "1", "--log-dir", logs));
        Assert.Equal(1, code);
        AssertLoads(model);
        var line = Assert.Single(Errors(stderr));
        Assert.Equal($"mtlora train: error: cannot write '{Path.Combine(logs, failing)}' (No space left on device); the model was saved to '{model}'.", line);
        Assert.Empty(FullDisk.Temporaries(dir.Path));
        Assert.False(File.Exists(Path.Combine(logs, failing))); // never half-written
    }

    [Fact]
    public void ACheckpointThatCannotBeWrittenIsAWarningAndTrainingGoesOn()
    {
        using var dir = Fixture.TempDir();
        var model = Path.Combine(dir.Path, "model.zip");
        var checkpoints = Path.Combine(dir.Path, "ckpt");
        Directory.CreateDirectory(checkpoints);
        // A file where the checkpoint of step 1 goes: writing it fails as a full disk would, after its files are written.
        File.WriteAllText(Path.Combine(checkpoints, "step-000000001"), "");
        var (code, stdout, stderr) = CliVerbTests.Invoke(data.Train(model, "--epochs", "1", "--checkpoint-dir", checkpoints, "--checkpoint-every", "1"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"mtlora train: warning: MTLoRA: The checkpoint of step 1 could not be written to '{checkpoints}'", stderr);
        Assert.Equal(2, JsonNode.Parse(stdout)!["steps"]!.GetValue<long>());
        AssertLoads(model);
        Assert.True(File.Exists(Path.Combine(checkpoints, "step-000000002", "manifest.json")));
        Assert.Empty(FullDisk.Temporaries(checkpoints));
    }

    [Fact]
    public void AnInterruptedRunSaysToResumeWithTheResumeOption()
    {
        using var dir = Fixture.TempDir();
        var s = new global::MtLora.Cli.Commands.TrainCommand.Settings
        {
            Data = data.Root, Config = Fixture.Path("tiny4", "config.json"), BatchSize = 2, Device = "cpu", Epochs = 1,
            Out = Path.Combine(dir.Path, "m.zip"), CheckpointDir = Path.Combine(dir.Path, "ckpt"),
        };
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel(); // as Ctrl+C before the first step
        var stderr = new StringWriter();
        int code = global::MtLora.Cli.Commands.TrainCommand.Run(s, new StringWriter(), stderr, cancelled.Token);
        Assert.Equal(130, code);
        var line = Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"mtlora train: cancelled after step 0; the checkpoint of step 0 is in '{Path.Combine(s.CheckpointDir, "step-000000000")}': continue with --resume '{s.CheckpointDir}'.", line);
        Assert.DoesNotContain("MtLoraOptions", line);
        Assert.False(File.Exists(s.Out));
    }

    [Fact]
    public void ADamagedSampleMidRunStopsWithOneLineAndACheckpointToResumeFromOnceFixed()
    {
        using var dir = Fixture.TempDir();
        var root = Path.Combine(dir.Path, "data");
        foreach (var file in Directory.EnumerateFiles(data.Root, "*", SearchOption.AllDirectories))
        {
            var copy = Path.Combine(root, Path.GetRelativePath(data.Root, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
        // With seed 3 this image is in the second batch of the first epoch: training stops after step 1.
        var image = Path.Combine(root, "JPEGImages", "2008_000002.jpg");
        var bytes = File.ReadAllBytes(image);
        File.WriteAllBytes(image, bytes[..(bytes.Length / 2)]);
        var model = Path.Combine(dir.Path, "model.zip");
        var checkpoints = Path.Combine(dir.Path, "ckpt");
        string[] Args(params string[] more) => [.. data.Train(model, "--epochs", "2", "--checkpoint-dir", checkpoints), .. more];
        var args = Args();
        args[Array.IndexOf(args, data.Root)] = root;

        var (code, stdout, stderr) = CliVerbTests.Invoke(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(Said(stderr));
        Assert.StartsWith($"mtlora train: error: PASCAL-Context sample '2008_000002', file '{image}': ", line);
        Assert.EndsWith($"Training stopped after step 1; the checkpoint of step 1 is in '{Path.Combine(checkpoints, "step-000000001")}': continue with --resume '{checkpoints}'.", line);
        Assert.False(File.Exists(model));

        // The file is fixed; the run continues from its checkpoint to the end, and its log covers every step.
        File.WriteAllBytes(image, bytes);
        var resumed = args.Concat(["--resume", checkpoints]).ToArray();
        (code, stdout, stderr) = CliVerbTests.Invoke(resumed);
        Assert.True(code == 0, stderr);
        Assert.Equal(4, JsonNode.Parse(stdout)!["steps"]!.GetValue<long>());
        Assert.Equal([1L, 2, 3, 4], Microsoft.ML.MtLora.Visualization.TrainingLog.ReadCsv(Path.Combine(dir.Path, "model.zip.logs", "training_log.csv")).Select(p => p.Step));
    }
}
