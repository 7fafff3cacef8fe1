using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.Data.Pascal;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

public class DenseBatchReaderTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static PascalTestDataset MakeDataset(int count, int width = 6, int height = 4)
    {
        var ds = new PascalTestDataset();
        var ids = Enumerable.Range(0, count).Select(i => $"id{i:D2}").ToArray();
        ds.WriteSplit("train", ids);
        for (int i = 0; i < ids.Length; i++)
        {
            ds.WriteSimpleSample(ids[i], width, height);
            // a distinct flat colour per sample, so that order shows in the images
            ds.WriteImage(ids[i], width, height, (_, _) => ((byte)(10 * i), 0, 0));
        }
        return ds;
    }

    [Fact]
    public void Evaluation_batches_have_the_reference_layout()
    {
        using var ds = MakeDataset(3);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var reader = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8 });
        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), reader.Tasks);
        Assert.Equal(2, reader.BatchesPerEpoch);
        var batches = reader.ReadEpoch(0).ToList();
        try
        {
            Assert.Equal(2, batches.Count);
            var b = batches[0];
            Assert.Equal(["id00", "id01"], b.Ids);
            Assert.Equal([2L, 3, 8, 8], b.Images.shape);
            Assert.Equal(ScalarType.Float32, b.Images.dtype);
            Assert.Equal([2L, 1, 8, 8], b.Targets[DenseTask.SemanticSegmentation].shape);
            Assert.Equal([2L, 1, 8, 8], b.Targets[DenseTask.HumanParts].shape);
            Assert.Equal([2L, 1, 8, 8], b.Targets[DenseTask.Saliency].shape);
            Assert.Equal([2L, 3, 8, 8], b.Targets[DenseTask.SurfaceNormals].shape);
            Assert.Equal(1f, b.Targets[DenseTask.SemanticSegmentation].min().item<float>());
            Assert.Equal(255f, b.Targets[DenseTask.HumanParts].min().item<float>());   // no person: all ignore
            Assert.Equal(1f, b.Targets[DenseTask.Saliency].min().item<float>());
            // normals (1, 1/255, −1) renormalised after the resize
            var n = b.Targets[DenseTask.SurfaceNormals][0, .., 3, 3].data<float>().ToArray();
            double y = 2.0 * 128 / 255 - 1, len = Math.Sqrt(2 + y * y);
            Assert.Equal(1 / len, n[0], 4);
            Assert.Equal(y / len, n[1], 4);
            Assert.Equal(-1 / len, n[2], 4);
            // sample 1: flat (10, 0, 0) → normalised
            Assert.Equal((10f / 255f - 0.485f) / 0.229f, b.Images[1, 0, 4, 4].item<float>(), 4);
            Assert.Equal((0f - 0.456f) / 0.224f, b.Images[1, 1, 4, 4].item<float>(), 4);
            Assert.Single(batches[1].Ids);
            Assert.Equal((4, 6), batches[1].OriginalSizes[0]);
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    [Fact]
    public void Training_epochs_are_deterministic_and_resume_by_skipping_batches()
    {
        using var ds = MakeDataset(7, 10, 8);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var options = DenseBatchReaderOptions.ForTraining(seed: 3);
        options.BatchSize = 2;
        options.ImageSize = 12;
        var reader = new DenseBatchReader(view, options);
        Assert.Equal(3, reader.BatchesPerEpoch);
        var first = reader.ReadEpoch(1).ToList();
        var again = reader.ReadEpoch(1).ToList();
        var resumed = reader.ReadEpoch(1, skipBatches: 1).ToList();
        var other = reader.ReadEpoch(2).ToList();
        try
        {
            Assert.Equal(3, first.Count);                                     // drop-last: 7 rows → 3 batches
            Assert.Equal(first.SelectMany(b => b.Ids), again.SelectMany(b => b.Ids));
            Assert.NotEqual(first.SelectMany(b => b.Ids), other.SelectMany(b => b.Ids));
            Assert.Equal(2, resumed.Count);
            Assert.Equal(1, resumed[0].Index);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(0f, (first[i].Images - again[i].Images).abs().max().item<float>());
                foreach (var t in DenseTasks.All)
                    Assert.Equal(0f, (first[i].Targets[t] - again[i].Targets[t]).abs().max().item<float>());
            }
            for (int i = 0; i < 2; i++)
            {
                Assert.Equal(first[i + 1].Ids, resumed[i].Ids);
                Assert.Equal(0f, (first[i + 1].Images - resumed[i].Images).abs().max().item<float>());
                Assert.Equal(0f, (first[i + 1].Targets[DenseTask.SurfaceNormals] - resumed[i].Targets[DenseTask.SurfaceNormals]).abs().max().item<float>());
            }
            // Augmentation happened: rotation/scale put constant-0 border into the semseg map (class 1 everywhere before).
            Assert.Contains(first, b => b.Targets[DenseTask.SemanticSegmentation].eq(0).any().item<bool>());
            // Saliency stays binary; normals are unit or 255.
            foreach (var b in first)
            {
                var sal = b.Targets[DenseTask.Saliency];
                Assert.True(sal.eq(0).logical_or(sal.eq(1)).all().item<bool>());
                var n = b.Targets[DenseTask.SurfaceNormals];
                var valid = n[.., 0].ne(255);
                var norm = n.square().sum(1).sqrt();
                Assert.True((norm.masked_select(valid) - 1).abs().max().item<float>() < 1e-4f);
            }
        }
        finally
        {
            foreach (var b in first.Concat(again).Concat(resumed).Concat(other)) b.Dispose();
        }
    }

    [Fact]
    public void Original_resolution_mode_keeps_labels_and_resizes_only_the_image()
    {
        using var ds = MakeDataset(2, 6, 4);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var reader = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8, KeepOriginalLabelResolution = true });
        using var batch = reader.ReadEpoch(0).Single();
        Assert.Empty(batch.Targets);
        Assert.Equal([2L, 3, 8, 8], batch.Images.shape);
        Assert.Equal([1L, 4, 6], batch.OriginalTargets![0][DenseTask.SemanticSegmentation].shape);
        Assert.Equal([3L, 4, 6], batch.OriginalTargets![1][DenseTask.SurfaceNormals].shape);
        Assert.Throws<ArgumentException>(() => new DenseBatchReader(view, new DenseBatchReaderOptions { Augment = true, KeepOriginalLabelResolution = true }));
    }

    [Fact]
    public void Missing_or_mistyped_columns_are_named()
    {
        using var ds = MakeDataset(1);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train", "semseg");
        var e = Assert.Throws<ArgumentException>(() => new DenseBatchReader(view, new DenseBatchReaderOptions { Tasks = [DenseTask.SurfaceNormals] }));
        Assert.Contains("NormalsLabel", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => new DenseBatchReader(view, new DenseBatchReaderOptions { ImageColumnName = "Id" }));
        Assert.Contains("'Id'", e2.Message);
    }

    [Fact]
    public void Eval_tensor_of_one_image_matches_the_batch_path()
    {
        using var ds = MakeDataset(1, 9, 5);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        using var batch = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 1, ImageSize = 16 }).ReadEpoch(0).Single();
        using var cursor = view.GetRowCursor([view.Schema["Image"]]);
        Assert.True(cursor.MoveNext());
        MLImage image = null!;
        cursor.GetGetter<MLImage>(view.Schema["Image"])(ref image);
        using (image)
        {
            using var single = DenseImagePreprocessing.ToEvalTensor(image, 16);
            Assert.Equal([3L, 16, 16], single.shape);
            Assert.Equal(0f, (single - batch.Images[0]).abs().max().item<float>());
        }
    }

    [Fact]
    public void Background_reading_gives_the_same_batches_stops_early_and_reports_errors()
    {
        using var ds = MakeDataset(5);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var sync = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8, Augment = true, Shuffle = true, PrefetchBatches = 0 });
        var ahead = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8, Augment = true, Shuffle = true, PrefetchBatches = 2 });
        var a = sync.ReadEpoch(4).ToList();
        var b = ahead.ReadEpoch(4).ToList();
        try
        {
            Assert.Equal(a.Count, b.Count);
            for (int i = 0; i < a.Count; i++)
            {
                Assert.Equal(a[i].Ids, b[i].Ids);
                Assert.Equal(0f, (a[i].Images - b[i].Images).abs().max().item<float>());
            }
        }
        finally
        {
            foreach (var x in a.Concat(b)) x.Dispose();
        }

        using (var first = ahead.ReadEpoch(0).First()) Assert.Equal(2, first.Count);   // leaving early must not hang

        File.WriteAllBytes(ds.PathOf("sal_distill", "id03.png"), [1, 2, 3]);
        var plain = new DenseBatchReader(view, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8 });
        var seen = new List<string>();
        var e = Assert.Throws<Microsoft.ML.MtLora.Data.Pascal.PascalSampleException>(() =>
        {
            foreach (var batch in plain.ReadEpoch(0)) using (batch) seen.AddRange(batch.Ids);
        });
        Assert.Equal(["id00", "id01"], seen);
        Assert.Contains("id03.png", e.Message);
    }

    [Fact]
    public void Parallel_decoding_gives_the_same_batches_as_one_cursor()
    {
        using var ds = MakeDataset(7, 10, 8);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        DenseBatchReaderOptions Options(int threads) => new()
        {
            BatchSize = 3, ImageSize = 12, Augment = true, Shuffle = true, Seed = 9, DegreeOfParallelism = threads, PrefetchBatches = 0,
        };
        foreach (var skip in new[] { 0, 1 })
        {
            var one = new DenseBatchReader(view, Options(1)).ReadEpoch(2, skip).ToList();
            var many = new DenseBatchReader(view, Options(3)).ReadEpoch(2, skip).ToList();
            try
            {
                Assert.Equal(3 - skip, one.Count);                                   // 7 rows, batch 3, last batch of 1
                Assert.Equal(one.Count, many.Count);
                for (int i = 0; i < one.Count; i++)
                {
                    Assert.Equal(one[i].Ids, many[i].Ids);
                    Assert.Equal(0f, (one[i].Images - many[i].Images).abs().max().item<float>());
                    Assert.Equal(0f, (one[i].Targets[DenseTask.SurfaceNormals] - many[i].Targets[DenseTask.SurfaceNormals]).abs().max().item<float>());
                }
            }
            finally
            {
                foreach (var b in one.Concat(many)) b.Dispose();
            }
        }
    }

    [Fact]
    public void Reads_through_ml_net_transforms_for_several_epochs()
    {
        using var ds = MakeDataset(3);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train", "semseg,sal");
        var transformed = Ml.Transforms.CopyColumns("Picture", "Image").Fit(view).Transform(view);
        var reader = new DenseBatchReader(transformed, new DenseBatchReaderOptions { BatchSize = 2, ImageSize = 8, ImageColumnName = "Picture", Shuffle = true });
        Assert.Equal([DenseTask.SemanticSegmentation, DenseTask.Saliency], reader.Tasks);
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var batches = reader.ReadEpoch(epoch).ToList();
            Assert.Equal(3, batches.Sum(b => b.Count));
            Assert.Equal(["id00", "id01", "id02"], batches.SelectMany(b => b.Ids).Order());
            foreach (var b in batches) b.Dispose();
        }
    }
}
