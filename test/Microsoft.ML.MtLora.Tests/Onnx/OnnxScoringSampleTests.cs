using Google.Protobuf;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.MtLora.Onnx.Protobuf;
using Microsoft.ML.MtLora.Tests.MlNet;
using Microsoft.ML.MtLora.Tests.Samples;
using OnnxScoring;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>
/// The OnnxScoring sample (ML.NET's LoadImages → ResizeImages → ExtractPixels → ApplyOnnxModel, no TorchSharp) on a model
/// exported from a transformer, against the transformer itself; and its plain-C# post-processing against TorchSharp's.
/// </summary>
[Collection(SerialCollection.Name)] // the sample prints to the console, which the runner redirects
public class OnnxScoringSampleTests
{
    [Fact]
    public void WithoutTheRequiredPathsTheSamplePrintsItsUsageAndFails()
    {
        var (code, stdout, stderr) = SampleRunner.Run("OnnxScoring", "--model", "model.onnx");
        Assert.Equal(2, code);
        Assert.StartsWith("usage: OnnxScoring ", stderr);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void TheApplyOnnxModelSampleAndTheTransformerAgreeOnEveryClassId()
    {
        var ml = new MLContext(seed: 0);
        using var dir = Fixture.TempDir();
        var images = Directory.CreateDirectory(dir.File("images")).FullName;
        using var transformer = MtLoraTestModel.Create(ml);
        int s = transformer.ImageSize;
        // Images at the network's size (neither pipeline resizes them on the way in), and one of another size, whose
        // predictions must come back at its own size.
        var names = new List<string>();
        foreach (var (w, h, seed) in new[] { (s, s, 1), (s, s, 2), (s, s, 3), (100, 90, 4) })
        {
            using var image = MtLoraTestModel.Image(w, h, seed);
            var name = $"img{seed}.png";
            image.Save(Path.Combine(images, name));
            names.Add(name);
        }
        var onnx = dir.File("model.onnx");
        transformer.ExportOnnx(onnx);

        var outDir = dir.File("out");
        var (code, stdout, stderr) = SampleRunner.Run("OnnxScoring", "--model", onnx, "--images", images, "--out", outDir);
        Assert.True(code == 0, stderr);
        Assert.Equal(names.Count, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        var view = ml.Data.LoadFromEnumerable(names.Select(n => new ImageName { Name = n }));
        var loaded = ml.Transforms.LoadImages("Image", images, nameof(ImageName.Name)).Fit(view).Transform(view);
        var expected = ml.Data.CreateEnumerable<DenseOutputRow>(transformer.Transform(loaded), reuseRowObject: false).ToList();
        for (int i = 0; i < names.Count; i++)
        {
            var stem = Path.GetFileNameWithoutExtension(names[i]);
            var semseg = ReadGray(Path.Combine(outDir, $"{stem}.semseg.png"), expected[i].Width, expected[i].Height);
            var parts = ReadGray(Path.Combine(outDir, $"{stem}.human_parts.png"), expected[i].Width, expected[i].Height);
            foreach (var task in new[] { "sal", "normals" })
            {
                using var png = SKBitmap.Decode(Path.Combine(outDir, $"{stem}.{task}.png"));
                Assert.Equal((expected[i].Width, expected[i].Height), (png.Width, png.Height));
            }
            if (expected[i].Width != s || expected[i].Height != s) continue; // resized in: ML.NET's resize, not the model's bicubic
            Assert.Equal(expected[i].SemsegPredictedLabel, semseg);
            Assert.Equal(expected[i].HumanPartsPredictedLabel, parts);
        }

        // A model exported before mtlora.kinds existed: its PASCAL tasks are known by name, the same files come out.
        var oldOut = dir.File("old");
        (code, _, stderr) = SampleRunner.Run("OnnxScoring", "--model", WithoutKinds(onnx, dir.File("old.onnx")), "--images", images, "--out", oldOut);
        Assert.True(code == 0, stderr);
        var written = Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(4 * names.Count, written.Count);
        Assert.Equal(written, Directory.GetFiles(oldOut).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.All(written, f => Assert.Equal(File.ReadAllBytes(Path.Combine(outDir, f!)), File.ReadAllBytes(Path.Combine(oldOut, f!))));
    }

    [Fact]
    public void ACustomTaskModelGetsEachKindsFilesWithTheTransformersValues()
    {
        var ml = new MLContext(seed: 1);
        var o = MtLoraTestModel.Options();
        o.ImageSize = 64;
        // One task of every kind, under names the sample cannot know: only mtlora.kinds says what each output is.
        o.Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range"),
            DenseTaskDescriptor.BinaryMap("cracks"), DenseTaskDescriptor.SurfaceNormals("surface")];
        Dictionary<string, Tensor> weights;
        using (var net = OnnxExportTests.RandomNetwork(o, seed: 5))
            weights = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        using var transformer = new MtLoraTransformer(ml, o, weights, ImagePreprocessing.Reference(o.ImageSize), MtLoraColumnNames.Image, 2, CPU);
        using var dir = Fixture.TempDir();
        var images = Directory.CreateDirectory(dir.File("images")).FullName;
        var names = new[] { "a", "b" };
        for (int i = 0; i < names.Length; i++)
        {
            using var image = MtLoraTestModel.Image(o.ImageSize, o.ImageSize, seed: 10 + i); // at the network's size: no resize on the way in
            image.Save(Path.Combine(images, names[i] + ".png"));
        }
        var onnx = dir.File("model.onnx");
        transformer.ExportOnnx(onnx);
        var outDir = dir.File("out");
        var (code, stdout, stderr) = SampleRunner.Run("OnnxScoring", "--model", onnx, "--images", images, "--out", outDir);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("no post-processing known", stdout);
        Assert.Equal(names.SelectMany(n => new[] { $"{n}.cracks.png", $"{n}.defects.png", $"{n}.range.npy", $"{n}.range.png", $"{n}.surface.png" }),
            Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var view = ml.Data.LoadFromEnumerable(names.Select(n => new ImageName { Name = n + ".png" }));
        var scored = transformer.Transform(ml.Transforms.LoadImages("Image", images, nameof(ImageName.Name)).Fit(view).Transform(view));
        List<T[]> Column<T>(DenseTaskDescriptor task) =>
            scored.GetColumn<VBuffer<T>>(task.PredictionColumnName).Select(v => v.DenseValues().ToArray()).ToList();
        var (defects, range, cracks, surface) = (Column<byte>(o.Tasks[0]), Column<float>(o.Tasks[1]), Column<float>(o.Tasks[2]), Column<float>(o.Tasks[3]));
        int s = o.ImageSize, plane = s * s;
        for (int i = 0; i < names.Length; i++)
        {
            string Output(string task) => Path.Combine(outDir, $"{names[i]}.{task}");
            Assert.Equal(defects[i], ReadGray(Output("defects.png"), s, s));                       // class ids, equal
            var depth = NpyFile.Read(Output("range.npy"));                                          // float32 (H, W), as predicted
            Assert.Equal([s, s], depth.Shape);
            Assert.Equal(NpyElementType.Float32, depth.ElementType);
            float scale = Math.Max(1f, range[i].Max(Math.Abs));
            float worst = depth.Values.Zip(range[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4f * scale, $"{names[i]}: depth differs by up to {worst} (scale {scale})");
            Assert.Equal(range[i].Distinct().Count() > 1, ReadGray(Output("range.png"), s, s).Distinct().Count() > 1);
            // 8-bit maps within one level of the library's values: round(p·255) and round((n + 1)/2·255).
            var gray = ReadGray(Output("cracks.png"), s, s);
            Assert.All(Enumerable.Range(0, plane), k => Assert.InRange(gray[k] - MathF.Round(cracks[i][k] * 255), -1, 1));
            using var normals = SKBitmap.Decode(Output("surface.png"));
            for (int k = 0; k < plane; k++)
            {
                var c = normals.GetPixel(k % s, k / s);
                byte[] levels = [c.Red, c.Green, c.Blue];
                for (int ch = 0; ch < 3; ch++)
                    Assert.InRange(levels[ch] - MathF.Round((surface[i][ch * plane + k] + 1) / 2 * 255), -1, 1);
            }
        }

        // Without mtlora.kinds (an older export) only PASCAL task names are known: these outputs are left alone.
        var oldOut = dir.File("old");
        (code, stdout, stderr) = SampleRunner.Run("OnnxScoring", "--model", WithoutKinds(onnx, dir.File("old.onnx")), "--images", images, "--out", oldOut);
        Assert.True(code == 0, stderr);
        Assert.Equal(4 * names.Length, stdout.Split("no post-processing known").Length - 1);
        Assert.Empty(Directory.GetFiles(oldOut));
    }

    /// <summary>A copy of an exported model without the mtlora.kinds metadata, as models were exported before it existed.</summary>
    private static string WithoutKinds(string onnx, string copy)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        Assert.Equal(1, model.MetadataProps.Count(p => p.Key == MtLoraOnnxMetadata.KindsKey));
        var kept = model.MetadataProps.Where(p => p.Key != MtLoraOnnxMetadata.KindsKey).ToList();
        model.MetadataProps.Clear();
        model.MetadataProps.AddRange(kept);
        File.WriteAllBytes(copy, model.ToByteArray());
        return copy;
    }

    [Fact]
    public void TheSampleAloneReproducesTheReferenceOutputsFromAnExportedReferenceCheckpoint()
    {
        using var dir = Fixture.TempDir();
        var onnx = dir.File("tiny4.onnx");
        var (code, _, stderr) = CliRunner.Run("export-onnx", "--config", Fixture.Path("tiny4", "config.json"),
            "--checkpoint", Fixture.Path("tiny4", "model.pth"), "--out", onnx);
        Assert.True(code == 0, stderr);
        var io = Fixture.Path("tiny4", "io.safetensors");
        (code, var stdout, stderr) = SampleRunner.Run("OnnxScoring", "--model", onnx, "--io", io);
        Assert.True(code == 0, stdout + stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["human_parts", "normals", "sal", "semseg"], lines.Select(l => l[..l.IndexOf(':')]).Order());
        Assert.All(lines, l => Assert.EndsWith(" ok", l));

        // The same network with other weights does not pass: the check can fail.
        using (var scope = NewDisposeScope())
        using (var other = OnnxExportTests.RandomNetwork(Microsoft.ML.MtLora.Tests.Modeling.Tiny4.Options(), seed: 3))
        using (var f = File.Create(dir.File("other.onnx")))
            Microsoft.ML.MtLora.Onnx.MtLoraOnnxExporter.Export(other, f);
        (code, stdout, _) = SampleRunner.Run("OnnxScoring", "--model", dir.File("other.onnx"), "--io", io);
        Assert.Equal(1, code);
        Assert.Contains("TOO LARGE", stdout);
    }

    [Fact]
    public void ThePlainCSharpPostProcessingEqualsTorchSharps()
    {
        using var scope = NewDisposeScope();
        var logits = randn(1, 5, 16, 16, generator: new torch.Generator(3)) * 3;          // (1, C, S, S)
        foreach (var (h, w) in new[] { (16, 16), (37, 23), (64, 48), (9, 12) })
        {
            var resized = nn.functional.interpolate(logits, [h, w], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0); // (C, H, W)
            var ours = DenseOutputs.Resize(logits.data<float>().ToArray(), 5, 16, 16, h, w);
            Assert.True(MaxAbs(ours, resized) < 1e-5f, $"resize to {h}x{w}: {MaxAbs(ours, resized)}");

            var r = resized.contiguous().data<float>().ToArray();
            Assert.Equal(resized.argmax(0).to(ScalarType.Byte).data<byte>().ToArray(), DenseOutputs.ClassMap(r, 5, h, w));
            Assert.True(MaxAbs(DenseOutputs.Softmax(r, 5, h, w), resized.softmax(0)) < 1e-6f, "softmax");
            Assert.True(MaxAbs(DenseOutputs.Sigmoid(r), resized.sigmoid()) < 1e-6f, "sigmoid");
            var normals = resized.narrow(0, 0, 3);
            Assert.True(MaxAbs(DenseOutputs.Normalize(normals.contiguous().data<float>().ToArray(), h, w),
                nn.functional.normalize(normals, p: 2, dim: 0, eps: 1e-12)) < 1e-6f, "normalize");
        }
    }

    private static float MaxAbs(float[] ours, Tensor expected)
    {
        var e = expected.contiguous().data<float>().ToArray();
        Assert.Equal(e.Length, ours.Length);
        return e.Zip(ours, (a, b) => Math.Abs(a - b)).Max();
    }

    private static byte[] ReadGray(string path, int width, int height)
    {
        using var png = SKBitmap.Decode(path);
        Assert.Equal((width, height), (png.Width, png.Height));
        var values = new byte[width * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                values[y * width + x] = png.GetPixel(x, y).Red;
        return values;
    }

    private sealed class ImageName
    {
        public string Name { get; set; } = "";
    }
}
