using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.MlNet;

public class MtLoraTransformerTests
{
    internal static readonly string[] PredictionColumns =
        ["SemsegPredictedLabel", "SemsegScore", "HumanPartsPredictedLabel", "HumanPartsScore", "SaliencyProbability", "NormalsPredicted", "Height", "Width"];

    /// <summary>Reads the prediction columns of every row (cursor order).</summary>
    internal static List<Dictionary<string, Array>> ReadPredictions(IDataView view, IEnumerable<string>? columns = null)
    {
        var cols = (columns ?? PredictionColumns).Select(n => view.Schema[n]).ToList();
        var rows = new List<Dictionary<string, Array>>();
        using var cursor = view.GetRowCursor(cols);
        while (cursor.MoveNext())
            rows.Add(ReadRow(cursor, cols));
        return rows;
    }

    internal static Dictionary<string, Array> ReadRow(DataViewRow row, IEnumerable<DataViewSchema.Column> cols)
    {
        var d = new Dictionary<string, Array>();
        foreach (var c in cols)
        {
            if (c.Type is TextDataViewType)
            {
                ReadOnlyMemory<char> v = default;
                row.GetGetter<ReadOnlyMemory<char>>(c)(ref v);
                d[c.Name] = v.ToArray();
            }
            else if (c.Type == NumberDataViewType.Int32)
            {
                int v = 0;
                row.GetGetter<int>(c)(ref v);
                d[c.Name] = new[] { v };
            }
            else if (c.Type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Byte)
            {
                VBuffer<byte> v = default;
                row.GetGetter<VBuffer<byte>>(c)(ref v);
                d[c.Name] = v.DenseValues().ToArray();
            }
            else
            {
                VBuffer<float> v = default;
                row.GetGetter<VBuffer<float>>(c)(ref v);
                d[c.Name] = v.DenseValues().ToArray();
            }
        }
        return d;
    }

