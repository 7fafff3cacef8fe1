using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>
/// A model trained here and saved as model.zip, exported with <see cref="MtLoraTransformer.ExportOnnx(string)"/>, then
/// scored by ONNX Runtime (<see cref="MtLoraOnnxModel"/>) and by the transformer itself on the same images of assorted sizes.
/// </summary>
public class OnnxModelZipTests
{
    [Fact]
    public void ATrainedModelZipExportedToOnnxPredictsWhatTheTransformerPredicts()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var data = MtLoraEstimatorTests.Labelled(ml, dir.Path, 4);
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Epochs = 1;
        options.WarmupEpochs = 0;
        var zip = dir.File("model.zip");
        using (var trained = ml.MultiTask().Trainers.MtLora(options).Fit(data))
            ml.Model.Save(trained, data.Schema, zip);

        using var transformer = (MtLoraTransformer)ml.Model.Load(zip, out _);
        var onnxPath = dir.File("model.onnx");
        transformer.ExportOnnx(onnxPath);
        using var onnx = MtLoraOnnxModel.Load(onnxPath, threads: 1);
        Assert.Equal(transformer.Tasks, onnx.Tasks);
        Assert.Equal(transformer.ImageSize, onnx.Metadata.ImageSize);

        var expected = ml.Data.CreateEnumerable<DenseOutputRow>(transformer.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(3, seed: 9))), reuseRowObject: false).ToList();
        var images = MtLoraTestModel.Rows(3, seed: 9).Select(r => r.Image).ToList();
        var actual = onnx.Predict(images);
        foreach (var image in images) image.Dispose();

        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var (e, a) = (expected[i], actual[i]);
            Assert.Equal((e.Height, e.Width), (a.Height, a.Width));
            Assert.Equal(e.SemsegPredictedLabel, a.ClassMap(DenseTask.SemanticSegmentation));
            Assert.Equal(e.HumanPartsPredictedLabel, a.ClassMap(DenseTask.HumanParts));
            AssertClose(e.SemsegScore, a.Values("SemsegScore"), "SemsegScore");
            AssertClose(e.HumanPartsScore, a.Values("HumanPartsScore"), "HumanPartsScore");
            AssertClose(e.SaliencyProbability, a.Values("SaliencyProbability"), "SaliencyProbability");
            AssertClose(e.NormalsPredicted, a.Values("NormalsPredicted"), "NormalsPredicted");
        }
    }

    [Fact]
    public void AnOnnxModelWithoutMtLoraMetadataIsRefusedWithAClearMessage()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("other.onnx");
        OnnxRunner.WriteForeignModel(path);
        var e = Assert.Throws<InvalidDataException>(() => MtLoraOnnxModel.Load(path));
        Assert.Contains($"'{path}' is an ONNX model without MTLoRA metadata", e.Message);

        File.WriteAllText(dir.File("junk.onnx"), "not a protobuf");
        e = Assert.Throws<InvalidDataException>(() => MtLoraOnnxModel.Load(dir.File("junk.onnx")));
        Assert.Contains("is not an ONNX model", e.Message);
    }

    private static void AssertClose(float[] expected, float[] actual, string column)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        for (int k = 0; k < expected.Length; k++) worst = Math.Max(worst, Math.Abs(expected[k] - actual[k]));
        Assert.True(worst < 1e-4f, $"{column}: max abs difference {worst}");
    }
}
