using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Tests.MlNet;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Tasks;

[Collection(SerialCollection.Name)]
public class CustomTaskModelZipTests
{
    [Fact]
    public void TransformerOfCustomTasksSavesLoadsAndPredictsTheSame()
    {
        var ml = new MLContext(seed: 1);
        var o = MtLoraTestModel.Options();
        o.ImageSize = 64;
        o.Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range", ignoreValue: 0f)];
        torch.manual_seed(5);
        Dictionary<string, Tensor> weights;
        using (var net = new MultiTaskSwin(o)) weights = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        using var model = new MtLoraTransformer(ml, o, weights, ImagePreprocessing.Reference(o.ImageSize), MtLoraColumnNames.Image, 2, CPU);

        using var dir = Fixture.TempDir();
        var files = MtLoraTestModel.WritePngs(dir.Path, 3);
        var input = ml.Data.LoadFromEnumerable(files.Select(f => new MtLoraTransformerTests.PathRow { Name = f }));
        var chain = ml.Transforms.LoadImages("Image", dir.Path, "Name").Fit(input).Append(model);
        var scored = chain.Transform(input);
        Assert.Equal(["DefectsPredictedLabel", "DefectsScore", "RangePredicted"],
            scored.Schema.Where(c => c.Name.StartsWith("Defects", StringComparison.Ordinal) || c.Name.StartsWith("Range", StringComparison.Ordinal)).Select(c => c.Name));
        var zip = dir.File("model.zip");
        ml.Model.Save(chain, input.Schema, zip);

        var loaded = new MLContext(seed: 2).Model.Load(zip, out _);
        var again = loaded.Transform(input);
        var a = Column<float>(scored, "RangePredicted");
        var b = Column<float>(again, "RangePredicted");
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i]);
        var classes = Column<byte>(again, "DefectsPredictedLabel");
        Assert.All(classes, m => Assert.All(m, v => Assert.InRange(v, (byte)0, (byte)4)));
        var mt = Assert.IsType<MtLoraTransformer>(((TransformerChain<ITransformer>)loaded).LastTransformer);
        Assert.True(mt.Tasks[0].SameDefinition(o.Tasks[0]));
        Assert.True(mt.Tasks[1].SameDefinition(o.Tasks[1]));
    }

    private static List<T[]> Column<T>(IDataView data, string name) =>
        data.GetColumn<VBuffer<T>>(name).Select(v => v.DenseValues().ToArray()).ToList();
}
