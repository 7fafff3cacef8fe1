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
        // The synthetic depth has holes (0 m): they are left out (the reference's eval_depth.py: valid_mask = label != 0), so
        // the RMSE and log-RMSE of the ground truth are 0 and the pixels are the non-zero labels, counted here.
        long valid = _ids.Sum(id => (long)Label("depth", id).Count(v => v != 0f));
        Assert.True(valid > 0 && valid < (long)Width * Height * _ids.Count);   // the set has holes, so this checks they are left out
        Assert.Equal(0.0, json["depth"]!["rmse"]!.GetValue<double>());
        Assert.Equal(0.0, json["depth"]!["log_rmse"]!.GetValue<double>());
        Assert.Equal(valid, json["depth"]!["pixels"]!.GetValue<long>());
        Assert.False(json.AsObject().ContainsKey("non_finite"));
        Assert.Equal(1.0, json["edge"]!["edge_f@0.5"]!.GetValue<double>());
        Assert.Equal(1.0, json["edge"]!["precision"]!.GetValue<double>());
        Assert.False(json.AsObject().ContainsKey("delta_m"));   // --baselines defaults to none for nyud
    }

    [Fact]
    public void PerturbedPredictionsScoreAsComputedByHand()
    {
        // Depth: every pixel 0.5 m too far (holes left out) → RMSE 0.5. Edge as a PNG: the true edges, and the whole
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

    /// <summary>A folder with semseg/&lt;id&gt;.png (gray) and normals/&lt;id&gt;.npy (H×W×3) made from each id's labels.</summary>
    private string SemsegNormals(string name, Func<byte[], byte[]> semseg, Func<float[], float[]>? normals)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.Combine(dir, "semseg"));
        if (normals is not null) Directory.CreateDirectory(Path.Combine(dir, "normals"));
        foreach (var id in _ids)
        {
            IndexedPng.WriteGray(Path.Combine(dir, "semseg", id + ".png"), new IndexedImage(Width, Height, semseg(NyudLayout.ReadSemseg(_root, id, Width, Height))));
            if (normals is not null)
                NpyFile.WriteFloat32(Path.Combine(dir, "normals", id + ".npy"), [Height, Width, 3], normals(Label("normals", id)));
        }
        return dir;
    }

    /// <summary>The valid normals of an id (label vectors of non-zero length), unit length, in file order (H, W, 3).</summary>
    private IEnumerable<(int Pixel, double X, double Y, double Z)> ValidNormals(string id)
    {
        var n = Label("normals", id);
        for (int i = 0; i < Width * Height; i++)
        {
            double x = n[3 * i], y = n[3 * i + 1], z = n[3 * i + 2], norm = Math.Sqrt(x * x + y * y + z * z);
            if (norm > 0) yield return (i, x / norm, y / norm, z / norm);
        }
    }

    [Fact]
    public void Semseg_and_normals_files_score_perfectly_when_they_are_the_labels()
    {
        // The labels' ignored pixels (255) predicted as class 0: a prediction has a class everywhere.
        var dir = SemsegNormals("truth-sn", gt => gt.Select(v => v == 255 ? (byte)0 : v).ToArray(), gt => gt);
        var json = Evaluate("--predictions", dir, "--dataset", "nyud", "--data", _root);
        // IoU 1 for every class the labels hold; the reference's mean runs over all 40, a class absent everywhere scoring 0.
        int present = _ids.SelectMany(id => NyudLayout.ReadSemseg(_root, id, Width, Height)).Where(v => v != 255).Distinct().Count();
        Assert.InRange(present, 3, 39);
        Assert.Equal(present / 40.0, json["semseg"]!["mIoU"]!.GetValue<double>(), 12);
        Assert.Equal(40, json["semseg"]!["per_class_iou"]!.AsArray().Count);            // NYUD's 40 classes
        long labelled = _ids.Sum(id => NyudLayout.ReadSemseg(_root, id, Width, Height).Count(v => v != 255));
        Assert.Equal(labelled, json["semseg"]!["pixels"]!.GetValue<long>());
        Assert.InRange(json["normals"]!["mean"]!.GetValue<double>(), 0, 0.05);         // float rounding of acos near 1
        Assert.Equal(_ids.Sum(id => ValidNormals(id).Count()), json["normals"]!["pixels"]!.GetValue<long>());
        Assert.False(json.AsObject().ContainsKey("depth"));                             // any subset: only the folders present
        Assert.False(json.AsObject().ContainsKey("edge"));
    }

    [Fact]
    public void Perturbed_semseg_and_normals_score_as_computed_by_hand()
    {
        // Semseg: every labelled pixel of the first image row predicted as class 0. Per class c over the whole split (counts
        // made here from the label files): TP_c, FP_c, FN_c; IoU_c = TP/(TP+FP+FN), 0 for a class with no label and no
        // prediction pixel (the reference's max(·, 1e-8) denominator); the mean over all 40 classes.
        // Normals: the first row predicted as the opposite vector (180°), the rest as the label (0°).
        var dir = SemsegNormals("perturbed-sn",
            gt => gt.Select((v, i) => i < Width ? (byte)0 : v == 255 ? (byte)0 : v).ToArray(),
            gt => gt.Select((v, k) => k < 3 * Width ? -v : v).ToArray());
        var tp = new long[40];
        var fp = new long[40];
        var fn = new long[40];
        long firstRow = 0, valid = 0;
        foreach (var id in _ids)
        {
            var label = NyudLayout.ReadSemseg(_root, id, Width, Height);
            for (int i = 0; i < label.Length; i++)
            {
                if (label[i] == 255) continue;
                int predicted = i < Width ? 0 : label[i];
                if (predicted == label[i]) tp[predicted]++;
                else { fp[predicted]++; fn[label[i]]++; }
            }
            foreach (var (pixel, _, _, _) in ValidNormals(id))
            {
                valid++;
                if (pixel < Width) firstRow++;
            }
        }
        double mIoU = Enumerable.Range(0, 40).Average(c => tp[c] + fp[c] + fn[c] == 0 ? 0 : (double)tp[c] / (tp[c] + fp[c] + fn[c]));
        Assert.True(firstRow > 0 && mIoU < 1);

        var json = Evaluate("--predictions", dir, "--dataset", "nyud", "--data", _root, "--baselines", "semseg=37.18,normals=20");
        Assert.Equal(mIoU, json["semseg"]!["mIoU"]!.GetValue<double>(), 9);
        double mean = 180.0 * firstRow / valid;
        Assert.Equal(mean, json["normals"]!["mean"]!.GetValue<double>(), 1);
        // Δm over semseg (higher is better) and normals (lower is better), in percent.
        double expected = ((mIoU * 100 - 37.18) / 37.18 - (json["normals"]!["mean"]!.GetValue<double>() - 20) / 20) / 2 * 100;
        Assert.Equal(expected, json["delta_m"]!.GetValue<double>(), 6);
    }

    [Fact]
    public void Normals_may_be_an_RGB_PNG_read_as_2v_over_255_minus_1()
    {
        // Every pixel (255, 128, 0): the vector (1, 1/255, −1) before normalisation; the angle to each unit label computed here.
        var dir = Path.Combine(_dir, "png-normals");
        Directory.CreateDirectory(Path.Combine(dir, "normals"));
        var rgb = new byte[3 * Width * Height];
        for (int i = 0; i < Width * Height; i++) (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = ((byte)255, (byte)128, (byte)0);
        foreach (var id in _ids) IndexedPng.WriteRgb(Path.Combine(dir, "normals", id + ".png"), Width, Height, rgb);
        double px = 1, py = 2.0 * 128 / 255 - 1, pz = -1, pn = Math.Sqrt(px * px + py * py + pz * pz);
        var angles = _ids.SelectMany(ValidNormals).Select(v => Math.Acos(Math.Clamp((v.X * px + v.Y * py + v.Z * pz) / pn, -1, 1)) * 180 / Math.PI).ToList();
        var json = Evaluate("--predictions", dir, "--dataset", "nyud", "--data", _root);
        Assert.Equal(angles.Average(), json["normals"]!["mean"]!.GetValue<double>(), 3);
        Assert.Equal(angles.Count, json["normals"]!["pixels"]!.GetValue<long>());
    }

    [Fact]
    public void Semseg_in_NYUDs_file_convention_and_bad_normals_are_refused_naming_the_file()
    {
        // NYUD's label files hold 1..40 (0 = unlabelled); predictions hold the network's 0..39: a 40 shows the wrong convention.
        var dir = SemsegNormals("file-convention", gt => gt.Select(v => v == 255 ? (byte)0 : (byte)(v + 1)).ToArray(), normals: null);
        var path = Path.Combine(dir, "semseg", _ids[0] + ".png");
        IndexedPng.WriteGray(path, new IndexedImage(Width, Height, Enumerable.Repeat((byte)40, Width * Height).ToArray()));
        var (code, _, stderr) = Run("evaluate", "--predictions", dir, "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains(path, stderr, StringComparison.Ordinal);
        Assert.Contains("holds 40", stderr, StringComparison.Ordinal);
        Assert.Contains("shifted down by 1", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));

        var normals = Path.Combine(_dir, "bad-normals");
        Directory.CreateDirectory(Path.Combine(normals, "normals"));
        NpyFile.WriteFloat32(Path.Combine(normals, "normals", _ids[0] + ".npy"), [Height, Width], new float[Width * Height]);
        (code, _, stderr) = Run("evaluate", "--predictions", normals, "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains(_ids[0] + ".npy", stderr, StringComparison.Ordinal);
        Assert.Contains($"expected ({Height}, {Width}, 3)", stderr, StringComparison.Ordinal);

        File.Delete(Path.Combine(normals, "normals", _ids[0] + ".npy"));
        (code, _, stderr) = Run("evaluate", "--predictions", normals, "--dataset", "nyud", "--data", _root);
        Assert.Equal(2, code);
        Assert.Contains(_ids[0] + ".png", stderr, StringComparison.Ordinal);             // neither .npy nor .png
    }
}
