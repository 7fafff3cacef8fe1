using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using SkiaSharp;

using static Microsoft.ML.MtLora.Tests.CliRunner;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public sealed class NyudCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mtlora-nyud-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Make(string name, int seed, int count = 3)
    {
        var root = Path.Combine(_dir, name);
        var (code, stdout, stderr) = Run("make-synthetic", "--dataset", "nyud", "--out", root, "--count", count.ToString(), "--seed", seed.ToString(), "--size", "40x30");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal((count, count), ((int)json["train"]!, (int)json["val"]!));
        return root;
    }

    /// <summary>A second, minimal .npy reader (little-endian float32, version 1.0, C order: what the generator writes),
    /// independent of NpyFile: the header length is the uint16 at byte 8, the data follows the header.</summary>
    private static float[] ReadNpyFloat32(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.Contains("'descr': '<f4'", Encoding.ASCII.GetString(bytes, 10, headerLength));
        var values = new float[(bytes.Length - 10 - headerLength) / 4];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(10 + headerLength + 4 * i));
        return values;
    }

    /// <summary>The segmentation PNG decoded by SkiaSharp (not IndexedPng): the gray value of each pixel.</summary>
    private static byte[] ReadPngGray(string path)
    {
        using var bitmap = SKBitmap.Decode(path);
        var values = new byte[bitmap.Width * bitmap.Height];
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++) values[y * bitmap.Width + x] = bitmap.GetPixel(x, y).Red;
        return values;
    }

    [Fact]
    public void MakeSynthetic_is_deterministic_and_writes_the_NYUD_MT_layout()
    {
        var a = Make("a", seed: 7);
        var b = Make("b", seed: 7);
        var c = Make("c", seed: 8);
        var files = Directory.GetFiles(a, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(a, f)).Order().ToArray();
        // 6 ids × 5 files + 2 split lists.
        Assert.Equal(6 * 5 + 2, files.Length);
        Assert.Equal(files, Directory.GetFiles(b, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(b, f)).Order());
        foreach (var f in files) Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "depth", "000001.npy")), File.ReadAllBytes(Path.Combine(c, "depth", "000001.npy")));
        Assert.Equal(["000004", "000005", "000006"], File.ReadAllLines(Path.Combine(a, "gt_sets", "val.txt")));

        // Content: a JPEG, normals are unit vectors, edges 0/1, depth ≥ 0 in metres with some holes, classes 0..40.
        using (var image = SKBitmap.Decode(Path.Combine(a, "images", "000001.jpg"))) Assert.Equal((40, 30), (image.Width, image.Height));
        var normals = ReadNpyFloat32(Path.Combine(a, "normals", "000001.npy"));
        Assert.Equal(40 * 30 * 3, normals.Length);
        for (int i = 0; i < normals.Length; i += 3)
            Assert.Equal(1.0, Math.Sqrt(normals[i] * normals[i] + normals[i + 1] * normals[i + 1] + normals[i + 2] * normals[i + 2]), 5);
        Assert.All(ReadNpyFloat32(Path.Combine(a, "edge", "000001.npy")), v => Assert.True(v is 0f or 1f));
        var depth = ReadNpyFloat32(Path.Combine(a, "depth", "000001.npy"));
        Assert.All(depth, v => Assert.InRange(v, 0f, 20f));
        Assert.Contains(0f, depth);
        Assert.All(ReadPngGray(Path.Combine(a, "segmentation", "000001.png")), v => Assert.InRange(v, (byte)0, (byte)40));

        var (code, _, stderr) = Run("make-synthetic", "--dataset", "nyud", "--out", a);
        Assert.Equal(2, code);
        Assert.Contains("not empty", stderr);
        // Without --size and --count: 8 + 8 images of 80x60.
        var (defaultCode, defaultOut, defaultErr) = Run("make-synthetic", "--dataset", "nyud", "--out", Path.Combine(_dir, "f"));
        Assert.True(defaultCode == 0, defaultErr);
        var summary = JsonNode.Parse(defaultOut)!;
        Assert.Equal((8, 8, 80, 60), ((int)summary["train"]!, (int)summary["val"]!, (int)summary["width"]!, (int)summary["height"]!));
        (code, _, stderr) = Run("make-synthetic", "--dataset", "nyud", "--out", Path.Combine(_dir, "d"), "--train", "4");
        Assert.Equal(2, code);
        Assert.Contains("--train is not an option of --dataset nyud (use --count)", stderr);
        (code, _, stderr) = Run("make-synthetic", "--out", Path.Combine(_dir, "e"), "--count", "4");
        Assert.Equal(2, code);
        Assert.Contains("--count is not an option of --dataset pascal", stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "d")) || Directory.Exists(Path.Combine(_dir, "e")));
    }

    [Fact]
    public void InspectData_counts_what_the_files_hold()
    {
        var root = Make("ds", seed: 3);
        var (code, stdout, stderr) = Run("inspect-data", "--dataset", "nyud", "--data", root, "--split", "val");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("val", (string)json["split"]!);
        Assert.Equal(3, (int)json["images"]!);

        // The same counts from the files, read by the second readers above, with the reference's rules:
        // segmentation 0 = unlabelled, k = class k − 1; depth valid where not 255; normals valid where x is not 255; edge ≥ 0.5.
        long semValid = 0, semIgnored = 0, depthValid = 0, depthZero = 0, normals = 0, edgePos = 0, edges = 0;
        double min = double.MaxValue, max = double.MinValue, sum = 0;
        var histogram = new SortedDictionary<int, long>();
        foreach (var id in File.ReadAllLines(Path.Combine(root, "gt_sets", "val.txt")))
        {
            foreach (var v in ReadPngGray(Path.Combine(root, "segmentation", id + ".png")))
            {
                if (v == 0) { semIgnored++; continue; }
                semValid++;
                histogram[v - 1] = histogram.GetValueOrDefault(v - 1) + 1;
            }
            foreach (var d in ReadNpyFloat32(Path.Combine(root, "depth", id + ".npy")))
            {
                if (d == 0) depthZero++;
                if (d == 255) continue;
                depthValid++;
                sum += d;
                min = Math.Min(min, d);
                max = Math.Max(max, d);
            }
            var n = ReadNpyFloat32(Path.Combine(root, "normals", id + ".npy"));
            for (int i = 0; i < n.Length; i += 3) if (n[i] != 255) normals++;
            foreach (var e in ReadNpyFloat32(Path.Combine(root, "edge", id + ".npy")))
            {
                edges++;
                if (e >= 0.5f) edgePos++;
            }
        }
        // The generator's content: an unlabelled 2-pixel border (3 × (40·30 − 36·26) pixels), depth holes, edges.
        Assert.Equal(3 * (40 * 30 - 36 * 26), semIgnored);
        Assert.True(depthZero > 0 && edgePos > 0);

        var t = json["tasks"]!;
        Assert.Equal(semValid, (long)t["semseg"]!["valid_pixels"]!);
        Assert.Equal(semIgnored, (long)t["semseg"]!["ignored_pixels"]!);
        var expectedHistogram = new JsonObject();
        foreach (var (k, v) in histogram) expectedHistogram[k.ToString()] = v;
        Assert.Equal(expectedHistogram.ToJsonString(), t["semseg"]!["histogram"]!.ToJsonString());
        Assert.Equal(depthValid, (long)t["depth"]!["valid_pixels"]!);
        Assert.Equal(depthZero, (long)t["depth"]!["zero_pixels"]!);
        Assert.Equal(min, (double)t["depth"]!["min"]!, 6);
        Assert.Equal(max, (double)t["depth"]!["max"]!, 6);
        Assert.Equal(sum / depthValid, (double)t["depth"]!["mean"]!, 9);
        Assert.Equal(3 * 40 * 30, (long)t["normals"]!["pixels"]!);
        Assert.Equal(normals, (long)t["normals"]!["valid_pixels"]!);
        Assert.Equal(edges, (long)t["edge"]!["pixels"]!);
        Assert.Equal(edgePos, (long)t["edge"]!["positive_pixels"]!);
    }

    [Fact]
    public void InspectData_bad_input_is_one_line_and_exit_code_2()
    {
        var root = Make("bad", seed: 1, count: 1);
        var list = Path.Combine(root, "gt_sets", "val.txt");
        File.AppendAllText(list, "missing_id\n");
        var (code, stdout, stderr) = Run("inspect-data", "--dataset", "nyud", "--data", root, "--split", "val");
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.Contains("line 2 lists 'missing_id'", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));

        File.WriteAllText(list, "000002\n");
        var depth = Path.Combine(root, "depth", "000002.npy");
        File.WriteAllBytes(depth, File.ReadAllBytes(depth)[..^4]);
        (code, stdout, stderr) = Run("inspect-data", "--dataset", "nyud", "--data", root, "--split", "val");
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.Contains(depth, stderr);
        Assert.Contains("data bytes", stderr);
        Assert.DoesNotContain("   at ", stderr);

        (code, _, stderr) = Run("inspect-data", "--dataset", "nyud", "--data", Path.Combine(_dir, "nowhere"), "--split", "val");
        Assert.Equal(2, code);
        Assert.Contains("nowhere", stderr);
    }
}
