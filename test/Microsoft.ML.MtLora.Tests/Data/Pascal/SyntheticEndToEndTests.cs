using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Data.Synthetic;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Pascal;

/// <summary>The loader, the statistics, the batch reader and inspect-data over a generated PASCAL_MT folder.</summary>
public class SyntheticEndToEndTests
{
    [Fact]
    public void Synthetic_dataset_reads_end_to_end()
    {
        using var dir = Fixture.TempDir();
        var summary = SyntheticPascal.Generate(dir.Path, new SyntheticPascalOptions { TrainCount = 8, ValCount = 6, Width = 64, Height = 48, Seed = 4 });
        var ml = new MLContext(seed: 0);

        var val = ml.Data.LoadPascalContext(dir.Path, "val");
        Assert.Equal(summary.ValIds, val.Ids);
        var stats = PascalContextStatistics.Compute(val);
        Assert.Equal(6, stats.Images);
        Assert.Equal(summary.ValWithHumanParts, stats.ImagesWithHumanParts);
        Assert.True(summary.ValWithHumanParts >= 2);
        var semseg = stats.Tasks[DenseTask.SemanticSegmentation];
        Assert.Equal(6L * 64 * 48, semseg.ValidPixels);                      // the generator writes no 255
        Assert.True(semseg.Histogram.Keys.All(k => k is >= 0 and <= 20));
        Assert.True(stats.Tasks[DenseTask.HumanParts].Histogram.Keys.All(k => k is >= 0 and <= 6));
        var normals = stats.Tasks[DenseTask.SurfaceNormals].ValidPixels;
        Assert.InRange(normals, 1, 6L * 64 * 48 - 1);                         // sky/grass are masked out, walls are not

        // Without the parts index the same facts are derived from the .mat files, in memory.
        File.Delete(Path.Combine(dir.Path, "ImageSets", "Parts", "val.txt"));
        var derived = PascalContextStatistics.Compute(ml.Data.LoadPascalContext(dir.Path, "val"));
        Assert.Equal(stats.ToJson().ToJsonString(), derived.ToJson().ToJsonString());
        Assert.False(File.Exists(Path.Combine(dir.Path, "ImageSets", "Parts", "val.txt")));

        // Training batches at a small size, with augmentation.
        var train = ml.Data.LoadPascalContext(dir.Path, "train");
        var options = DenseBatchReaderOptions.ForTraining(seed: 2);
        options.BatchSize = 3;
        options.ImageSize = 32;
        var reader = new DenseBatchReader(train, options);
        var batches = reader.ReadEpoch(0).ToList();
        try
        {
            Assert.Equal(2, batches.Count);
            Assert.Equal(6, batches.SelectMany(b => b.Ids).Distinct().Count());
            foreach (var b in batches)
            {
                Assert.Equal([3L, 3, 32, 32], b.Images.shape);
                var sem = b.Targets[DenseTask.SemanticSegmentation];
                Assert.True(sem.le(20).logical_or(sem.eq(255)).all().item<bool>());
                var parts = b.Targets[DenseTask.HumanParts];
                Assert.True(parts.le(6).logical_or(parts.eq(255)).all().item<bool>());
            }
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = global::MtLora.Cli.Program.BuildRoot().Parse(["inspect-data", "--data", dir.Path, "--split", "train"])
            .Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        Assert.True(code == 0, stderr.ToString());
        var json = JsonNode.Parse(stdout.ToString())!;
        Assert.Equal(8, (long)json["images"]!);
        Assert.Equal(summary.TrainWithHumanParts, (long)json["images_with_human_parts"]!);
    }
}
