using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.Data.Pascal;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>The transformer's read-ahead of images: the same inputs, ids and sizes as one image at a time, for any worker count.</summary>
public class InferenceBatchLoaderTests
{
    [Fact]
    public void Batches_read_ahead_by_workers_equal_the_images_preprocessed_one_by_one()
    {
        using var ds = new PascalTestDataset();
        var ids = Enumerable.Range(0, 7).Select(i => $"im{i}").ToArray();
        ds.WriteSplit("val", ids);
        for (int i = 0; i < ids.Length; i++)
        {
            ds.WriteSimpleSample(ids[i], 6 + i, 5 + (i % 3));
            ds.WriteImage(ids[i], 6 + i, 5 + (i % 3), (x, y) => ((byte)(x * 30 + i), (byte)(y * 40), (byte)(i * 20)));
        }
        var view = new MLContext().Data.LoadPascalContext(ds.Root, "val");
        var column = view.Schema["Image"];
        var transform = new SampleTransform(16, AugmentationGeometry.SinglePass);

        // Expected: each image on its own, through the public evaluation pre-processing.
        var expected = new List<(Tensor Input, DataViewRowId Id, (int, int) Size)>();
        using (var cursor = view.GetRowCursor([column]))
        {
            var image = cursor.GetGetter<MLImage>(column);
            var id = cursor.GetIdGetter();
            while (cursor.MoveNext())
            {
                MLImage img = null!;
                image(ref img);
                DataViewRowId rowId = default;
                id(ref rowId);
                using (img) expected.Add((DenseImagePreprocessing.ToEvalTensor(img, 16), rowId, (img.Height, img.Width)));
            }
        }
        try
        {
            foreach (var (workers, prefetch) in new[] { (1, 0), (1, 2), (3, 0), (3, 2) })
            {
                using var cursor = view.GetRowCursor([column]);
                using var loader = new InferenceBatchLoader(view, cursor, cursor.GetGetter<MLImage>(column), cursor.GetIdGetter(), "Image", transform, 3, workers, prefetch);
                int row = 0;
                while (loader.Next() is { } batch)
                {
                    using (batch)
                    {
                        Assert.Equal(Math.Min(3, 7 - row), batch.Ids.Length);
                        Assert.Equal([batch.Ids.Length, 3L, 16, 16], batch.Images.shape);
                        for (int i = 0; i < batch.Ids.Length; i++, row++)
                        {
                            Assert.Equal(expected[row].Id, batch.Ids[i]);
                            Assert.Equal(expected[row].Size, batch.Sizes[i]);
                            Assert.True(expected[row].Input.contiguous().bytes.SequenceEqual(batch.Images[i].contiguous().bytes),
                                $"row {row} differs ({workers} workers, prefetch {prefetch})");
                        }
                    }
                }
                Assert.Equal(7, row);
            }
            Assert.Equal(0, LoaderWorkers.Count);
        }
        finally
        {
            foreach (var e in expected) e.Input.Dispose();
        }
    }
}
