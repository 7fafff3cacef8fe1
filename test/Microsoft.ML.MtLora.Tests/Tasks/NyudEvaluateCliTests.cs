using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Nyud;
using TorchSharp;

using static Microsoft.ML.MtLora.Tests.CliRunner;

namespace Microsoft.ML.MtLora.Tests.Tasks;

/// <summary><c>mtlora evaluate --predictions &lt;dir&gt; --dataset nyud --data &lt;root&gt;</c> on make-synthetic NYUD data,
/// with prediction files written here and expected values computed from the label files.</summary>
public sealed class NyudEvaluateCliTests : IDisposable
{
    private const int Width = 40, Height = 30;
    private readonly string _dir = Directory.CreateTempSubdirectory("mtlora-nyud-eval-").FullName;
    private readonly string _root;
    private readonly IReadOnlyList<string> _ids;

    public NyudEvaluateCliTests()
    {
        _root = Path.Combine(_dir, "data");
        var (code, _, stderr) = Run("make-synthetic", "--dataset", "nyud", "--out", _root, "--count", "2", "--seed", "5", "--size", $"{Width}x{Height}");
        Assert.True(code == 0, stderr);
        _ids = NyudLayout.ReadSplit(_root, "val");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private float[] Label(string task, string id) => NpyFile.Read(Path.Combine(_root, task, id + ".npy")).Values;

    private string Predictions(string name, Func<float[], float[]> depth, Func<float[], byte[]>? edgePng = null)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.Combine(dir, "depth"));
        Directory.CreateDirectory(Path.Combine(dir, "edge"));
        foreach (var id in _ids)
        {
            NpyFile.WriteFloat32(Path.Combine(dir, "depth", id + ".npy"), [Height, Width], depth(Label("depth", id)));
            if (edgePng is null) File.Copy(Path.Combine(_root, "edge", id + ".npy"), Path.Combine(dir, "edge", id + ".npy"));
            else IndexedPng.WriteGray(Path.Combine(dir, "edge", id + ".png"), new IndexedImage(Width, Height, edgePng(Label("edge", id))));
        }
        return dir;
    }

    private static JsonNode Evaluate(params string[] args)
    {
        var (code, stdout, stderr) = Run(["evaluate", .. args]);
        Assert.True(code == 0, stderr);
        return JsonNode.Parse(stdout)!;
    }

    [Fact]
    public void TheGroundTruthScoresPerfectly()
    {
        var dir = Predictions("truth", gt => gt);
        var json = Evaluate("--predictions", dir, "--dataset", "nyud", "--data", _root);
        // The synthetic depth has holes (0 m) that DepthMeter counts as valid (only 255 is ignored, as the reference's): the
        // prediction 0 is clamped to 1e-9, so the RMSE is at most 1e-9 and log 0 makes the log-RMSE infinite (JSON null, noted).
        Assert.InRange(json["depth"]!["rmse"]!.GetValue<double>(), 0, 1e-9);
        Assert.Equal(Width * Height * _ids.Count, json["depth"]!["pixels"]!.GetValue<long>());
        Assert.Null(json["depth"]!["log_rmse"]);
        Assert.Equal("Infinity", json["non_finite"]!["depth.log_rmse"]!.GetValue<string>());
        Assert.Equal(1.0, json["edge"]!["edge_f@0.5"]!.GetValue<double>());
        Assert.Equal(1.0, json["edge"]!["precision"]!.GetValue<double>());
        Assert.False(json.AsObject().ContainsKey("delta_m"));   // --baselines defaults to none for nyud
    }

    [Fact]
    public void PerturbedPredictionsScoreAsComputedByHand()
    {
        // Depth: every pixel 0.5 m too far (holes included: 0 → 0.5) → RMSE 0.5. Edge as a PNG: the true edges, and the whole
        // first row marked an edge too → TP = positives P, FP = non-edge pixels of the first row, FN = 0: F = 2P / (2P + FP).
        var dir = Predictions("perturbed", gt => gt.Select(v => v + 0.5f).ToArray(),
            gt => gt.Select((v, i) => i < Width || v >= 0.5f ? (byte)255 : (byte)0).ToArray());
        long positives = 0, falsePositives = 0;
        foreach (var id in _ids)
        {
            var edge = Label("edge", id);
            positives += edge.Count(v => v >= 0.5f);
            falsePositives += edge.Take(Width).Count(v => v < 0.5f);
        }
        Assert.True(positives > 0 && falsePositives > 0);
        var json = Evaluate("--predictions", dir, "--dataset", "nyud", "--data", _root, "--baselines", "depth=0.4");
        Assert.Equal(0.5, json["depth"]!["rmse"]!.GetValue<double>(), 5);
        Assert.Equal(2.0 * positives / (2.0 * positives + falsePositives), json["edge"]!["edge_f@0.5"]!.GetValue<double>(), 12);
        Assert.Equal(1.0, json["edge"]!["recall"]!.GetValue<double>());
        // Δm over depth only (lower is better): −(0.5 − 0.4) / 0.4 · 100 = −25 %.
        Assert.Equal(-25.0, json["delta_m"]!.GetValue<double>(), 3);
    }

    [Fact]
    public void ASafetensorsFileMayHoldDepthAndEdge()
    {
        var path = Path.Combine(_dir, "p.safetensors");
        using (var scope = torch.NewDisposeScope())
        {
            SafeTensors.Save(path, new Dictionary<string, torch.Tensor>
            {
                ["out.depth"] = torch.tensor(new[] { 1.5f, 2.5f, 9f }).reshape(1, 1, 1, 3),   // errors 0.5, −0.5, ignored → RMSE 0.5
                ["target.depth"] = torch.tensor(new[] { 1f, 3f, 255f }).reshape(1, 1, 1, 3),
                ["out.edge"] = torch.tensor(new[] { 1f, -1f, 1f }).reshape(1, 1, 1, 3),        // TP, TN, FP → F = 2 / (2 + 1)
                ["target.edge"] = torch.tensor(new[] { 1f, 0f, 0f }).reshape(1, 1, 1, 3),
            });
        }
        var json = Evaluate("--predictions", path, "--baselines", "depth=0.4");
        Assert.Equal(0.5, json["depth"]!["rmse"]!.GetValue<double>(), 6);
        Assert.Equal(2.0 / 3, json["edge"]!["edge_f@0.5"]!.GetValue<double>(), 12);
        Assert.Equal(-25.0, json["delta_m"]!.GetValue<double>(), 4);
        // The default 'paper' baselines cover PASCAL's tasks only: no Δm for depth and edge alone.
        Assert.False(Evaluate("--predictions", path).AsObject().ContainsKey("delta_m"));
    }

    [Fact]
    public void BadInputIsOneLineNamingTheFault()
    {
        var dir = Predictions("missing", gt => gt);
        File.Delete(Path.Combine(dir, "depth", _ids[1] + ".npy"));
        var (code, _, stderr) = Run("evaluate", "--predictions", dir, "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains(_ids[1] + ".npy", stderr);
        Assert.Single(stderr.Trim().Split('\n'));

        (code, _, stderr) = Run("evaluate", "--predictions", dir, "--dataset", "nyud", "--data", _root, "--baselines", "semseg=37.18");
        Assert.Equal(2, code);
        Assert.Contains("unknown task 'semseg'", stderr);

        NpyFile.WriteFloat32(Path.Combine(dir, "depth", _ids[1] + ".npy"), [Width, Height], new float[Width * Height]);
        (code, _, stderr) = Run("evaluate", "--predictions", dir, "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains($"expected ({Height}, {Width})", stderr);

        (code, _, stderr) = Run("evaluate", "--predictions", Path.Combine(_dir, "nothing"), "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains("--predictions", stderr);

        (code, _, stderr) = Run("evaluate", "--model", "m.zip", "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains("--model", stderr);
    }
}
