using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// Issue #15, faults during training, proven on the real <c>mtlora train</c> process: SIGKILL while checkpoints are
/// written never leaves a checkpoint that <c>--resume</c> accepts but is damaged, and resume continues from the last
/// complete one; SIGINT writes a checkpoint and exits with 130; a write that fails for lack of space gives one line and no
/// half-written model.zip, log or checkpoint.
/// </summary>
// Child processes only, but each trains on every core it sees: run alone.
[Collection(SerialCollection.Name)]
public class TrainingFaultTests(HardeningData data) : IClassFixture<HardeningData>
{
    /// <summary>Sends SIGINT (what Ctrl+C sends) to one process, by its id.</summary>
    private static void Interrupt(Process process)
    {
        using var k = Process.Start("kill", ["-s", "INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        k.WaitForExit();
        Assert.Equal(0, k.ExitCode);
    }

    /// <summary>A running <c>mtlora train</c> child, its stderr lines as they come.</summary>
    private sealed class Child : IDisposable
    {
        public readonly Process Process;
        public readonly ConcurrentQueue<string> Lines = new();
        public readonly System.Text.StringBuilder StdOut = new();

        public Child(IEnumerable<string> args, string? shellPrefix = null, IDictionary<string, string>? environment = null)
        {
            var cli = Path.Combine(AppContext.BaseDirectory, "mtlora.dll");
            ProcessStartInfo psi;
            if (shellPrefix is null)
            {
                psi = new ProcessStartInfo("dotnet");
                psi.ArgumentList.Add("exec");
                psi.ArgumentList.Add(cli);
                foreach (var a in args) psi.ArgumentList.Add(a);
            }
            else
            {
                // exec keeps the shell's settings (ulimit, ignored signals) for the runtime.
                psi = new ProcessStartInfo("bash");
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add($"{shellPrefix}; exec dotnet exec '{cli}' {string.Join(' ', args.Select(a => $"'{a}'"))}");
            }
            psi.RedirectStandardError = true;
            psi.RedirectStandardOutput = true;
            psi.UseShellExecute = false;
            psi.WorkingDirectory = AppContext.BaseDirectory;
            psi.Environment["CI"] = "true";
            foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
            Process = Process.Start(psi)!;
            Process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Lines.Enqueue(e.Data); };
            Process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (StdOut) StdOut.AppendLine(e.Data); };
            Process.BeginErrorReadLine();
            Process.BeginOutputReadLine();
        }

        public string StdErr => string.Join('\n', Lines);

        /// <summary>
        /// Bounds a hang, not a duration: a one-thread child on this shared 2-core machine runs 8× slower at load 20 (measured:
        /// this file's SIGINT test took 10 s idle, 84 s at load 22) and slower still when memory is short, so the limits are
        /// far above any honest run.
        /// </summary>
        public const int TimeoutSeconds = 900;

        public int WaitForExit(int seconds = TimeoutSeconds)
        {
            if (!Process.WaitForExit(seconds * 1000))
            {
                Process.Kill(entireProcessTree: true);
                throw new TimeoutException($"mtlora train did not finish in {seconds} s: {StdErr}");
            }
            Process.WaitForExit(); // flushes the asynchronous readers
            return Process.ExitCode;
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.Dispose();
        }
    }

    private string[] Train(string checkpoints, string output, params string[] more) =>
    [
        "train", "--data", data.DataRoot, "--config", Fixture.Path("tiny4", "config.json"), "--batch-size", "1", "--device", "cpu",
        "--seed", "1", "--threads", "1", "--checkpoint-dir", checkpoints, "--out", output, .. more,
    ];

    /// <summary>Every checkpoint a resume could pick is complete: its files match the manifest's sizes and SHA-256.</summary>
    private static long AssertAllCheckpointsIntact(string checkpoints)
    {
        long last = 0;
        foreach (var folder in TrainingCheckpoint.List(checkpoints))
            last = TrainingCheckpoint.ReadManifest(folder).GlobalStep; // throws on a damaged one
        return last;
    }

    /// <summary>The temporary folders checkpoints are written in (and deleted through) under a checkpoint root.</summary>
    private static IEnumerable<string> Temporaries(string checkpoints) =>
        Directory.Exists(checkpoints) ? Directory.EnumerateDirectories(checkpoints, ".step-*").Select(d => Path.GetFileName(d)!).ToList() : [];

