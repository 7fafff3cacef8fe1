using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Synthetic;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>Trains one tiny model through <c>mtlora train</c> on a small synthetic PASCAL_MT folder, shared by the verb tests.</summary>
public sealed class TrainedCliModel : IDisposable
{
    private readonly TempDir _dir = Fixture.TempDir();
    private readonly TinyPascal _data = new();

    public TrainedCliModel()
    {
        DataRoot = _data.Root;
        ModelPath = Path.Combine(_dir.Path, "model.zip");
        LogDir = Path.Combine(_dir.Path, "logs");
        (ExitCode, Stdout, Stderr) = CliVerbTests.Invoke(_data.Train(ModelPath, "--epochs", "2", "--log-dir", LogDir));
    }

    public string DataRoot { get; }
    public string ModelPath { get; }
    public string LogDir { get; }
    public int ExitCode { get; }
    public string Stdout { get; }
    public string Stderr { get; }
    public string Folder => _dir.Path;

    public void Dispose()
    {
        _dir.Dispose();
        _data.Dispose();
    }
}

// Training seeds torch's global generator (as Fit does): run alone, so no other test's random draws move under it.
[Collection(SerialCollection.Name)]
public class CliVerbTests(TrainedCliModel trained) : IClassFixture<TrainedCliModel>
{
    private static readonly string[] TaskNames = ["semseg", "human_parts", "sal", "normals"];

