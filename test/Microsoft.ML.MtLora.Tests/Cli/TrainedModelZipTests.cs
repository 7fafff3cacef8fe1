using System.Text.Json.Nodes;
using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Tests.Cli;

// Training seeds torch's global generator (as Fit does): run alone.
[Collection(SerialCollection.Name)]
public class TrainedModelZipTests(TrainedCliModel trained) : IClassFixture<TrainedCliModel>
{
    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    [Fact]
    public void TheSavedModelReadsImagePathsAlone()
    {
        Assert.True(trained.ExitCode == 0, trained.Stderr);
        var ml = new MLContext(seed: 0);
        var model = ml.Model.Load(trained.ModelPath, out var inputSchema);
        try
        {
            var column = Assert.Single(inputSchema);                              // self-describing: the path, nothing else
            Assert.Equal("ImagePath", column.Name);
            Assert.Equal(TextDataViewType.Instance, column.Type);

            var files = Directory.GetFiles(Path.Combine(trained.DataRoot, "JPEGImages")).Order(StringComparer.Ordinal).Take(2).ToArray();
            var paths = ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { ImagePath = f }));
            var scored = model.Transform(paths);
            using var cursor = scored.GetRowCursor(scored.Schema.Where(c => c.Name is "SemsegPredictedLabel" or "Height" or "Width"));
            var semseg = cursor.GetGetter<VBuffer<byte>>(scored.Schema["SemsegPredictedLabel"]);
            var height = cursor.GetGetter<int>(scored.Schema["Height"]);
            var width = cursor.GetGetter<int>(scored.Schema["Width"]);
            VBuffer<byte> map = default;
            int rows = 0, h = 0, w = 0;
            while (cursor.MoveNext())
            {
                semseg(ref map);
                height(ref h);
                width(ref w);
                Assert.Equal((72, 56), (w, h));                                   // TinyPascal's images
                Assert.Equal(w * h, map.Length);
                Assert.All(map.DenseValues(), v => Assert.InRange(v, 0, 20));
                rows++;
            }
            Assert.Equal(2, rows);
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void TrainReportsTheProtocolAndTheBestAndLastValidations()
    {
        var json = JsonNode.Parse(trained.Stdout)!.AsObject();
        Assert.Equal("reference", json["protocol"]!.GetValue<string>());
        Assert.Equal("reference", json["metrics"]!["protocol"]!.GetValue<string>());
        var validation = json["validation"]!.AsObject();
        Assert.Equal("last", validation["kept"]!.GetValue<string>());
        Assert.Equal(2, validation["last"]!["epoch"]!.GetValue<int>());            // 2 epochs: validated once, at the end
        Assert.Equal(2, validation["best"]!["epoch"]!.GetValue<int>());
        Assert.Equal(0, json["skipped_steps"]!.GetValue<long>());
        // The kept (last) weights score on the validation split as the run's last validation did.
        Assert.Equal(validation["last"]!["metrics"]!["semseg"]!["mIoU"]!.GetValue<double>(), json["metrics"]!["semseg"]!["mIoU"]!.GetValue<double>(), 3);
    }

    [Fact]
    public void EvaluateScoresUnderEitherProtocolAndSaysWhich()
    {
        var (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--data", trained.DataRoot, "--protocol", "native");
        Assert.True(code == 0, stderr);
        var native = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal("native", native["protocol"]!.GetValue<string>());
        (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", trained.ModelPath, "--data", trained.DataRoot);
        Assert.True(code == 0, stderr);
        var reference = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal("reference", reference["protocol"]!.GetValue<string>());
        // Each scores the valid normals pixels inspect-data counts under the same protocol (tiny4's input size is 128).
        (code, stdout, stderr) = CliRunner.Run("inspect-data", "--data", trained.DataRoot, "--split", "val");
        Assert.True(code == 0, stderr);
        Assert.Equal(JsonNode.Parse(stdout)!["tasks"]!["normals"]!["valid_pixels"]!.GetValue<long>(), native["normals"]!["pixels"]!.GetValue<long>());
        (code, stdout, stderr) = CliRunner.Run("inspect-data", "--data", trained.DataRoot, "--split", "val", "--protocol", "reference", "--image-size", "128");
        Assert.True(code == 0, stderr);
        Assert.Equal(JsonNode.Parse(stdout)!["tasks"]!["normals"]!["valid_pixels"]!.GetValue<long>(), reference["normals"]!["pixels"]!.GetValue<long>());
        Assert.Equal(JsonNode.Parse(stdout)!["tasks"]!["semseg"]!["valid_pixels"]!.GetValue<long>(), reference["semseg"]!["pixels"]!.GetValue<long>());
    }

    [Fact]
    public void AnUnknownKeepIsOneLineNamingTheOption()
    {
        var (code, _, stderr) = CliRunner.Run("train", "--data", trained.DataRoot, "--config", Fixture.Path("tiny4", "config.json"), "--keep", "sometimes",
            "--device", "cpu", "--out", Path.Combine(trained.Folder, "never.zip"));
        Assert.Equal(2, code);
        Assert.Contains("--keep: unknown value 'sometimes'; expected last", stderr, StringComparison.Ordinal);
    }
}
