using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>
/// A synthetic NYUD-v2 set made by <c>make-synthetic --dataset nyud</c> and a tiny model trained on it by
/// <c>train --dataset nyud</c> (tiny4's Swin, the four NYUD tasks, 2 epochs of 3 steps), shared by the tests below.
/// </summary>
public sealed class TrainedNyudCliModel : IDisposable
{
    private readonly TempDir _dir = Fixture.TempDir();

    public TrainedNyudCliModel()
    {
        DataRoot = Path.Combine(_dir.Path, "nyud");
        var (code, _, stderr) = CliRunner.Run("make-synthetic", "--dataset", "nyud", "--out", DataRoot, "--count", "6", "--size", "64x48", "--seed", "1");
        if (code != 0) throw new InvalidOperationException(stderr);
        ModelPath = Path.Combine(_dir.Path, "model.zip");
        LogDir = Path.Combine(_dir.Path, "logs");
        (ExitCode, Stdout, Stderr) = CliRunner.Run(Train(ModelPath, "--epochs", "2", "--log-dir", LogDir));
    }

    /// <summary>The tiny training command on this set (all four NYUD tasks, JSON report).</summary>
    public string[] Train(string outPath, params string[] more) =>
        ["train", "--dataset", "nyud", "--data", DataRoot, "--config", Fixture.Path("tiny4", "config.json"), "--tasks", "semseg,depth,normals,edge",
         "--batch-size", "2", "--lr", "1e-3", "--device", "cpu", "--seed", "3", "--out", outPath, "--json", .. more];

    public string DataRoot { get; }
    public string ModelPath { get; }
    public string LogDir { get; }
    public int ExitCode { get; }
    public string Stdout { get; }
    public string Stderr { get; }
    public string Folder => _dir.Path;

    public void Dispose() => _dir.Dispose();
}

// Training seeds torch's global generator (as Fit does): run alone.
[Collection(SerialCollection.Name)]
public class NyudTrainCliTests(TrainedNyudCliModel trained) : IClassFixture<TrainedNyudCliModel>
{
    private static readonly string[] NyudTasks = ["semseg", "depth", "normals", "edge"];

