using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>
/// <c>mtlora predict</c> on a model of NYUD-v2 tasks (the tiny model of <see cref="TrainedNyudCliModel"/>): the per-task
/// folders it writes are what <c>evaluate --predictions --dataset nyud</c> reads, and score as <c>evaluate --model</c> does.
/// </summary>
[Collection(SerialCollection.Name)]
public class NyudPredictCliTests(TrainedNyudCliModel trained) : IClassFixture<TrainedNyudCliModel>
{
    [Fact]
    public void PredictionsOfANyudModelEvaluateBackToTheModelsNativeMetrics()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        using var dir = Fixture.TempDir();
        var outDir = Path.Combine(dir.Path, "pred");
        var images = Path.Combine(trained.DataRoot, "images");
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", trained.ModelPath, "--image", images, "--out", outDir);
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("per-task-folders", json["layout"]!.GetValue<string>());
        Assert.Equal(["semseg", "depth", "normals", "edge"], json["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));

        // Per image: semseg/<id>.png (palette indices = class ids), depth/<id>.npy (+ a picture), normals/<id>.png, edge/<id>.png.
        var ids = Directory.GetFiles(images).Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(12, ids.Length); // make-synthetic's 6 train and 6 val images: evaluate reads the val ids
        var expected = ids.SelectMany(id => new[] { $"semseg/{id}.png", $"depth/{id}.npy", $"depth/{id}.png", $"normals/{id}.png", $"edge/{id}.png" })
            .Order(StringComparer.Ordinal);
        Assert.Equal(expected, json["files"]!.AsArray().Select(f => Path.GetRelativePath(outDir, f!.GetValue<string>()).Replace('\\', '/')).Order(StringComparer.Ordinal));
        var semseg = IndexedPng.Read(Path.Combine(outDir, "semseg", ids[0] + ".png"));
        Assert.Equal((64, 48), (semseg.Width, semseg.Height));
        Assert.All(semseg.Pixels, v => Assert.InRange(v, (byte)0, (byte)39));
        Assert.Equal([48, 64], NpyFile.Read(Path.Combine(outDir, "depth", ids[0] + ".npy")).Shape);

        (code, stdout, stderr) = CliRunner.Run("evaluate", "--predictions", outDir, "--dataset", "nyud", "--data", trained.DataRoot);
        Assert.True(code == 0, stderr);
        var fromFiles = JsonNode.Parse(stdout)!;
        (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--dataset", "nyud", "--data", trained.DataRoot, "--protocol", "native");
        Assert.True(code == 0, stderr);
        var fromModel = JsonNode.Parse(stdout)!;

        // Class ids (palette PNG) and depth (float32 .npy) are the model's values bit for bit: every number equal (up to the
        // summation order of the float metrics, 1e-9 relative). Edge probabilities are stored as round(p·255): p < 0.5 gives at
        // most 127 (127/255 < 0.5) and p ≥ 0.5 at least 128, so the 0.5 threshold of edge_f@0.5 sees the same maps: equal too.
        foreach (var task in new[] { "semseg", "depth", "edge" })
            foreach (var (key, value) in fromModel[task]!.AsObject())
                if (value is JsonValue v && v.TryGetValue<double>(out double x))
                {
                    double y = fromFiles[task]![key]!.GetValue<double>();
                    Assert.True(Math.Abs(x - y) <= 1e-9 * Math.Max(1, Math.Abs(x)), $"{task}.{key}: model {x}, files {y}");
                }
        // Normals are stored as round((n + 1)·127.5) per component: each component moves by at most 1/255 and the vector by
        // at most √3/255 (0.0068) before renormalisation, i.e. at most 0.39° per pixel; the mean, median and RMSE angle move by
        // no more than that. The shares within 11.25°/22.5°/30° can change for the pixels whose angle lies within 0.39° of a
        // threshold; the tiny model's angles are spread over 0..180°, so that is a small share (measured: 0.23 points at most).
        var normalsModel = fromModel["normals"]!.AsObject();
        var normalsFiles = fromFiles["normals"]!.AsObject();
        Assert.Equal(normalsModel["pixels"]!.GetValue<long>(), normalsFiles["pixels"]!.GetValue<long>());
        foreach (var (key, limit) in new[] { ("mean", 0.4), ("median", 0.4), ("rmse", 0.4), ("rmse_true", 0.4), ("11.25", 1.0), ("22.5", 1.0), ("30", 1.0) })
            Assert.True(Math.Abs(normalsModel[key]!.GetValue<double>() - normalsFiles[key]!.GetValue<double>()) <= limit,
                $"normals.{key}: model {normalsModel[key]}, files {normalsFiles[key]}");
    }

    [Fact]
    public void TheOnnxEngineWritesTheSameNyudFilesAsTheModelZip()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        using var dir = Fixture.TempDir();
        var onnx = dir.File("model.onnx");
        var (code, stdout, stderr) = CliRunner.Run("export-onnx", "--model", trained.ModelPath, "--out", onnx);
        Assert.True(code == 0, stderr);
        Assert.Equal(["semseg", "depth", "normals", "edge"], JsonNode.Parse(stdout)!["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));
        var images = Path.Combine(trained.DataRoot, "images");
        string zipOut = Path.Combine(dir.Path, "zip"), onnxOut = Path.Combine(dir.Path, "onnx");
        (code, _, stderr) = CliRunner.Run("predict", "--model", trained.ModelPath, "--image", images, "--out", zipOut);
        Assert.True(code == 0, stderr);
        (code, stdout, stderr) = CliRunner.Run("predict", "--engine", "onnx", "--model", onnx, "--image", images, "--out", onnxOut);
        Assert.True(code == 0, stderr);
        Assert.Equal("per-task-folders", JsonNode.Parse(stdout)!["layout"]!.GetValue<string>());

        foreach (var id in Directory.GetFiles(images).Select(Path.GetFileNameWithoutExtension))
        {
            // Class ids equal; depth within the ONNX tests' 1e-4 (relative to the largest value, at least 1); the 8-bit
            // renderings of edges and normals by at most one level on a rare pixel (ONNX Runtime and libtorch round the last
            // bits differently, as OnnxCliTests measures for PASCAL's saliency and normals).
            Assert.Equal(IndexedPng.Read(Path.Combine(zipOut, "semseg", id + ".png")).Pixels, IndexedPng.Read(Path.Combine(onnxOut, "semseg", id + ".png")).Pixels);
            var (d0, d1) = (NpyFile.Read(Path.Combine(zipOut, "depth", id + ".npy")).Values, NpyFile.Read(Path.Combine(onnxOut, "depth", id + ".npy")).Values);
            float scale = Math.Max(1f, d0.Max(Math.Abs)), worst = d0.Zip(d1, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4f * scale, $"{id}: depth differs by up to {worst}");
            var (e0, e1) = (IndexedPng.Read(Path.Combine(zipOut, "edge", id + ".png")).Pixels, IndexedPng.Read(Path.Combine(onnxOut, "edge", id + ".png")).Pixels);
            int differ = e0.Zip(e1, (a, b) => Math.Abs(a - b)).Count(d => d > 0);
            Assert.True(e0.Zip(e1, (a, b) => Math.Abs(a - b)).Max() <= 1 && differ <= Math.Max(1, e0.Length / 1000), $"{id}: {differ} edge pixels differ");
            using var n0 = SkiaSharp.SKBitmap.Decode(Path.Combine(zipOut, "normals", id + ".png"));
            using var n1 = SkiaSharp.SKBitmap.Decode(Path.Combine(onnxOut, "normals", id + ".png"));
            var (b0, b1) = (n0.Bytes, n1.Bytes);
            differ = b0.Zip(b1, (a, b) => Math.Abs(a - b)).Count(d => d > 0);
            Assert.True(b0.Zip(b1, (a, b) => Math.Abs(a - b)).Max() <= 1 && differ <= Math.Max(1, b0.Length / 1000), $"{id}: {differ} normals bytes differ");
        }
    }

    [Fact]
    public void GridIsRefusedForANyudModelWithOneLineAndNothingWritten()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        using var dir = Fixture.TempDir();
        var outDir = Path.Combine(dir.Path, "pred");
        var image = Directory.GetFiles(Path.Combine(trained.DataRoot, "images"))[0];
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", trained.ModelPath, "--image", image, "--out", outDir, "--grid");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Equal("mtlora predict: error: --grid draws the PASCAL-Context tasks only (semseg with 21 classes, human_parts, sal, normals); " +
            "this model predicts 'semseg' (Segmentation, 40 output channel(s)): leave --grid out.", stderr.Trim());
        Assert.False(Directory.Exists(outDir));

        // --layout flat: <name>.<task>.png|.npy, the same files as the folders.
        (code, stdout, stderr) = CliRunner.Run("predict", "--model", trained.ModelPath, "--image", image, "--out", outDir, "--layout", "flat");
        Assert.True(code == 0, stderr);
        var name = Path.GetFileNameWithoutExtension(image);
        Assert.Equal(new[] { "depth.npy", "depth.png", "edge.png", "normals.png", "semseg.png" }.Select(s => $"{name}.{s}"),
            Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("flat", JsonNode.Parse(stdout)!["layout"]!.GetValue<string>());
    }
}