    [Fact]
    public void SigkillWhileCheckpointsAreWrittenNeverLeavesADamagedCheckpointAndResumeContinues()
    {
        using var dir = Fixture.TempDir();
        var checkpoints = dir.File("checkpoints");
        var rng = new Random(2024); // fixed: the same kill moments on every run
        int killedMidWrite = 0;
        for (int trial = 0; trial < 3; trial++)
        {
            string[] resume = TrainingCheckpoint.List(checkpoints).Count > 0 ? ["--resume", checkpoints] : [];
            // A killed write leaves its temporary folder behind (resume ignores it): count only this run's writes.
            var stale = Temporaries(checkpoints).ToHashSet();
            using var child = new Child(Train(checkpoints, dir.File("model.zip"), ["--epochs", "500", "--checkpoint-every", "1", .. resume]));
            // Kill at the n-th checkpoint write of this run, n in 1..3, a few milliseconds into it: the temporary folder
            // a checkpoint is written in is visible from the start of the write to its final rename.
            int target = rng.Next(1, 4), delayMs = rng.Next(0, 4);
            var seen = new HashSet<string>();
            var clock = Stopwatch.StartNew();
            while (seen.Count < target)
            {
                Assert.False(child.Process.HasExited, $"train exited with {(child.Process.HasExited ? child.Process.ExitCode : 0)}: {child.StdErr}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(180), $"no checkpoint write seen: {child.StdErr}");
                seen.UnionWith(Temporaries(checkpoints).Except(stale));
                Thread.Sleep(1);
            }
            Thread.Sleep(delayMs);
            bool writing = Temporaries(checkpoints).Except(stale).Any(d => seen.Contains(d));
            child.Process.Kill(); // SIGKILL, this process only
            Assert.Equal(137, child.WaitForExit());
            if (writing) killedMidWrite++;
            AssertAllCheckpointsIntact(checkpoints);
        }
        Assert.True(killedMidWrite > 0, "no kill landed inside a checkpoint write");

        // Resume continues from the newest complete checkpoint, one step further.
        long last = AssertAllCheckpointsIntact(checkpoints);
        Assert.True(last >= 1, "no complete checkpoint was left");
        using var resumed = new Child(Train(checkpoints, dir.File("model.zip"), "--epochs", "500", "--resume", checkpoints,
            "--max-steps", (last + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), "--json"));
        Assert.True(resumed.WaitForExit() == 0, resumed.StdErr);
        Assert.Equal(last + 1, JsonNode.Parse(resumed.StdOut.ToString())!["steps"]!.GetValue<long>());
    }

    [Fact]
    public void SigintWritesACheckpointAndExitsWith130()
    {
        using var dir = Fixture.TempDir();
        var checkpoints = dir.File("checkpoints");
        var model = dir.File("model.zip");
        using (var child = new Child(Train(checkpoints, model, "--epochs", "500")))
        {
            // Readiness: the first progress line comes after the first step, and train listens for SIGINT before its first
            // step, so the signal cannot come too early however slow the machine is; only a hang hits the limit.
            var clock = Stopwatch.StartNew();
            while (!child.Lines.Any(l => l.StartsWith("training ", StringComparison.Ordinal)))
            {
                Assert.False(child.Process.HasExited, child.StdErr);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(Child.TimeoutSeconds), $"no step done in {Child.TimeoutSeconds} s: {child.StdErr}");
                Thread.Sleep(20);
            }
            Interrupt(child.Process);
            Assert.Equal(130, child.WaitForExit());
            // The signal was heard (whenever the loaded machine delivered it), and the run stopped at a step boundary.
            Assert.Contains(child.Lines, l => l.StartsWith("mtlora train: stopping after the current step", StringComparison.Ordinal));
            // One line says how to continue; no error, no stack trace.
            Assert.Contains(child.Lines, l => l.StartsWith("mtlora train:", StringComparison.Ordinal) && l.Contains($"--resume '{checkpoints}'", StringComparison.Ordinal));
            Assert.DoesNotContain(child.Lines, l => l.Contains("error:", StringComparison.Ordinal));
            Assert.DoesNotContain("   at ", child.StdErr);
        }
        Assert.False(File.Exists(model));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, "*.tmp-*", SearchOption.AllDirectories));
        long step = AssertAllCheckpointsIntact(checkpoints);
        Assert.True(step >= 1);

        using var resumed = new Child(Train(checkpoints, model, "--epochs", "500", "--resume", checkpoints,
            "--max-steps", (step + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), "--json"));
        Assert.True(resumed.WaitForExit() == 0, resumed.StdErr);
        Assert.Equal(step + 1, JsonNode.Parse(resumed.StdOut.ToString())!["steps"]!.GetValue<long>());
        Assert.True(File.Exists(model));
    }

    /// <summary>
    /// A disk that fills up, without root: the shell's per-file size limit (<c>ulimit -f</c>) makes every write past it
    /// fail as a full disk does (EFBIG instead of ENOSPC), once SIGXFSZ is ignored; .NET's W^X double mapping needs a
    /// file of its own at start-up, so it is turned off.
    /// </summary>
    private Child FullDisk(int limitKiB, IEnumerable<string> args) =>
        new(args, shellPrefix: $"trap '' XFSZ; ulimit -f {limitKiB}", environment: new Dictionary<string, string> { ["DOTNET_EnableWriteXorExecute"] = "0" });

    private static string ErrorLine(Child child)
    {
        Assert.True(child.WaitForExit() == 2, child.StdErr);
        Assert.DoesNotContain("   at ", child.StdErr);
        return Assert.Single(child.Lines, l => l.StartsWith("mtlora train: error:", StringComparison.Ordinal));
    }

    /// <summary>
    /// What a failed write may leave: complete files only. No temporary file or folder, every checkpoint intact, a log
    /// with a row per step (header + 2 steps here) and curves that end their HTML, or no such file at all.
    /// </summary>
    private static void AssertNothingHalfWritten(string folder)
    {
        Assert.Empty(Directory.GetFileSystemEntries(folder, "*.tmp-*", SearchOption.AllDirectories));
        foreach (var root in Directory.GetDirectories(folder, "checkpoints*")) AssertAllCheckpointsIntact(root);
        foreach (var csv in Directory.GetFiles(folder, "training_log.csv", SearchOption.AllDirectories))
            Assert.Equal(1 + 2, File.ReadAllLines(csv).Length);
        foreach (var html in Directory.GetFiles(folder, "training_curves.html", SearchOption.AllDirectories))
            Assert.EndsWith("</html>", File.ReadAllText(html).TrimEnd(), StringComparison.OrdinalIgnoreCase);
        foreach (var zip in Directory.GetFiles(folder, "*.zip"))
            using (var m = new MLContext().Model.Load(zip, out _) as IDisposable) { }
    }

    [Fact]
    public void AFullDiskGivesOneLineAndNoHalfWrittenCheckpointLogOrModel()
    {
        using var dir = Fixture.TempDir();
        // 1 MiB per file: no checkpoint (3 MB of weights) can be written, nor the model.
        var checkpoints = dir.File("checkpoints");
        using (var child = FullDisk(1024, Train(checkpoints, dir.File("a.zip"), "--epochs", "1", "--checkpoint-every", "1", "--log-dir", dir.File("logs-a"))))
        {
            ErrorLine(child);
            Assert.Contains($"'{checkpoints}", child.StdErr); // the checkpoint that could not be written is named
        }
        Assert.Empty(TrainingCheckpoint.List(checkpoints));
        Assert.False(File.Exists(dir.File("a.zip")));
        AssertNothingHalfWritten(dir.Path);

        // 1 MiB, no checkpoints: neither the training curves (3.6 MB of HTML with its plotting library) nor the model fit.
        var args = Train(dir.File("unused"), dir.File("b.zip"), "--epochs", "1", "--log-dir", dir.File("logs-b")).ToList();
        args.RemoveRange(args.IndexOf("--checkpoint-dir"), 2);
        using (var child = FullDisk(1024, args))
            Assert.Contains($"cannot write '{dir.Path}", ErrorLine(child));
        Assert.False(File.Exists(dir.File("b.zip")));
        AssertNothingHalfWritten(dir.Path);

        // 4 MiB per file and a network of 6.7 MB: the log and curves fit, model.zip does not.
        var config = dir.File("small.json");
        File.WriteAllText(config, """{"embed_dim": 24, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 4, 8], "window_size": 4, "img_size": 128, "shared_rank": 8, "task_rank": 4, "decoder_channels": [16, 16, 32, 32]}""");
        args = Train(dir.File("unused"), dir.File("c.zip"), "--epochs", "1", "--log-dir", dir.File("logs-c")).ToList();
        args.RemoveRange(args.IndexOf("--checkpoint-dir"), 2);
        args[args.IndexOf("--config") + 1] = config;
        using (var child = FullDisk(4096, args))
            Assert.Contains($"cannot write '{dir.File("c.zip")}'", ErrorLine(child));
        Assert.False(File.Exists(dir.File("c.zip")));
        AssertNothingHalfWritten(dir.Path);
    }

    [Fact]
    public void ResumeRefusesADamagedCheckpointAndIgnoresTemporaryFolders()
    {
        using var dir = Fixture.TempDir();
        var root = dir.File("checkpoints");
        using var w = arange(6, dtype: ScalarType.Float32);
        var state = new Dictionary<string, Tensor> { ["w"] = w };
        for (long step = 1; step <= 2; step++)
            TrainingCheckpoint.Save(root, new TrainingPosition(step, 0, (int)step, 10, 0), state, state, keep: 5);
        // A write killed half-way leaves only a temporary folder, which resume does not see.
        var interrupted = Directory.CreateDirectory(Path.Combine(root, ".step-000000003.tmp-0123456789abcdef")).FullName;
        File.WriteAllBytes(Path.Combine(interrupted, TrainingCheckpoint.ModelFileName), [1, 2, 3]);
        Assert.EndsWith("step-000000002", TrainingCheckpoint.Resolve(root));

        // Replacing a checkpoint of the same step goes through a temporary name too: no half-deleted folder is ever named step-*.
        TrainingCheckpoint.Save(root, new TrainingPosition(2, 0, 2, 10, 0), state, state, keep: 5);
        Assert.Equal(2, TrainingCheckpoint.ReadManifest(TrainingCheckpoint.Resolve(root)).GlobalStep);

        // A damaged file is refused, never resumed from.
        var model = Path.Combine(TrainingCheckpoint.Resolve(root), TrainingCheckpoint.ModelFileName);
        var bytes = File.ReadAllBytes(model);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(model, bytes);
        var e = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.ReadManifest(TrainingCheckpoint.Resolve(root)));
        Assert.Contains("is damaged", e.Message);
        Assert.Contains(model, e.Message);
    }

    [Fact]
    public void ANonFiniteLossFromALoadedCheckpointBlamesTheCheckpointAndMessagesNameTheFile()
    {
        using var dir = Fixture.TempDir();
        var weights = MlNet.MtLoraTestModel.Weights();
        try
        {
            var poisoned = dir.File("poisoned.safetensors");
            // A convolution weight of a decoder (not a batch-norm statistic, which training mode does not use).
            var key = weights.Keys.First(k => k.StartsWith("decoders.", StringComparison.Ordinal) && k.EndsWith(".weight", StringComparison.Ordinal) && weights[k].dim() >= 2);
            using (no_grad()) weights[key].view(-1)[0] = tensor(float.PositiveInfinity);
            SafeTensors.Save(poisoned, weights);
            var (code, stdout, stderr) = CliRunner.Run("train", "--data", data.DataRoot, "--config", Fixture.Path("tiny4", "config.json"),
                "--epochs", "1", "--batch-size", "1", "--device", "cpu", "--init-checkpoint", poisoned, "--out", dir.File("m.zip"));
            Assert.Equal(2, code);
            Assert.Equal("", stdout);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora train: error:", StringComparison.Ordinal));
            Assert.Contains(poisoned, line);
            Assert.Contains("likely cause", line);

            // A checkpoint without one of the network's weights: the message names the file, not a parameter of the code.
            var missing = dir.File("missing.safetensors");
            SafeTensors.Save(missing, weights.Where(kv => !kv.Key.EndsWith("attn.qkv.linear.weight", StringComparison.Ordinal)));
            (code, _, stderr) = CliRunner.Run("train", "--data", data.DataRoot, "--config", Fixture.Path("tiny4", "config.json"),
                "--epochs", "1", "--batch-size", "1", "--device", "cpu", "--init-checkpoint", missing, "--out", dir.File("m.zip"));
            Assert.Equal(2, code);
            Assert.Contains($"'{missing}'", stderr);
            Assert.Contains("missing", stderr);

            // A Swin checkpoint with a foreign key: no "(Parameter 'msSwin')" in the message.
            var foreign = dir.File("foreign.safetensors");
            using (var t = zeros(2))
                SafeTensors.Save(foreign, new Dictionary<string, Tensor> { ["patch_embed.proj.weight"] = t, ["something.else"] = t });
            (code, _, stderr) = CliRunner.Run("train", "--data", data.DataRoot, "--config", Fixture.Path("tiny4", "config.json"),
                "--epochs", "1", "--batch-size", "1", "--device", "cpu", "--backbone", foreign, "--out", dir.File("m.zip"));
            Assert.Equal(2, code);
            Assert.Contains(foreign, stderr);
            Assert.Contains("'something.else'", stderr);
            Assert.DoesNotContain("Parameter", stderr);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }
}