    [Fact]
    public void TrainReportsTheNyudTasksTheirMetricsAndTheNyudDraws()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        var json = JsonNode.Parse(trained.Stdout)!.AsObject();
        Assert.Equal("nyud", json["dataset"]!.GetValue<string>());
        Assert.Equal(NyudTasks, json["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(6, json["steps"]!.GetValue<long>());
        var augmentation = json["augmentation"]!;
        Assert.Equal("nyud", augmentation["draws"]!.GetValue<string>());
        Assert.Equal("rotation=0,scale=1|1.2|1.5", augmentation["rotation_scale"]!.GetValue<string>());
        Assert.Equal("single-pass", augmentation["geometry"]!.GetValue<string>());

        // Each task scored by its kind: 40 NYUD classes, depth RMSE, normals angles, edge_f@0.5 (no baselines: no Δm).
        var metrics = json["metrics"]!;
        Assert.Equal(40, metrics["semseg"]!["per_class_iou"]!.AsArray().Count);
        Assert.InRange(metrics["depth"]!["rmse"]!.GetValue<double>(), 0, 100);
        Assert.True(metrics["depth"]!["pixels"]!.GetValue<long>() > 0);
        Assert.InRange(metrics["normals"]!["mean"]!.GetValue<double>(), 0, 180);
        Assert.InRange(metrics["edge"]!["edge_f@0.5"]!.GetValue<double>(), 0, 1);
        Assert.Null(metrics["delta_m"]);
        // The network saved in model.zip has the 40-class NYUD semseg head (config JSON: the task with all its facts).
        Assert.Equal(NyudTasks, json["network"]!["tasks"]!.AsArray().Select(t => t is JsonObject o ? o["name"]!.GetValue<string>() : t!.GetValue<string>()));

        // Fit's final validation scored the returned (last) weights with the same baselines and protocol: its metrics are the
        // report's, and the validation split is not scored a second time.
        Assert.True(JsonNode.DeepEquals(json["validation"]!["last"]!["metrics"], metrics));
        Assert.Contains("the trained model's metrics are those of the validation after epoch 2 (step 6), which scored these weights", trained.Stderr);
        Assert.DoesNotContain("evaluating the trained model", trained.Stderr);

        // The log: one loss column per NYUD task, a row per step.
        var log = File.ReadAllLines(Path.Combine(trained.LogDir, "training_log.csv"));
        Assert.Equal("step,epoch,learning_rate,total_loss,loss_semseg,loss_normals,loss_depth,loss_edge", log[0]);
        Assert.Equal(7, log.Length);
    }

    [Fact]
    public void EvaluateModelOnNyudGivesTheNumbersOfTrainsReport()
    {
        var trainJson = JsonNode.Parse(trained.Stdout)!;
        var (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot);
        Assert.True(code == 0, stderr);
        var evaluated = JsonNode.Parse(stdout)!;
        Assert.Equal("reference", evaluated["protocol"]!.GetValue<string>());
        // The same weights, data and protocol: the same numbers (the model.zip reads image paths; train's report is its last
        // validation during Fit, whose network batches and sums differ in order: equal to 1e-6 relative; pixel counts exactly).
        int compared = 0;
        foreach (var task in NyudTasks)
            foreach (var (key, value) in evaluated[task]!.AsObject())
                if (value is JsonValue v && v.TryGetValue<double>(out double x))
                {
                    double reported = trainJson["metrics"]![task]![key]!.GetValue<double>();
                    Assert.True(Math.Abs(reported - x) <= 1e-6 * Math.Max(1, Math.Abs(reported)), $"{task}.{key}: train {reported}, evaluate {x}");
                    compared++;
                }
        Assert.True(compared >= 15, $"{compared} numbers compared");
        Assert.Equal(trainJson["metrics"]!["depth"]!["pixels"]!.GetValue<long>(), evaluated["depth"]!["pixels"]!.GetValue<long>());

        // Baselines by NYUD task name give Δm; 'paper' is refused (the paper has no NYUD single-task numbers).
        (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot, "--baselines", "depth=0.75,semseg=37.18");
        Assert.True(code == 0, stderr);
        double rmse = evaluated["depth"]!["rmse"]!.GetValue<double>(), miou = evaluated["semseg"]!["mIoU"]!.GetValue<double>() * 100;
        // Δm = mean of the signed relative gains in percent (a lower RMSE is a gain), over the two tasks with a baseline.
        double expected = (100 * (miou - 37.18) / 37.18 + 100 * (0.75 - rmse) / 0.75) / 2;
        Assert.Equal(expected, JsonNode.Parse(stdout)!["delta_m"]!.GetValue<double>(), 6);
        (code, _, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot, "--baselines", "paper");
        Assert.Equal(2, code);
        Assert.Equal("mtlora evaluate: error: --baselines: 'paper' holds the paper's PASCAL-Context single-task results; the paper gives none for NYUD-v2. " +
            "Give your own as task=value pairs (tasks semseg, depth, normals, edge; e.g. semseg=40.0,depth=0.6) or none.", stderr.Trim());

        // The NYUD model on PASCAL data (no --dataset): one line saying what to give.
        (code, _, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--data", trained.DataRoot);
        Assert.Equal(2, code);
        Assert.Equal($"mtlora evaluate: error: --model '{trained.ModelPath}' predicts task 'semseg' (40 output channel(s)), which is not a PASCAL-Context task " +
            "(semseg, human_parts, sal, normals): it is a NYUD-v2 model; give --dataset nyud and a NYUD_MT root.", stderr.Trim());

        // Native protocol: each image at its own size (64x48 labels instead of 128x128).
        (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "native");
        Assert.True(code == 0, stderr);
        var native = JsonNode.Parse(stdout)!;
        Assert.Equal("native", native["protocol"]!.GetValue<string>());
        Assert.Equal(6 * 64 * 48, native["edge"]!["pixels"]!.GetValue<long>());
        Assert.Equal(6 * 128 * 128, evaluated["edge"]!["pixels"]!.GetValue<long>());
    }

    [Fact]
    public void NyudTaskNamesAndOptionsAreCheckedWithOneLine()
    {
        var outPath = Path.Combine(trained.Folder, "never.zip");
        var (code, _, stderr) = CliRunner.Run("train", "--dataset", "nyud", "--data", trained.DataRoot, "--config", Fixture.Path("tiny4", "config.json"),
            "--tasks", "semseg,human_parts", "--out", outPath);
        Assert.Equal(2, code);
        Assert.Equal("mtlora train: error: --tasks: 'human_parts' is not a NYUD-v2 task; expected a comma-separated list of semseg, depth, normals, edge.", stderr.Trim());
        // tiny4's config names PASCAL tasks: without --tasks they are looked up among NYUD's.
        (code, _, stderr) = CliRunner.Run("train", "--dataset", "nyud", "--data", trained.DataRoot, "--config", Fixture.Path("tiny4", "config.json"), "--out", outPath);
        Assert.Equal(2, code);
        Assert.Contains("task 'human_parts' is not a NYUD-v2 task (semseg, depth, normals, edge); give --tasks", stderr);
        (code, _, stderr) = CliRunner.Run(trained.Train(outPath, "--baselines", "paper"));
        Assert.Equal(2, code);
        Assert.StartsWith("mtlora train: error: --baselines: 'paper' holds the paper's PASCAL-Context single-task results; the paper gives none for NYUD-v2.", stderr);
        (code, _, stderr) = CliRunner.Run(trained.Train(outPath, "--baselines", "sal=60"));
        Assert.Equal(2, code);
        Assert.Contains("--baselines: Baseline 'sal=60': unknown task 'sal'. Known tasks: semseg, depth, normals, edge.", stderr);
        (code, _, stderr) = CliRunner.Run(trained.Train(outPath, "--augmentation-draws", "rotation=0"));
        Assert.Equal(2, code);
        Assert.Contains("--augmentation-draws: 'rotation=0' needs both rotation and scale", stderr);
        Assert.False(File.Exists(outPath));

        // inspect-data --dataset nyud: PASCAL's task and bad-sample options are refused; --protocol is honoured (below).
        (code, _, stderr) = CliRunner.Run("inspect-data", "--dataset", "nyud", "--data", trained.DataRoot, "--tasks", "semseg");
        Assert.Equal(2, code);
        Assert.Equal("mtlora inspect-data: error: --tasks is not available with --dataset nyud: it reads all four NYUD tasks of every listed id; leave the option out.", stderr.Trim());
        (code, _, stderr) = CliRunner.Run("inspect-data", "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "reference", "--image-size", "0");
        Assert.Equal(2, code);
        Assert.StartsWith("mtlora inspect-data: error: --image-size: 0 is not a size", stderr);
        var (nativeCode, nativeOut, nativeErr) = CliRunner.Run("inspect-data", "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "native");
        Assert.True(nativeCode == 0, nativeErr);
        var (plainCode, plainOut, _) = CliRunner.Run("inspect-data", "--dataset", "nyud", "--data", trained.DataRoot);
        Assert.Equal(0, plainCode);
        Assert.Equal(plainOut, nativeOut);
        // Its native counts are what evaluate --protocol native scores.
        (code, var evaluated, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "native");
        Assert.True(code == 0, stderr);
        var counts = JsonNode.Parse(plainOut)!["tasks"]!;
        Assert.Equal(counts["semseg"]!["valid_pixels"]!.GetValue<long>(), JsonNode.Parse(evaluated)!["semseg"]!["pixels"]!.GetValue<long>());
        // Depth: the evaluation ignores the holes (0 m, turned into 255 as the reference's AddIgnoreRegions does); inspect-data counts them apart.
        Assert.Equal(counts["depth"]!["valid_pixels"]!.GetValue<long>() - counts["depth"]!["zero_pixels"]!.GetValue<long>(),
            JsonNode.Parse(evaluated)!["depth"]!["pixels"]!.GetValue<long>());

        // Under the reference protocol (tiny4's input size 128), the labels resized as the evaluation resizes them: the same counts.
        (code, var referenceCounts, stderr) = CliRunner.Run("inspect-data", "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "reference", "--image-size", "128");
        Assert.True(code == 0, stderr);
        (code, evaluated, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot);
        Assert.True(code == 0, stderr);
        var reference = JsonNode.Parse(referenceCounts)!;
        var scored = JsonNode.Parse(evaluated)!;
        Assert.Equal("reference", reference["protocol"]!.GetValue<string>());
        Assert.Equal(128, reference["image_size"]!.GetValue<int>());
        counts = reference["tasks"]!;
        Assert.Equal(counts["semseg"]!["valid_pixels"]!.GetValue<long>(), scored["semseg"]!["pixels"]!.GetValue<long>());
        Assert.Equal(counts["depth"]!["valid_pixels"]!.GetValue<long>() - counts["depth"]!["zero_pixels"]!.GetValue<long>(), scored["depth"]!["pixels"]!.GetValue<long>());
        Assert.Equal(counts["normals"]!["valid_pixels"]!.GetValue<long>(), scored["normals"]!["pixels"]!.GetValue<long>());
        Assert.Equal(counts["edge"]!["pixels"]!.GetValue<long>(), scored["edge"]!["pixels"]!.GetValue<long>());
        Assert.Equal(6 * 128 * 128, counts["edge"]!["pixels"]!.GetValue<long>());
        Assert.NotEqual(JsonNode.Parse(plainOut)!["tasks"]!["semseg"]!["valid_pixels"]!.GetValue<long>(), counts["semseg"]!["valid_pixels"]!.GetValue<long>());
    }

    [Fact]
    public void KeepBestAndResumeWorkForNyud()
    {
        using var dir = Fixture.TempDir();
        var checkpoints = Path.Combine(dir.Path, "ckpt");
        var logs = Path.Combine(dir.Path, "logs");
        // 2 epochs of 3 steps, stopped after step 4 with a checkpoint, then resumed to the end.
        var (code, _, stderr) = CliRunner.Run(trained.Train(Path.Combine(dir.Path, "a.zip"), "--epochs", "2", "--max-steps", "4", "--checkpoint-dir", checkpoints,
            "--checkpoint-every", "2", "--log-dir", logs));
        Assert.True(code == 0, stderr);
        (code, var stdout, stderr) = CliRunner.Run(trained.Train(Path.Combine(dir.Path, "b.zip"), "--epochs", "2", "--resume", checkpoints, "--log-dir", logs));
        Assert.True(code == 0, stderr);
        Assert.Equal(6, JsonNode.Parse(stdout)!["steps"]!.GetValue<long>());
        Assert.Equal(7, File.ReadAllLines(Path.Combine(logs, "training_log.csv")).Length);      // the log continued: header and steps 1..6

        // --keep best, validating every epoch: the kept weights score as the best validation did.
        (code, _, stderr) = CliRunner.Run(trained.Train(Path.Combine(dir.Path, "best.zip"), "--keep", "best"));
        Assert.Equal(2, code);
        Assert.Equal("mtlora train: error: --keep best keeps the validation with the best delta_m, which needs a single-task baseline for at least one trained task " +
            "(semseg, depth, normals, edge); give --baselines task=value pairs (e.g. semseg=<value>), or --keep last.", stderr.Trim());
        (code, stdout, stderr) = CliRunner.Run(trained.Train(Path.Combine(dir.Path, "best.zip"), "--epochs", "2", "--keep", "best", "--val-every", "1",
            "--baselines", "depth=0.75,edge=50", "--log-dir", Path.Combine(dir.Path, "logs-best")));
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("best", json["validation"]!["kept"]!.GetValue<string>());
        var best = json["validation"]!["best"]!["metrics"]!;
        Assert.True(JsonNode.DeepEquals(best, json["metrics"]));
        Assert.NotNull(json["metrics"]!["delta_m"]);
        int bestEpoch = json["validation"]!["best"]!["epoch"]!.GetValue<int>();
        Assert.Contains($"the trained model's metrics are those of the validation after epoch {bestEpoch} ", stderr);
        // And they are what a fresh evaluation of the saved best weights gives (to 1e-6: another batching of the same sums).
        (code, var evaluated, stderr) = CliRunner.Run("evaluate", "--model", Path.Combine(dir.Path, "best.zip"), "--dataset", "nyud", "--data", trained.DataRoot);
        Assert.True(code == 0, stderr);
        foreach (var (task, key) in new[] { ("depth", "rmse"), ("edge", "edge_f@0.5"), ("semseg", "mIoU"), ("normals", "mean") })
            Assert.Equal(best[task]![key]!.GetValue<double>(), JsonNode.Parse(evaluated)![task]![key]!.GetValue<double>(), 4);
    }

    [Fact]
    public void WithoutDataTheSyntheticNyudIsTrainedAndComparedWithTheUntrainedNetwork()
    {
        using var dir = Fixture.TempDir();
        var (code, stdout, stderr) = CliRunner.Run("train", "--dataset", "nyud", "--out", Path.Combine(dir.Path, "m.zip"), "--cache-dir", Path.Combine(dir.Path, "cache"),
            "--synthetic-train", "4", "--synthetic-val", "2", "--epochs", "1", "--batch-size", "2", "--image-size", "64", "--device", "cpu", "--seed", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("  data        synthetic NYUD-v2 ", stdout);
        Assert.Contains("  augment     flip, nyud draws (rotation=0,scale=1|1.2|1.5), single-pass", stdout);
        Assert.Matches(@"\n  semseg +mIoU % +\d+\.\d\d -> +\d+\.\d\d ", stdout);
        Assert.Matches(@"\n  depth +RMSE \(lower is better\) +\d+\.\d{4} -> +\d+\.\d{4} +\([+-]\d+\.\d{4} better\)", stdout);
        Assert.Matches(@"\n  normals +mean angle error \(lower is better\) +\d+\.\d\d° -> +\d+\.\d\d°", stdout);
        Assert.Matches(@"\n  edge +edge_f@0\.5 % \(not ODS-F\) +\d+\.\d\d -> +\d+\.\d\d ", stdout);
        Assert.Contains("(no Δm: it needs single-task baselines measured on real NYUD-v2", stdout);
        // NYUD's validations during Fit are without baselines, as the report: the last one is the report's, not scored again.
        Assert.Contains("the trained model's metrics are those of the validation after epoch 1 (step 2), which scored these weights", stderr);
        Assert.DoesNotContain("evaluating the trained model", stderr);
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "cache", "synthetic-nyud-4-2-160x120-seed1")));
    }
}
