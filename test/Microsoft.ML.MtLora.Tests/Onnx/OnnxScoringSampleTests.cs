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
