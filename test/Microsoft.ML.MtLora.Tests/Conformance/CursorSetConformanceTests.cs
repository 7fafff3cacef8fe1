using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Tests.Data.Pascal;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Conformance;

/// <summary>
/// Cursor sets and row order: the PASCAL-Context loader's cursor sets against ML.NET's rules (<see cref="MlNetConformance.CheckCursorSet"/>),
/// ML.NET transforms over the loader (which read it through a consolidated cursor set whenever the requested columns are
/// cacheable), and the MTLoRA transformer over such transforms.
/// </summary>
public class CursorSetConformanceTests
{
    private static readonly string[] Ids = Enumerable.Range(0, 7).Select(i => $"2008_{i:D6}").ToArray();

    private static PascalTestDataset Dataset()
    {
        var ds = new PascalTestDataset();
        ds.WriteSplit("train", Ids);
        for (int i = 0; i < Ids.Length; i++) ds.WriteSimpleSample(Ids[i], 3 + i % 3, 2 + i % 2);
        return ds;
    }

    private static DataViewSchema.Column[] Columns(IDataView view, params string[] names) => names.Select(n => view.Schema[n]).ToArray();

    [Theory]
    [InlineData(1, null)]
    [InlineData(2, null)]
    [InlineData(3, null)]
    [InlineData(2, 5)]
    [InlineData(5, 5)]
    [InlineData(16, 7)]
    public void LoaderCursorSetsFollowMlNetsBatchRules(int n, int? seed)
    {
        using var ds = Dataset();
        var view = new MLContext(seed: 1).Data.LoadPascalContext(ds.Root, "train");
        int returned = MlNetConformance.CheckCursorSet(view, Columns(view, "Image", "Id", "Height", "Width", "SaliencyLabel", "NormalsLabel"), n, seed);
        Assert.Equal(Math.Min(n, Ids.Length), returned);
    }

    [Fact]
    public void LoaderCursorSetsFollowTheRulesWhenSamplesAreSkipped()
    {
        using var ds = Dataset();
        File.WriteAllBytes(ds.PathOf("sal_distill", Ids[2] + ".png"), [0x89, 0x50, 0x4E]); // corrupt: skipped while reading
        var view = new MLContext(seed: 1).Data.LoadPascalContext(ds.Root, "train", options: new PascalContextOptions { SkipBadSamples = true });
        MlNetConformance.CheckCursorSet(view, Columns(view, "Id", "SaliencyLabel"), 3, seed: null);
        MlNetConformance.CheckCursorSet(view, Columns(view, "Id", "SaliencyLabel"), 2, seed: 4);
        Assert.Equal([Ids[2]], view.SkippedSamples.Select(s => s.Id));
    }

