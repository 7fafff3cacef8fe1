using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora.Tests.Cli;

public class ProtocolCliTests : IClassFixture<TinyPascal>
{
    private readonly TinyPascal _data;

    public ProtocolCliTests(TinyPascal data) => _data = data;

    [Fact]
    public void InspectDataUnderTheReferenceProtocolCountsTheLabelsTheEvaluationSees()
    {
        const int size = 32;
        var (code, stdout, stderr) = CliRunner.Run("inspect-data", "--data", _data.Root, "--split", "val", "--protocol", "reference", "--image-size", $"{size}");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal("reference", json["protocol"]!.GetValue<string>());
        Assert.Equal(size, json["image_size"]!.GetValue<int>());

        // Independently: the evaluation batches of the batch reader (SampleTransform's FixedResize and AddIgnoreRegions, no augmentation).
        var ml = new MLContext(seed: 0);
        var view = ml.Data.LoadPascalContext(_data.Root, "val");
        var reader = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = size, DegreeOfParallelism = 1, PrefetchBatches = 0 });
        var histograms = new Dictionary<DenseTask, SortedDictionary<int, long>> { [DenseTask.SemanticSegmentation] = [], [DenseTask.HumanParts] = [] };
        long images = 0, withParts = 0, salValid = 0, salPositive = 0, normalsValid = 0;
        foreach (var batch in reader.ReadEpoch(0))
        {
            using (batch)
            {
                images += batch.Count;
                foreach (var (task, histogram) in histograms)
                {
                    var values = batch.Targets[task].contiguous().data<float>().ToArray();              // (B, 1, S, S)
                    for (int i = 0; i < batch.Count; i++)
                    {
                        var map = values.AsSpan(i * size * size, size * size);
                        if (task == DenseTask.HumanParts && map.ContainsAnyExcept(255f)) withParts++;
                        foreach (var v in map)
                            if (v != 255) histogram[(int)v] = histogram.GetValueOrDefault((int)v) + 1;
                    }
                }
                var sal = batch.Targets[DenseTask.Saliency].contiguous().data<float>().ToArray();
                salValid += sal.Length;
                salPositive += sal.Count(v => v != 0);
                var normals = batch.Targets[DenseTask.SurfaceNormals].contiguous().data<float>().ToArray(); // (B, 3, S, S)
                for (int i = 0; i < batch.Count; i++)
                    normalsValid += normals.AsSpan(i * 3 * size * size, size * size).ToArray().Count(v => v != 255);
            }
        }
        Assert.Equal(images, json["images"]!.GetValue<long>());
        Assert.Equal(withParts, json["images_with_human_parts"]!.GetValue<long>());
        var tasks = json["tasks"]!.AsObject();
        foreach (var (task, histogram) in histograms)
        {
            var printed = tasks[task.ReferenceName()]!["histogram"]!.AsObject().ToDictionary(kv => int.Parse(kv.Key, System.Globalization.CultureInfo.InvariantCulture), kv => kv.Value!.GetValue<long>());
            Assert.Equal(histogram, new SortedDictionary<int, long>(printed));
            Assert.Equal(histogram.Values.Sum(), tasks[task.ReferenceName()]!["valid_pixels"]!.GetValue<long>());
        }
        Assert.Equal(salValid, tasks["sal"]!["valid_pixels"]!.GetValue<long>());
        Assert.Equal(salPositive, tasks["sal"]!["positive_pixels"]!.GetValue<long>());
        Assert.Equal(normalsValid, tasks["normals"]!["valid_pixels"]!.GetValue<long>());
        Assert.Equal(images * size * size, salValid);
    }

    [Theory]
    [InlineData("inspect-data")]
    [InlineData("evaluate")]
    public void AnUnknownProtocolIsOneLineNamingTheOption(string verb)
    {
        string[] args = verb == "evaluate"
            ? ["evaluate", "--model", Fixture.Path("tiny4", "config.json"), "--data", _data.Root, "--protocol", "exact"]
            : ["inspect-data", "--data", _data.Root, "--protocol", "exact"];
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("error", StringComparison.Ordinal));
        Assert.Contains("--protocol: unknown protocol 'exact'; expected reference", line, StringComparison.Ordinal);
    }
}
