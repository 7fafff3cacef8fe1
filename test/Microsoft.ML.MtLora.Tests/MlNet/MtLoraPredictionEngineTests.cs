using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Tests.MlNet;

/// <summary>PredictionEngine over the MTLoRA transformer, as the transformer's docs and the README describe it for ML.NET 5.0.1.</summary>
public class MtLoraPredictionEngineTests
{
    public sealed class FixedSizeInput
    {
        [ImageType(30, 40)]
        public MLImage Image { get; set; } = null!;
    }

    public sealed class UnsizedAttributeInput
    {
        [ImageType]
        public MLImage Image { get; set; } = null!;
    }

    public sealed class SaliencyOutput
    {
        public float[] SaliencyProbability { get; set; } = [];
        public int Height { get; set; }
        public int Width { get; set; }
    }

    [Fact]
    public void ImageTypeWithASizeGivesKnownSizeOutputsAndRejectsOtherSizes()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var options = new PredictionEngineOptions { OwnsTransformer = false };
        using var engine = ml.Model.CreatePredictionEngine<FixedSizeInput, SaliencyOutput>(model, options);
        Assert.Equal([30, 40], ((VectorDataViewType)engine.OutputSchema["SaliencyProbability"].Type).Dimensions.ToArray());

        using var image = MtLoraTestModel.Image(40, 30, seed: 1);
        var p = engine.Predict(new FixedSizeInput { Image = image });
        Assert.Equal((30, 40, 30 * 40), (p.Height, p.Width, p.SaliencyProbability.Length));

        using var other = MtLoraTestModel.Image(41, 30, seed: 1);
        var e = Assert.Throws<InvalidOperationException>(() => engine.Predict(new FixedSizeInput { Image = other }));
        Assert.Contains("declares images of 40x30", e.Message);
    }

    [Fact]
    public void ParameterlessImageTypeThrowsInMlNet501()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        // ML.NET 5.0.1 builds ImageDataViewType(0, 0) for it, which rejects a zero size: the docs point to [ImageType(h, w)].
        var e = Assert.ThrowsAny<Exception>(() => ml.Model.CreatePredictionEngine<UnsizedAttributeInput, SaliencyOutput>(model));
        var messages = new List<string>();
        for (var x = e; x != null; x = x.InnerException) messages.Add(x.GetType().Name + ": " + x.Message);
        Assert.Contains(messages, m => m.StartsWith(nameof(ArgumentOutOfRangeException), StringComparison.Ordinal) && m.Contains("positive", StringComparison.Ordinal));
    }

    [Fact]
    public void OwnsTransformerFalseKeepsTheModelAfterTheEngineIsDisposed()
    {
        var ml = new MLContext(seed: 1);
        var rows = MtLoraTestModel.Rows(1);
        using (var kept = MtLoraTestModel.Create(ml))
        {
            using (var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyOutput>(kept, new PredictionEngineOptions { OwnsTransformer = false }))
                Assert.NotEmpty(engine.Predict(rows[0]).SaliencyProbability);
            Assert.Single(MtLoraTransformerTests.ReadPredictions(kept.Transform(ml.Data.LoadFromEnumerable(rows)), ["SaliencyProbability"]));
        }

        // ML.NET's default (OwnsTransformer = true): disposing the engine disposes the model.
        var owned = MtLoraTestModel.Create(ml);
        using (var engine = ml.Model.CreatePredictionEngine<ImageRow, SaliencyOutput>(owned))
            Assert.NotEmpty(engine.Predict(rows[0]).SaliencyProbability);
        Assert.Throws<ObjectDisposedException>(() => owned.Transform(ml.Data.LoadFromEnumerable(rows)));
    }
}
