using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

/// <summary>
/// The reference's AddIgnoreRegions (data/custom_transforms.py::AddIgnoreRegions: a human-parts map that is 0 everywhere
/// becomes 255, depth 0 becomes 255, normals with ‖n‖ = 0 become 255) is applied the same way by
/// <c>Evaluate(scored view, options)</c> and <c>Evaluate(model, data)</c>, under both protocols, on PASCAL-Context data with
/// images that have no annotated person.
/// </summary>
// The model's forward passes and LoadImages share process-wide state with the other serial tests.
[Collection(SerialCollection.Name)]
public class ScoredViewIgnoreRegionsTests
{
    /// <summary>One row of a PASCAL-Context view (LoadPascalContext's columns), held in memory so a label can be changed.</summary>
    public sealed class PascalRow
    {
        public MLImage Image { get; set; } = null!;
        public string Id { get; set; } = "";
        public int Height { get; set; }
        public int Width { get; set; }
        [VectorType] public byte[] SemsegLabel { get; set; } = [];
        [VectorType] public byte[] HumanPartsLabel { get; set; } = [];
        [VectorType] public byte[] SaliencyLabel { get; set; } = [];
        [VectorType] public float[] NormalsLabel { get; set; } = [];
    }

    /// <summary>
    /// The synthetic PASCAL val split with each image without annotated persons labelled all 0 for human_parts (the reference's
    /// form before AddIgnoreRegions, which a user's own labels may have) instead of the loader's all 255; in the first image
    /// one valid normal becomes the zero vector (AddIgnoreRegions: ‖n‖ = 0 → ignored) and one is marked invalid by 255 in its
    /// y plane only (the batch pipeline's rule: 255 in any plane).
    /// </summary>
    private static (IDataView Data, List<PascalRow> Rows, int WithoutPersons) PersonlessAsZeros(MLContext ml, string root)
    {
        SyntheticPascal.Generate(root, new SyntheticPascalOptions { TrainCount = 1, ValCount = 4, Width = 48, Height = 40, Seed = 7 });
        var rows = ml.Data.CreateEnumerable<PascalRow>(ml.Data.LoadPascalContext(root, "val"), reuseRowObject: false).ToList();
        int withoutPersons = 0;
        foreach (var row in rows)
        {
            if (row.HumanPartsLabel.Any(v => v != 255)) continue;
            row.HumanPartsLabel = new byte[row.HumanPartsLabel.Length];
            withoutPersons++;
        }
        var normals = rows[0].NormalsLabel;
        int n = normals.Length / 3;
        var valid = Enumerable.Range(0, n).Where(i => normals[i] != 255).ToArray();
        normals[valid[0]] = normals[n + valid[0]] = normals[2 * n + valid[0]] = 0f;
        normals[n + valid[^1]] = 255f;
        return (ml.Data.LoadFromEnumerable(rows), rows, withoutPersons);
    }

    private static MultiTaskEvaluatorOptions Options(MtLoraTransformer model, EvaluationProtocol protocol) => new()
    {
        Tasks = [.. model.Tasks],
        Protocol = protocol,
        Baselines = SingleTaskBaselines.None,
        ImageSize = model.ImageSize,
    };

    [Fact]
    public void Images_without_annotated_persons_are_ignored_alike_by_both_overloads_under_both_protocols()
    {
        using var dir = Fixture.TempDir();
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var (data, rows, withoutPersons) = PersonlessAsZeros(ml, dir.File("PASCAL_MT"));
        Assert.InRange(withoutPersons, 1, rows.Count - 1);                               // SyntheticPascal: val image 1 has no person, image 0 has one
        // Independently of both evaluators: the human-parts pixels at the original size that are scored, i.e. every pixel
        // of an image with a person but its 255s, none of an image without.
        long partsPixels = rows.Where(r => r.HumanPartsLabel.Any(v => v != 0)).Sum(r => (long)r.HumanPartsLabel.Count(v => v != 255));
        int personImages = rows.Count - withoutPersons;
        long validNormals = rows.Sum(r =>
        {
            int n = r.NormalsLabel.Length / 3;
            return (long)Enumerable.Range(0, n).Count(i => r.NormalsLabel[i] != 255 && r.NormalsLabel[n + i] != 255 && r.NormalsLabel[2 * n + i] != 255 &&
                r.NormalsLabel[i] * r.NormalsLabel[i] + r.NormalsLabel[n + i] * r.NormalsLabel[n + i] + r.NormalsLabel[2 * n + i] * r.NormalsLabel[2 * n + i] != 0);
        });

        foreach (var protocol in new[] { EvaluationProtocol.Native, EvaluationProtocol.Reference })
        {
            var expected = ml.MultiTask().Evaluate(model, data, Options(model, protocol));
            var scored = protocol == EvaluationProtocol.Native
                ? ml.MultiTask().Evaluate(model.Transform(data), Options(model, protocol))
                : ScoredViewAnyTaskTests.ScoredAtInputSize(ml, model, data, "Id", dir.Path, Options(model, protocol));
            Assert.Equal(protocol, scored.Protocol);
            Assert.Equal(protocol == EvaluationProtocol.Native ? partsPixels : (long)personImages * model.ImageSize * model.ImageSize, expected.HumanParts!.PixelCount);
            if (protocol == EvaluationProtocol.Native) Assert.Equal(validNormals, expected.SurfaceNormals!.PixelCount);

            // The metrics JSON is the same, to the last digit, for every task but the normals' mean and RMSEs: the transformer's
            // NormalsPredicted column holds F.normalize(output) in float32, which the meter normalises again, so those angles
            // differ by a few float32 ulps (about 1e-7 degree here); the pixel count, median and within-angle shares are equal.
            var expectedJson = expected.ToJson();
            var scoredJson = scored.ToJson();
            Assert.Equal(expectedJson.Select(p => p.Key), scoredJson.Select(p => p.Key));
            foreach (var (key, value) in expectedJson)
            {
                if (key != "normals")
                {
                    Assert.Equal(value!.ToJsonString(), scoredJson[key]!.ToJsonString());
                    continue;
                }
                foreach (var (metric, number) in value!.AsObject())
                {
                    var actual = scoredJson[key]![metric]!;
                    if (metric is "mean" or "rmse" or "rmse_true") Assert.Equal(number!.GetValue<double>(), actual.GetValue<double>(), 1e-5);
                    else Assert.Equal(number!.ToJsonString(), actual.ToJsonString());
                }
            }
        }
    }
}