    internal static void AssertSame(List<Dictionary<string, Array>> expected, List<Dictionary<string, Array>> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Keys.Order(), actual[i].Keys.Order());
            foreach (var (k, v) in expected[i])
                Assert.True(ArraysEqual(v, actual[i][k]), $"row {i}, column {k} differs");
        }
    }

    private static bool ArraysEqual(Array a, Array b) => (a, b) switch
    {
        (float[] x, float[] y) => x.AsSpan().SequenceEqual(y),
        (byte[] x, byte[] y) => x.AsSpan().SequenceEqual(y),
        (int[] x, int[] y) => x.AsSpan().SequenceEqual(y),
        (char[] x, char[] y) => x.AsSpan().SequenceEqual(y),
        _ => false,
    };

    [Fact]
    public void OutputSchemaHasEveryTaskColumnWithLayout()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(2));
        var schema = model.GetOutputSchema(data.Schema);

        Assert.IsType<ImageDataViewType>(schema["Image"].Type);
        Assert.Equal(NumberDataViewType.Byte, ((VectorDataViewType)schema["SemsegPredictedLabel"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)schema["SemsegScore"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Byte, ((VectorDataViewType)schema["HumanPartsPredictedLabel"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)schema["HumanPartsScore"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)schema["SaliencyProbability"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)schema["NormalsPredicted"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Int32, schema["Height"].Type);
        Assert.Equal(NumberDataViewType.Int32, schema["Width"].Type);
        // Unknown image size: variable-size vectors.
        Assert.False(((VectorDataViewType)schema["SemsegScore"].Type).IsKnownSize);
        ReadOnlyMemory<char> layout = default;
        schema["SemsegScore"].Annotations.GetValue(MtLoraTransformer.LayoutAnnotationName, ref layout);
        Assert.Contains("C = 21", layout.ToString());
    }

    [Fact]
    public void KnownImageSizeGivesKnownVectorShapes()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(3));
        var resized = ml.Transforms.ResizeImages("Image", imageWidth: 24, imageHeight: 18, inputColumnName: "Image").Fit(data).Transform(data);
        var output = model.Transform(resized);

        var score = (VectorDataViewType)output.Schema["SemsegScore"].Type;
        Assert.Equal([21, 18, 24], score.Dimensions.ToArray());
        Assert.Equal([18, 24], ((VectorDataViewType)output.Schema["SemsegPredictedLabel"].Type).Dimensions.ToArray());
        Assert.Equal([3, 18, 24], ((VectorDataViewType)output.Schema["NormalsPredicted"].Type).Dimensions.ToArray());

        var rows = ReadPredictions(output);
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal(21 * 18 * 24, r["SemsegScore"].Length));
        Assert.All(rows, r => Assert.Equal(18, ((int[])r["Height"])[0]));
    }

    [Fact]
    public void PredictionsMatchTheNetworkResizedBackToTheImage()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 3);
        var rows = MtLoraTestModel.Rows(5);
        var predictions = ReadPredictions(model.Transform(ml.Data.LoadFromEnumerable(rows)));

        // Independent path: the network on the preprocessed image, bilinear back to H×W, then softmax/argmax/sigmoid/normalise.
        var options = MtLoraTestModel.Options();
        using var net = MtLoraTestModel.Network(); // unmerged LoRA: also checks that merging changes nothing beyond rounding
        for (int i = 0; i < rows.Count; i++)
        {
            using var scope = NewDisposeScope();
            var img = rows[i].Image;
            int h = img.Height, w = img.Width;
            Assert.Equal(h, ((int[])predictions[i]["Height"])[0]);
            Assert.Equal(w, ((int[])predictions[i]["Width"])[0]);
            using var noGrad = no_grad();
            var outs = net.forward(Microsoft.ML.MtLora.Data.Preprocessing.DenseImagePreprocessing.ToEvalTensor(img, options.ImageSize).unsqueeze(0));
            Tensor Up(string task) => nn.functional.interpolate(outs[task], [h, w], mode: InterpolationMode.Bilinear, align_corners: false)[0];
            var semseg = Up("semseg");
            AssertClose(semseg.softmax(0), (float[])predictions[i]["SemsegScore"]);
            Assert.Equal(semseg.argmax(0).to(ScalarType.Byte).data<byte>().ToArray(), (byte[])predictions[i]["SemsegPredictedLabel"]);
            AssertClose(Up("human_parts").softmax(0), (float[])predictions[i]["HumanPartsScore"]);
            AssertClose(Up("sal").sigmoid(), (float[])predictions[i]["SaliencyProbability"]);
            var n = Up("normals");
            AssertClose(n / n.norm(0, keepdim: true), (float[])predictions[i]["NormalsPredicted"]);
        }
    }

    private static void AssertClose(Tensor expected, float[] actual, float tol = 1e-4f)
    {
        var e = expected.contiguous().data<float>().ToArray();
        Assert.Equal(e.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < e.Length; i++) max = Math.Max(max, Math.Abs(e[i] - actual[i]));
        Assert.True(max <= tol, $"max difference {max}");
    }

    [Fact]
    public void BatchedTransformEqualsPerRowPredictionEngine()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 4);
        var rows = MtLoraTestModel.Rows(7);
        long before = model.Predictor.ForwardPasses;
        var batched = ReadPredictions(model.Transform(ml.Data.LoadFromEnumerable(rows)));
        Assert.Equal(2, model.Predictor.ForwardPasses - before); // 7 rows, batches of 4: 2 forward passes

        var engine = ml.Model.CreatePredictionEngine<ImageRow, DenseOutputRow>(model);
        before = model.Predictor.ForwardPasses;
        for (int i = 0; i < rows.Count; i++)
        {
            var p = engine.Predict(rows[i]);
            Assert.Equal(rows[i].Image.Height, p.Height);
            Assert.Equal(rows[i].Image.Width, p.Width);
            Assert.Equal((byte[])batched[i]["SemsegPredictedLabel"], p.SemsegPredictedLabel);
            Assert.Equal((byte[])batched[i]["HumanPartsPredictedLabel"], p.HumanPartsPredictedLabel);
            // Bit for bit with one libtorch thread (TestSetup); with several, libtorch's CPU convolutions split the work by
            // batch size and the last bits may differ (MtLoraTransformer remarks, "Transform and PredictionEngine").
            Assert.Equal((float[])batched[i]["SemsegScore"], p.SemsegScore);
            Assert.Equal((float[])batched[i]["HumanPartsScore"], p.HumanPartsScore);
            Assert.Equal((float[])batched[i]["SaliencyProbability"], p.SaliencyProbability);
            Assert.Equal((float[])batched[i]["NormalsPredicted"], p.NormalsPredicted);
        }
        Assert.Equal(rows.Count, model.Predictor.ForwardPasses - before); // one pass per row, shared by all columns
    }

    private static void AssertNear(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= 1e-5f, $"max difference {max}");
    }

    [Fact]
    public void TransformIsLazyAndRunsOnlyForActiveColumns()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var output = model.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(4)));
        Assert.Equal(0, model.Predictor.ForwardPasses);
        var names = new List<string>();
        using (var cursor = output.GetRowCursor([output.Schema["Name"], output.Schema["Height"]]))
        {
            var name = cursor.GetGetter<ReadOnlyMemory<char>>(output.Schema["Name"]);
            while (cursor.MoveNext())
            {
                ReadOnlyMemory<char> v = default;
                name(ref v);
                names.Add(v.ToString());
            }
        }
        Assert.Equal(["img0", "img1", "img2", "img3"], names);
        Assert.Equal(0, model.Predictor.ForwardPasses); // sizes need no forward pass
    }

    [Fact]
    public void ConcurrentCursorsGiveTheSameResults()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 3);
        var output = model.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(9)));
        var reference = ReadPredictions(output);
        var results = new List<Dictionary<string, Array>>[4];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => results[i] = ReadPredictions(output));
        foreach (var r in results) AssertSame(reference, r);
    }

    [Fact]
    public void ShuffledCursorKeepsRowsAndPredictionsTogether()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 4);
        using var dir = Fixture.TempDir();
        var files = MtLoraTestModel.WritePngs(dir.Path, 10);
        // A shuffleable input: the paths are cached, the images decoded lazily by LoadImages.
        var paths = ml.Data.Cache(ml.Data.LoadFromEnumerable(files.Select(f => new PathRow { Name = f })));
        var images = ml.Transforms.LoadImages("Image", dir.Path, "Name").Fit(paths).Transform(paths);
        var output = model.Transform(images);
        Assert.True(output.CanShuffle);
        var ordered = ReadPredictions(output, ["Name", "SaliencyProbability"]);
        var byName = ordered.ToDictionary(r => NameOf(r), r => (float[])r["SaliencyProbability"]);

        var cols = new[] { output.Schema["Name"], output.Schema["SaliencyProbability"] };
        using var cursor = output.GetRowCursor(cols, new Random(5));
        var seen = new List<string>();
        while (cursor.MoveNext())
        {
            var row = ReadRow(cursor, cols);
            seen.Add(NameOf(row));
            AssertNear(byName[NameOf(row)], (float[])row["SaliencyProbability"]);
        }
        Assert.Equal(byName.Keys.Order(), seen.Order());
        Assert.NotEqual(ordered.Select(NameOf), seen); // really shuffled
    }

    public sealed class PathRow
    {
        public string Name { get; set; } = "";
    }

    private static string NameOf(Dictionary<string, Array> row) => new((char[])row["Name"]);

    [Fact]
    public void MissingImageColumnIsNamed()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(new[] { new { Picture = 1f } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.GetOutputSchema(data.Schema));
        Assert.Contains("'Image'", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void WrongImageColumnTypeIsNamed()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(new[] { new TextImageRow { Image = "a.png" } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(data));
        Assert.Contains("'Image'", e.Message);
        Assert.Contains("MLImage", e.Message);
    }

    public sealed class TextImageRow
    {
        public string Image { get; set; } = "";
    }

    [Fact]
    public void DisposedTransformerRefusesWork()
    {
        var ml = new MLContext(seed: 1);
        var model = MtLoraTestModel.Create(ml);
        var open = model.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1)));
        model.Dispose();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1))));
        // A view made before Dispose fails cleanly when read afterwards.
        Assert.Throws<ObjectDisposedException>(() => ReadPredictions(open));
    }
}
