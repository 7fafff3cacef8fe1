using System.Text.Json.Nodes;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.MtLora.Tests.Cli;
using Microsoft.ML.MtLora.Tests.MlNet;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>
/// A model of your own tasks (<c>Segmentation("defects", 5)</c>, <c>Depth("range")</c>) through <c>mtlora predict</c> with
/// both engines and <c>mtlora export-onnx</c>: the files of each kind, their values those of the transformer, the ONNX
/// metadata carrying the descriptors whole.
/// </summary>
[Collection(SerialCollection.Name)]
public class CustomTaskPredictCliTests
{
    private static readonly DenseTaskDescriptor[] Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range", ignoreValue: 0f)];

    [Fact]
    public void ACustomTaskModelPredictsItsKindsFilesWithBothEnginesAndExportsItsDescriptors()
    {
        var ml = new MLContext(seed: 1);
        var o = MtLoraTestModel.Options();
        o.ImageSize = 64;
        o.Tasks = Tasks;
        torch.manual_seed(5);
        Dictionary<string, Tensor> weights;
        using (var net = new MultiTaskSwin(o)) weights = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        using var model = new MtLoraTransformer(ml, o, weights, ImagePreprocessing.Reference(o.ImageSize), MtLoraColumnNames.Image, 2, CPU);
        using var dir = Fixture.TempDir();
        var images = Path.Combine(dir.Path, "images");
        Directory.CreateDirectory(images);
        var files = MtLoraTestModel.WritePngs(images, 2);
        var input = ml.Data.LoadFromEnumerable(files.Select(f => new MtLoraTransformerTests.PathRow { Name = f }));
        var chain = ml.Transforms.LoadImages("Image", images, "Name").Fit(input).Append(model);
        var zip = dir.File("model.zip");
        ml.Model.Save(chain, input.Schema, zip);
        var scored = chain.Transform(input);
        var defects = scored.GetColumn<VBuffer<byte>>("DefectsPredictedLabel").Select(v => v.DenseValues().ToArray()).ToList();
        var range = scored.GetColumn<VBuffer<float>>("RangePredicted").Select(v => v.DenseValues().ToArray()).ToList();
        var sizes = scored.GetColumn<int>(MtLoraColumnNames.Width).Zip(scored.GetColumn<int>(MtLoraColumnNames.Height)).ToList();

        // model.zip: per-task folders (not PASCAL tasks): defects/<name>.png palette ids, range/<name>.npy + range/<name>.png.
        var zipOut = Path.Combine(dir.Path, "zip");
        var (code, stdout, stderr) = CliRunner.Run("predict", "--model", zip, "--image", images, "--out", zipOut);
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!;
        Assert.Equal("per-task-folders", json["layout"]!.GetValue<string>());
        Assert.Equal(["defects", "range"], json["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));
        var names = files.Select(Path.GetFileNameWithoutExtension).ToArray();
        Assert.Equal(names.SelectMany(n => new[] { $"defects/{n}.png", $"range/{n}.npy", $"range/{n}.png" }).Order(StringComparer.Ordinal),
            json["files"]!.AsArray().Select(f => Path.GetRelativePath(zipOut, f!.GetValue<string>()).Replace('\\', '/')).Order(StringComparer.Ordinal));
        for (int i = 0; i < names.Length; i++)
        {
            var ids = IndexedPng.Read(Path.Combine(zipOut, "defects", names[i] + ".png"));
            Assert.Equal(sizes[i], (ids.Width, ids.Height));
            Assert.Equal(defects[i], ids.Pixels);                                     // the class ids themselves, 0..4
            var depth = NpyFile.Read(Path.Combine(zipOut, "range", names[i] + ".npy"));
            Assert.Equal([sizes[i].Second, sizes[i].First], depth.Shape);
            Assert.Equal(range[i], depth.Values);                                     // float32, bit for bit
        }

        // export-onnx: the metadata names the tasks and carries each descriptor whole (kind, classes, ignore value).
        var onnx = dir.File("model.onnx");
        (code, stdout, stderr) = CliRunner.Run("export-onnx", "--model", zip, "--out", onnx);
        Assert.True(code == 0, stderr);
        Assert.Equal(["defects", "range"], JsonNode.Parse(stdout)!["tasks"]!.AsArray().Select(t => t!.GetValue<string>()));
        using (var loaded = MtLoraOnnxModel.Load(onnx))
        {
            Assert.Equal(2, loaded.Tasks.Count);
            for (int t = 0; t < Tasks.Length; t++) Assert.True(loaded.Tasks[t].SameDefinition(Tasks[t]), loaded.Tasks[t].Name);
            var metadata = loaded.Metadata.ToProperties().ToDictionary(kv => kv.Key, kv => kv.Value);
            Assert.Equal("defects:5,range:1", metadata[MtLoraOnnxMetadata.OutputsKey]);
            Assert.Equal("defects:segmentation,range:depth", metadata[MtLoraOnnxMetadata.KindsKey]);
            Assert.Equal("[\"class 0\",\"class 1\",\"class 2\",\"class 3\",\"class 4\"]", metadata[MtLoraOnnxMetadata.ClassesKeyPrefix + "defects"]);
        }

        // predict --engine onnx: the same files; class ids equal, depth within ONNX Runtime's float rounding (the ONNX tests'
        // 1e-4 relative tolerance on the raw outputs; the bilinear upsampling to the image size does not enlarge it).
        var onnxOut = Path.Combine(dir.Path, "onnx");
        (code, stdout, stderr) = CliRunner.Run("predict", "--engine", "onnx", "--model", onnx, "--image", images, "--out", onnxOut);
        Assert.True(code == 0, stderr);
        Assert.Equal(3 * names.Length, JsonNode.Parse(stdout)!["files"]!.AsArray().Count);
        for (int i = 0; i < names.Length; i++)
        {
            Assert.Equal(defects[i], IndexedPng.Read(Path.Combine(onnxOut, "defects", names[i] + ".png")).Pixels);
            var depth = NpyFile.Read(Path.Combine(onnxOut, "range", names[i] + ".npy")).Values;
            float scale = Math.Max(1f, range[i].Max(Math.Abs));
            float worst = depth.Zip(range[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4f * scale, $"{names[i]}: depth differs by up to {worst} (scale {scale})");
        }

        // --grid draws PASCAL tasks only: one line, nothing written.
        (code, _, stderr) = CliRunner.Run("predict", "--engine", "onnx", "--model", onnx, "--image", images, "--out", Path.Combine(dir.Path, "grid"), "--grid");
        Assert.Equal(2, code);
        Assert.Contains("--grid draws the PASCAL-Context tasks only", stderr);
        Assert.Contains("this model predicts 'defects' (Segmentation, 5 output channel(s)): leave --grid out.", stderr);
    }
}
