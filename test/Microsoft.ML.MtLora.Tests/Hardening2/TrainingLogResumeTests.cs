using System.Diagnostics;
using Microsoft.ML.MtLora.Tests.Cli;
using Microsoft.ML.MtLora.Tests.Visualization;
using Microsoft.ML.MtLora.Visualization;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// The training log survives interruptions: it grows by one row per step, a resumed run continues it from the step it
/// resumes at (dropping the rows the interrupted run logged after its last checkpoint and a row cut short by a kill), so
/// the log and the curves of an interrupted-and-resumed run are those of the uninterrupted run; Ctrl+C stops at a step
/// boundary with a checkpoint, exit code 130 and a line that names --resume.
/// </summary>
[Collection(SerialCollection.Name)]
public class TrainingLogResumeTests(TinyPascal data) : IClassFixture<TinyPascal>
{
    [Fact]
    public void ALastLineCutShortIsLeftOutButADamagedCompleteLineIsAnError()
    {
        const string header = "step,epoch,learning_rate,total_loss,loss_semseg\n";
        var read = TrainingLog.Read(new StringReader(header + "1,0,0.001,2.5,1.5\n2,0,0.001,2.4,1.4\n3,0,0.0"), "log");
        Assert.Equal([1L, 2L], read.Select(p => p.Step));
        // A complete last line without its line break is kept.
        Assert.Equal(3, TrainingLog.Read(new StringReader(header + "1,0,0.001,2.5,1.5\n2,0,0.001,2.4,1.4\n3,0,0.001,2.3,1.3"), "log").Count);
        var e = Assert.Throws<InvalidDataException>(() => TrainingLog.Read(new StringReader(header + "1,0,0.0\n2,0,0.001,2.4,1.4\n"), "log"));
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void HeaderAndRowsWrittenApartAreTheWholeLog()
    {
        var points = TrainingLogTests.Points(5);
        var whole = new StringWriter();
        TrainingLog.Write(whole, points);
        var parts = new StringWriter();
        var columns = TrainingLog.GetTaskColumns(points);
        TrainingLog.WriteHeader(parts, columns);
        foreach (var p in points) TrainingLog.WriteRows(parts, [p], columns);
        Assert.Equal(whole.ToString(), parts.ToString());
        Assert.Throws<ArgumentException>(() => TrainingLog.WriteRows(new StringWriter(), points, ["semseg"]));
    }

    [Fact]
    public void AResumedRunLogsTheWholeRunAsAnUninterruptedOneDoes()
    {
        using var dir = Fixture.TempDir();
        string Folder(string name) => Path.Combine(dir.Path, name);

        // Uninterrupted: 2 epochs of 2 steps.
        var (code, _, stderr) = CliVerbTests.Invoke(data.Train(Folder("a.zip"), "--epochs", "2", "--log-dir", Folder("logs-a")));
        Assert.True(code == 0, stderr);

        // Interrupted after step 2 (its checkpoint), then killed while logging steps 3 and 4: a row for step 3 and a cut line.
        (code, _, stderr) = CliVerbTests.Invoke(data.Train(Folder("b.zip"), "--epochs", "2", "--max-steps", "2", "--log-dir", Folder("logs-b"),
            "--checkpoint-dir", Folder("ckpt")));
        Assert.True(code == 0, stderr);
        var logB = Path.Combine(Folder("logs-b"), "training_log.csv");
        File.AppendAllText(logB, "3,1,0.001,9.9,9.9,9.9,9.9,9.9\n4,1,0.0");

        (code, _, stderr) = CliVerbTests.Invoke(data.Train(Folder("b.zip"), "--epochs", "2", "--log-dir", Folder("logs-b"),
            "--checkpoint-dir", Folder("ckpt"), "--resume", Folder("ckpt")));
        Assert.True(code == 0, stderr);

        var logA = File.ReadAllText(Path.Combine(Folder("logs-a"), "training_log.csv"));
        Assert.Equal(1 + 4, logA.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(logA, File.ReadAllText(logB)); // resumption is exact, so the losses are the same to the last bit
        var curvesA = PlotTests.Figure(File.ReadAllText(Path.Combine(Folder("logs-a"), "training_curves.html"))).Data.GetRawText();
        var curvesB = PlotTests.Figure(File.ReadAllText(Path.Combine(Folder("logs-b"), "training_curves.html"))).Data.GetRawText();
        Assert.Equal(curvesA, curvesB);
    }

    [Fact]
    public async Task CtrlCStopsAtAStepWithACheckpointAndTheResumedLogStartsAtStepOne()
    {
        using var dir = Fixture.TempDir();
        var model = Path.Combine(dir.Path, "m.zip");
        var checkpoints = Path.Combine(dir.Path, "ckpt");
        var logs = Path.Combine(dir.Path, "logs");
        string[] Args(params string[] more) =>
            [.. data.Train(model, "--epochs", "200", "--log-dir", logs, "--checkpoint-dir", checkpoints, "--threads", "1"), .. more];

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mtlora.dll"));
        foreach (var a in Args()) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var stderr = new List<string>();
        // Readiness: progress lines go to a redirected stderr ("training 1/400 ..."), the first one after the first step, and
        // train listens for Ctrl+C before its first step, so the signal cannot come too early however loaded the machine is.
        // The limit only bounds a hang: a one-thread child runs 8× slower at load 20, more when memory is short.
        var limit = TimeSpan.FromMinutes(15);
        var clock = Stopwatch.StartNew();
        async Task<T> Within<T>(Task<T> task, string what)
        {
            var left = limit - clock.Elapsed;
            try { return await task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1)); }
            catch (TimeoutException) { child.Kill(entireProcessTree: true); throw new TimeoutException($"{what} within {limit}:\n{string.Join('\n', stderr)}"); }
        }

        var stdout = child.StandardOutput.ReadToEndAsync();
        while (true)
        {
            var line = await Within(child.StandardError.ReadLineAsync(), "no training step was done");
            Assert.True(line is not null, $"train exited before its first step:\n{string.Join('\n', stderr)}");
            stderr.Add(line);
            if (line.StartsWith("training ", StringComparison.Ordinal)) break;
        }
        using (var kill = Process.Start(new ProcessStartInfo("kill", ["-INT", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))!)
        {
            kill.WaitForExit();
            Assert.Equal(0, kill.ExitCode);
        }
        stderr.AddRange((await Within(child.StandardError.ReadToEndAsync(), "the run did not stop after Ctrl+C")).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(child.WaitForExit(120_000), "the run did not stop after Ctrl+C");
        Assert.True(child.ExitCode == 130, string.Join('\n', stderr));
        Assert.Equal("", await stdout);
        // The signal was heard (whenever the loaded machine delivered it), and the run stopped at a step boundary.
        Assert.Contains(stderr, l => l.StartsWith("mtlora train: stopping after the current step", StringComparison.Ordinal));

        var last = stderr[^1];
        Assert.Matches(@"^mtlora train: stopped by Ctrl\+C after step (\d+); the checkpoint of step \1 is in '.*step-0+\1': continue with --resume '.*ckpt'\.$", last);
        Assert.DoesNotContain("MtLoraOptions", string.Join('\n', stderr));
        Assert.Empty(FullDisk.Temporaries(dir.Path));
        var steps = TrainingLog.ReadCsv(Path.Combine(logs, "training_log.csv")).Select(p => p.Step).ToList();
        Assert.Equal(Enumerable.Range(1, steps.Count).Select(i => (long)i), steps);
        Assert.True(File.Exists(Path.Combine(logs, "training_curves.html")));

        // Resumed (for one more step only), the log continues from where the checkpoint is.
        var (code, _, err) = CliVerbTests.Invoke(Args("--resume", checkpoints, "--max-steps", (steps.Count + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(code == 0, err);
        Assert.Equal(Enumerable.Range(1, steps.Count + 1).Select(i => (long)i),
            TrainingLog.ReadCsv(Path.Combine(logs, "training_log.csv")).Select(p => p.Step));
    }
}