    internal static (int Code, string Stdout, string Stderr) Invoke(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void TrainSavesTheModelTheLogAndReportsEveryTask()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        Assert.True(new FileInfo(trained.ModelPath).Length > 0);
        var json = JsonNode.Parse(trained.Stdout)!.AsObject();
        Assert.Equal(TaskNames, json["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal("mtlora", json["mode"]!.GetValue<string>());
        Assert.Equal(4, json["steps"]!.GetValue<long>()); // 2 epochs of 4 images in batches of 2
        Assert.Equal(4, json["data"]!["train"]!.GetValue<long>());
        var metrics = json["metrics"]!.AsObject();
        foreach (var task in TaskNames) Assert.True(metrics.ContainsKey(task), $"metrics lack {task}: {metrics}");
        Assert.True(metrics.ContainsKey("delta_m")); // real-data layout: Δm against the paper's baselines
        long trainable = json["parameters"]!["trainable"]!.GetValue<long>(), total = json["parameters"]!["total"]!.GetValue<long>();
        Assert.InRange(trainable, 1, total - 1); // MTLoRA freezes the backbone

        var log = File.ReadAllLines(Path.Combine(trained.LogDir, "training_log.csv"));
        Assert.Equal(1 + 4, log.Length); // header + one row per step
        Assert.Contains("<html", File.ReadAllText(Path.Combine(trained.LogDir, "training_curves.html")), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void EvaluateModelOnDataPrintsTheMetricsOfEveryTaskAsTrainDid()
    {
        var (code, stdout, stderr) = Invoke("evaluate", "--model", trained.ModelPath, "--data", trained.DataRoot, "--split", "val");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        foreach (var task in TaskNames) Assert.True(json.ContainsKey(task), $"no {task} in {stdout}");
        // The reloaded model scores the validation split as the trained one did at the end of train. train reports Fit's last
        // validation (the same weights, data, baselines and protocol; not scored twice), computed by the training network, whose
        // float32 sums run in another order than the saved model's: equal to 1e-6 relative, the class counts exactly.
        var trainedMetrics = JsonNode.Parse(trained.Stdout)!["metrics"]!;
        Assert.Equal(trainedMetrics["semseg"]!["mIoU"]!.GetValue<double>(), json["semseg"]!["mIoU"]!.GetValue<double>(), 6);
        Assert.Equal(trainedMetrics["normals"]!["mean"]!.GetValue<double>(), json["normals"]!["mean"]!.GetValue<double>(), 4);
        Assert.Equal(trainedMetrics["semseg"]!["pixels"]!.GetValue<long>(), json["semseg"]!["pixels"]!.GetValue<long>());
    }

    [Fact]
    public void PredictWritesOnePngPerTaskAtTheInputSizeAndAGrid()
    {
        using var outDir = Fixture.TempDir();
        var images = Path.Combine(trained.DataRoot, "JPEGImages");
        var inputs = Directory.GetFiles(images, "*.jpg").Order(StringComparer.Ordinal).ToArray();
        var (code, stdout, stderr) = Invoke("predict", "--model", trained.ModelPath, "--image", images, "--out", outDir.Path, "--grid");
        Assert.True(code == 0, stderr);
        Assert.Equal(inputs.Length, JsonNode.Parse(stdout)!["images"]!.GetValue<int>());
        foreach (var input in inputs)
        {
            var name = Path.GetFileNameWithoutExtension(input);
            foreach (var task in TaskNames.Append("grid"))
                Assert.True(File.Exists(Path.Combine(outDir.Path, $"{name}.{task}.png")), $"missing {name}.{task}.png");
        }
        var first = Path.GetFileNameWithoutExtension(inputs[0]);
        foreach (var task in TaskNames)
        {
            using var png = SKBitmap.Decode(Path.Combine(outDir.Path, $"{first}.{task}.png"));
            Assert.Equal((72, 56), (png.Width, png.Height));
        }
        using (var gridPng = SKBitmap.Decode(Path.Combine(outDir.Path, $"{first}.grid.png")))
            Assert.True(gridPng.Width > 72 * 4 && gridPng.Height >= 56, $"grid is {gridPng.Width}x{gridPng.Height}");

        // A single file works too, and the class map is drawn with the VOC palette.
        using var single = Fixture.TempDir();
        (code, _, stderr) = Invoke("predict", "--model", trained.ModelPath, "--image", inputs[0], "--out", single.Path);
        Assert.True(code == 0, stderr);
        Assert.Equal(TaskNames.Length, Directory.GetFiles(single.Path, "*.png").Length);
        using var semseg = SKBitmap.Decode(Path.Combine(single.Path, $"{first}.semseg.png"));
        var palette = Enumerable.Range(0, 21).Select(i => Microsoft.ML.MtLora.Visualization.ColorMaps.LabelColor((byte)i)).ToHashSet();
        Assert.Contains(semseg.GetPixel(10, 10), palette);
    }

    [Theory]
    [InlineData("evaluate --model {missing} --data {data}", "does not exist")]
    [InlineData("evaluate --model {damaged} --data {data}", "not a readable")]
    [InlineData("evaluate --model {model} --data {missing}", "does not exist")]
    [InlineData("evaluate --model {model}", "--data")]
    [InlineData("predict --model {missing} --image {image} --out {out}", "does not exist")]
    [InlineData("predict --model {damaged} --image {image} --out {out}", "not a readable")]
    [InlineData("predict --model {model} --image {missing} --out {out}", "neither a file nor a folder")]
    [InlineData("train --data {missing} --out {out}/m.zip", "does not exist")]
    [InlineData("train --data {data} --mode lora --out {out}/m.zip", "--mode")]
    [InlineData("train --data {data} --tasks semseg,depth --out {out}/m.zip", "depth")]
    [InlineData("train --data {data} --config {missing} --out {out}/m.zip", "--config")]
    [InlineData("train --data {data} --backbone {missing} --out {out}/m.zip", "--backbone")]
    [InlineData("train --data {data} --config {config} --epochs 0 --out {out}/m.zip", "--epochs is 0")]
    [InlineData("train --data {data} --out {missing}/m.zip", "--out")]
    public void UserErrorsGiveOneLineAndExitCode2(string command, string expected)
    {
        using var dir = Fixture.TempDir();
        var damaged = Path.Combine(dir.Path, "damaged.zip");
        File.WriteAllText(damaged, "not a zip");
        var args = command.Split(' ').Select(a => a
            .Replace("{missing}", Path.Combine(dir.Path, "missing"))
            .Replace("{damaged}", damaged)
            .Replace("{model}", trained.ModelPath)
            .Replace("{data}", trained.DataRoot)
            .Replace("{image}", Path.Combine(trained.DataRoot, "JPEGImages"))
            .Replace("{config}", Fixture.Path("tiny4", "config.json"))
            .Replace("{out}", dir.Path)).ToArray();
        var (code, stdout, stderr) = Invoke(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, line);
    }

    [Fact]
    public void EvaluateRefusesPredictionsWithModel()
    {
        var (code, _, stderr) = Invoke("evaluate", "--predictions", "p.safetensors", "--model", trained.ModelPath, "--data", trained.DataRoot);
        Assert.Equal(2, code);
        Assert.Contains("not both", stderr);
    }
}

/// <summary>The main job's path: no --data, the synthetic data set from the cache, the untrained comparison.</summary>
[Collection(SerialCollection.Name)]
public class CliSyntheticTrainTests
{
    [Fact]
    public void TrainWithoutDataReusesTheCachedSyntheticSetAndComparesWithTheUntrainedNetwork()
    {
        using var dir = Fixture.TempDir();
        // A complete cached set under the name train would generate (4 train, 2 val, 160x120, seed 0), made smaller here
        // (64x48) so the test is fast; train must use it as it is.
        var cache = Path.Combine(dir.Path, "cache");
        var root = Path.Combine(cache, "synthetic-4-2-160x120-seed0");
        SyntheticPascal.Generate(root, new SyntheticPascalOptions { TrainCount = 4, ValCount = 2, Width = 64, Height = 48, Seed = 0 });
        File.WriteAllText(Path.Combine(root, ".complete"), "");
        var listFile = Path.Combine(root, "ImageSets", "Context", "train.txt");
        var stamp = File.GetLastWriteTimeUtc(listFile);

        var model = Path.Combine(dir.Path, "model.zip");
        var (code, stdout, stderr) = CliVerbTests.Invoke("train", "--cache-dir", cache, "--synthetic-train", "4", "--synthetic-val", "2",
            "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--out", model);
        Assert.True(code == 0, stderr);
        Assert.Contains("untrained network (same seed) -> trained", stdout);
        foreach (var task in new[] { "semseg", "human_parts", "sal", "normals" }) Assert.Contains($"  {task} ", stdout);
        Assert.Contains($"synthetic PASCAL-Context {root}: 4 train, 2 val images", stdout);
        Assert.Contains("Swin embed 24", stdout);
        Assert.Contains("1 steps", stdout);
        Assert.True(File.Exists(model));
        Assert.True(File.Exists(Path.Combine(dir.Path, "model.zip.logs", "training_curves.html")));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(listFile));
        Assert.Single(Directory.GetDirectories(cache));
    }
}