    /// <summary>The check itself: ML.NET's own cache passes it, and a set that splits rows but gives every cursor Batch 0 fails it.</summary>
    [Fact]
    public void TheCursorSetCheckPassesMlNetsCacheAndCatchesSharedBatchIds()
    {
        var ml = new MLContext(seed: 1);
        var cached = ml.Data.Cache(ml.Data.LoadFromEnumerable(Enumerable.Range(0, 300).Select(i => new IntRow { Value = i })));
        Assert.True(MlNetConformance.CheckCursorSet(cached, Columns(cached, "Value"), 3, seed: null) > 1);
        MlNetConformance.CheckCursorSet(cached, Columns(cached, "Value"), 3, seed: 9);

        using var ds = Dataset();
        var view = ml.Data.LoadPascalContext(ds.Root, "train");
        var e = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            MlNetConformance.CheckCursorSet(new BatchZero(view), Columns(view, "Id"), 2, seed: null));
        Assert.Contains("Batch 0 occurs in cursors 0 and 1", e.Message);
    }

    private sealed class IntRow
    {
        public int Value { get; set; }
    }

    /// <summary>The loader as it was: rows split round-robin, every cursor of the set with Batch 0.</summary>
    private sealed class BatchZero(IDataView inner) : IDataView
    {
        public bool CanShuffle => inner.CanShuffle;

        public DataViewSchema Schema => inner.Schema;

        public long? GetRowCount() => inner.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => inner.GetRowCursor(columnsNeeded, rand);

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            inner.GetRowCursorSet(columnsNeeded, n, rand).Select(c => (DataViewRowCursor)new Cursor(c)).ToArray();

        private sealed class Cursor(DataViewRowCursor inner) : DataViewRowCursor
        {
            public override long Batch => 0;

            public override DataViewSchema Schema => inner.Schema;

            public override long Position => inner.Position;

            public override bool MoveNext() => inner.MoveNext();

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => inner.GetGetter<TValue>(column);

            public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

            public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);

            protected override void Dispose(bool disposing)
            {
                if (disposing) inner.Dispose();
                base.Dispose(disposing);
            }
        }
    }

    private static List<string> ReadText(IDataView view, string column, Random? rand = null)
    {
        var col = view.Schema[column];
        using var cursor = view.GetRowCursor([col], rand);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        var values = new List<string>();
        ReadOnlyMemory<char> text = default;
        while (cursor.MoveNext())
        {
            getter(ref text);
            values.Add(text.ToString());
        }
        return values;
    }

    [Fact]
    public void MlNetTransformsOverTheLoaderKeepItsRowOrder()
    {
        using var ds = Dataset();
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadPascalContext(ds.Root, "train");
        // Reading only cacheable columns, ML.NET's row-to-row transforms consolidate a parallel cursor set of their input
        // (DataViewUtils.TryCreateConsolidatingCursor, at least 2 threads on any machine).
        var copied = ml.Transforms.CopyColumns("IdCopy", "Id").Fit(view).Transform(view);
        for (int repeat = 0; repeat < 5; repeat++)
        {
            Assert.Equal(Ids, ReadText(copied, "IdCopy"));
            Assert.Equal(ReadText(view, "Id", new Random(repeat)), ReadText(copied, "IdCopy", new Random(repeat)));
        }
    }

    [Fact]
    public void MtLoraTransformerAcceptsMlNetTransformsOverTheLoader()
    {
        using var dir = Fixture.TempDir();
        MtLoraTestModel.WritePascal(dir.Path, train: 7, val: 1, seed: 2);
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 3);
        var view = ml.Data.LoadPascalContext(dir.Path, "train");
        var copied = ml.Transforms.CopyColumns("IdCopy", "Id").Fit(view).Transform(view);

        string[] predictions = ["SaliencyProbability", "NormalsPredicted", "SemsegPredictedLabel"];
        var direct = MtLoraTransformerTests.ReadPredictions(model.Transform(view), ["Id", .. predictions]);
        // The main cursor reads IdCopy (cacheable: consolidated from a cursor set of the loader), the look-ahead reads Image (not).
        var overCopy = MtLoraTransformerTests.ReadPredictions(model.Transform(copied), ["IdCopy", .. predictions]);
        Assert.Equal(view.Ids, overCopy.Select(r => new string((char[])r["IdCopy"])));
        for (int i = 0; i < direct.Count; i++) overCopy[i]["Id"] = overCopy[i]["IdCopy"];
        foreach (var r in overCopy) r.Remove("IdCopy");
        MtLoraTransformerTests.AssertSame(direct, overCopy);

        // Shuffled the same way: the same rows, each with its own predictions.
        var output = model.Transform(copied);
        var cols = Columns(output, "IdCopy", "SaliencyProbability");
        using var cursor = output.GetRowCursor(cols, new Random(3));
        var byId = direct.ToDictionary(r => new string((char[])r["Id"]), r => (float[])r["SaliencyProbability"]);
        var seen = new List<string>();
        while (cursor.MoveNext())
        {
            var row = MtLoraTransformerTests.ReadRow(cursor, cols);
            var id = new string((char[])row["IdCopy"]);
            seen.Add(id);
            Assert.Equal(byId[id], (float[])row["SaliencyProbability"]);
        }
        Assert.Equal(view.Ids.Order(), seen.Order());
        Assert.NotEqual(view.Ids, seen); // really shuffled
    }

    [Fact]
    public void MtLoraTransformerCursorSetsFollowTheRules()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var output = model.Transform(ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(5)));
        MlNetConformance.CheckCursorSet(output, Columns(output, "Name", "Height", "SaliencyProbability"), 3, seed: null);
    }

    [Fact]
    public void PathColumnLoaderFeedsLoadImagesWithTheSameImages()
    {
        using var ds = Dataset();
        var ml = new MLContext(seed: 1);
        var decoded = ml.Data.LoadPascalContext(ds.Root, "train");
        var paths = ml.Data.LoadPascalContext(ds.Root, "train", options: new PascalContextOptions { ImageColumn = PascalImageColumn.FilePath });
        Assert.Equal(["ImagePath", "Id", "Height", "Width", "SemsegLabel", "HumanPartsLabel", "SaliencyLabel", "NormalsLabel"], paths.Schema.Select(c => c.Name));
        Assert.Equal(TextDataViewType.Instance, paths.Schema[MtLoraColumnNames.ImagePath].Type);
        Assert.Equal(Ids.Select(id => Path.Combine(Path.GetFullPath(ds.Root), "JPEGImages", id + ".jpg")), ReadText(paths, "ImagePath"));
        MlNetConformance.CheckCursorSet(paths, Columns(paths, "ImagePath", "Id", "SemsegLabel"), 3, seed: 2);

        // Everything but the image column is the same data.
        var rest = decoded.Schema.Where(c => c.Name != "Image").Select(c => c.Name).ToArray();
        var a = MtLoraTransformerTests.ReadPredictions(decoded, rest);
        var b = MtLoraTransformerTests.ReadPredictions(paths, rest);
        MtLoraTransformerTests.AssertSame(a, b);

        // LoadImages over the path column decodes the loader's images (pixel for pixel).
        var loaded = ml.Transforms.LoadImages("Image", imageFolder: null!, inputColumnName: "ImagePath").Fit(paths).Transform(paths);
        using var c1 = decoded.GetRowCursor([decoded.Schema["Image"]]);
        using var c2 = loaded.GetRowCursor([loaded.Schema["Image"]]);
        var g1 = c1.GetGetter<MLImage>(decoded.Schema["Image"]);
        var g2 = c2.GetGetter<MLImage>(loaded.Schema["Image"]);
        while (c1.MoveNext())
        {
            Assert.True(c2.MoveNext());
            MLImage i1 = null!, i2 = null!;
            g1(ref i1);
            g2(ref i2);
            using (i1)
            {
                Assert.Equal((i1.Width, i1.Height), (i2.Width, i2.Height));
                using var t1 = Microsoft.ML.MtLora.Data.Preprocessing.DenseImagePreprocessing.ToRgbTensor(i1);
                using var t2 = Microsoft.ML.MtLora.Data.Preprocessing.DenseImagePreprocessing.ToRgbTensor(i2);
                Assert.True(t1.eq(t2).all().item<bool>(), "the two decodings differ");
            }
        }
        Assert.False(c2.MoveNext());
    }
}
