using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.Data.Pascal;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>The loader's worker pool: bit-identical batches for any number of workers, clean errors, no race, no leak.</summary>
public class ParallelLoadingTests
{
    private static readonly MLContext Ml = new(seed: 1);

    /// <summary>
    /// Samples of two sizes (portrait and landscape) with a textured image, all four tasks, a person with parts in every
    /// third sample (so human parts are not all ignore), and normals whose validity varies over the image.
    /// </summary>
    private static PascalTestDataset MakeDataset(int count)
    {
        var ds = new PascalTestDataset();
        var ids = Enumerable.Range(0, count).Select(i => $"id{i:D4}").ToArray();
        ds.WriteSplit("train", ids);
        for (int i = 0; i < count; i++)
        {
            int w = i % 2 == 0 ? 10 : 7, h = i % 2 == 0 ? 8 : 9, n = w * h;
            ds.WriteImage(ids[i], w, h, (x, y) => ((byte)(x * 23 + i), (byte)(y * 29), (byte)((x * y * 7 + i * 13) % 256)));
            ds.WriteSemseg(ids[i], w, h, Enumerable.Range(0, n).Select(p => (byte)((p + i) % 21)).ToArray());
            ds.WriteSaliency(ids[i], w, h, Enumerable.Range(0, n).Select(p => (byte)(p % 3 == 0 ? 220 : 10)).ToArray());
            var rgb = new byte[3 * n];
            for (int p = 0; p < n; p++) { rgb[3 * p] = (byte)(100 + p); rgb[3 * p + 1] = (byte)(200 - p); rgb[3 * p + 2] = 180; }
            ds.WriteNormals(ids[i], w, h, rgb, Enumerable.Range(0, n).Select(p => p % 4 == 0 ? 187 : 440).ToArray()); // 187 (grass): no valid normal
            if (i % 3 == 0)
            {
                var person = Enumerable.Range(0, n).Select(p => (byte)(p % w > 1 ? 1 : 0)).ToArray();
                var head = Enumerable.Range(0, n).Select(p => (byte)(p / w < 3 && p % w > 1 ? 1 : 0)).ToArray();
                ds.WriteHumanParts(ids[i], w, h, new PartObject(15, person, [("head", head), ("torso", person.Zip(head, (a, b) => (byte)(a & (1 - b))).ToArray())]));
            }
            else
            {
                ds.WriteHumanParts(ids[i], w, h);
            }
        }
        return ds;
    }

    private static DenseBatchReaderOptions Options(int workers, int prefetch, bool dropLast = false, AugmentationGeometry geometry = AugmentationGeometry.SinglePass) => new()
    {
        BatchSize = 3, ImageSize = 12, Augment = true, Shuffle = true, DropLast = dropLast, Seed = 9,
        DegreeOfParallelism = workers, PrefetchBatches = prefetch, Geometry = geometry,
    };

    /// <summary>Bit-for-bit equality (same shape, same bytes).</summary>
    private static bool Same(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    private static void AssertSameBatches(List<DenseBatch> expected, List<DenseBatch> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Ids, actual[i].Ids);
            Assert.Equal(expected[i].Index, actual[i].Index);
            Assert.True(Same(expected[i].Images, actual[i].Images), $"{what}: batch {i} images differ");
            Assert.Equal(expected[i].Targets.Keys.Order(), actual[i].Targets.Keys.Order());
            foreach (var (task, t) in expected[i].Targets)
                Assert.True(Same(t, actual[i].Targets[task]), $"{what}: batch {i} {task} differs");
        }
    }

    [Fact]
    public void Batches_are_bit_identical_for_any_number_of_workers_and_prefetch_depth()
    {
        using var ds = MakeDataset(11);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        // The PASCAL view itself (workers decode files), and the same data behind a transform (one cursor, parallel augmentation).
        var behindTransform = Ml.Transforms.CopyColumns("Picture", "Image").Fit(view).Transform(view);
        foreach (var (data, image) in new[] { (view, "Image"), (behindTransform, "Picture") })
        {
            foreach (var dropLast in new[] { false, true })
            {
                foreach (var skip in new[] { 0, 1 })
                {
                    DenseBatchReaderOptions O(int w, int p)
                    {
                        var o = Options(w, p, dropLast);
                        o.ImageColumnName = image;
                        return o;
                    }
                    var inlineReader = new DenseBatchReader(data, O(1, 0));
                    var inline = inlineReader.ReadEpoch(2, skip).ToList();
                    try
                    {
                        // Read again by the same reader: the labels now come from its cache.
                        var again = inlineReader.ReadEpoch(2, skip).ToList();
                        try
                        {
                            AssertSameBatches(inline, again, $"{image}, the same epoch read again");
                        }
                        finally
                        {
                            foreach (var b in again) b.Dispose();
                        }
                        Assert.Equal((dropLast ? 3 : 4) - skip, inline.Count);              // 11 rows, batch 3
                        Assert.Contains(inline.SelectMany(b => b.Targets[DenseTask.HumanParts].data<float>().ToArray()), v => v is > 0 and < 255);
                        foreach (var (w, p) in new[] { (1, 2), (3, 0), (4, 3) })
                        {
                            var other = new DenseBatchReader(data, O(w, p)).ReadEpoch(2, skip).ToList();
                            try
                            {
                                AssertSameBatches(inline, other, $"{image}, {w} workers, prefetch {p}, drop-last {dropLast}, skip {skip}");
                            }
                            finally
                            {
                                foreach (var b in other) b.Dispose();
                            }
                        }
                    }
                    finally
                    {
                        foreach (var b in inline) b.Dispose();
                    }
                }
            }
        }
    }

    [Fact]
    public void The_reference_two_step_geometry_is_also_identical_across_workers_and_differs_from_single_pass()
    {
        using var ds = MakeDataset(6);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var one = new DenseBatchReader(view, Options(1, 0, geometry: AugmentationGeometry.ReferenceTwoStep)).ReadEpoch(0).ToList();
        var many = new DenseBatchReader(view, Options(3, 2, geometry: AugmentationGeometry.ReferenceTwoStep)).ReadEpoch(0).ToList();
        var single = new DenseBatchReader(view, Options(3, 2)).ReadEpoch(0).ToList();
        try
        {
            AssertSameBatches(one, many, "two-step");
            // Same samples and draws; class maps agree exactly; the images are interpolated differently.
            for (int i = 0; i < one.Count; i++)
            {
                Assert.Equal(one[i].Ids, single[i].Ids);
                Assert.True(Same(one[i].Targets[DenseTask.SemanticSegmentation], single[i].Targets[DenseTask.SemanticSegmentation]));
                Assert.True(Same(one[i].Targets[DenseTask.HumanParts], single[i].Targets[DenseTask.HumanParts]));
                Assert.True(Same(one[i].Targets[DenseTask.Saliency], single[i].Targets[DenseTask.Saliency]));
            }
            Assert.Contains(Enumerable.Range(0, one.Count), i => !Same(one[i].Images, single[i].Images));
        }
        finally
        {
            foreach (var b in one.Concat(many).Concat(single)) b.Dispose();
        }
    }

    /// <summary>Reads an epoch on another task with a time limit, so that a hang fails the test instead of blocking the run.</summary>
    private static async Task<(List<string> Seen, Exception? Error)> ReadAll(DenseBatchReader reader)
    {
        var seen = new List<string>();
        var task = Task.Run(() =>
        {
            foreach (var batch in reader.ReadEpoch(0)) using (batch) seen.AddRange(batch.Ids);
        });
        try
        {
            await task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            Assert.Fail("the epoch did not end within 60 s");
        }
        catch (Exception)
        {
            // reported below
        }
        return (seen, task.Exception?.InnerException);
    }

    [Fact]
    public async Task A_bad_file_read_by_several_workers_gives_the_single_threaded_error_and_stops_cleanly()
    {
        using var ds = MakeDataset(14);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        File.WriteAllBytes(ds.PathOf("sal_distill", "id0007.png"), [137, 80, 78, 71, 1, 2, 3]); // corrupt
        File.Delete(ds.PathOf("human_parts", "id0011.mat"));                                     // missing since the view was made
        DenseBatchReaderOptions O(int w, int p) => new() { BatchSize = 3, ImageSize = 8, DegreeOfParallelism = w, PrefetchBatches = p };

        var (seenOne, errorOne) = await ReadAll(new DenseBatchReader(view, O(1, 0)));
        var single = Assert.IsType<PascalSampleException>(errorOne);
        Assert.Contains("id0007.png", single.Message);
        Assert.DoesNotContain('\n', single.Message);
        Assert.Equal(["id0000", "id0001", "id0002", "id0003", "id0004", "id0005"], seenOne);       // the batches before it

        foreach (var (w, p) in new[] { (2, 0), (4, 2), (4, 4) })
        {
            var (seen, error) = await ReadAll(new DenseBatchReader(view, O(w, p)));
            var e = Assert.IsType<PascalSampleException>(error);                    // not an AggregateException
            Assert.Equal(single.Message, e.Message);
            Assert.Equal(seenOne, seen);
            Assert.Equal(0, LoaderThreads());                                       // joined before the error reached the caller
        }

        // Only the later file is bad: its error names it, after the batches before it.
        File.Copy(ds.PathOf("sal_distill", "id0006.png"), ds.PathOf("sal_distill", "id0007.png"), overwrite: true);
        var (seenLater, later) = await ReadAll(new DenseBatchReader(view, O(3, 2)));
        Assert.Contains("id0011.mat", Assert.IsType<PascalSampleException>(later).Message);
        Assert.Contains("does not exist", later!.Message);
        Assert.Equal(9, seenLater.Count);
    }

    private static int LoaderThreads() => LoaderWorkers.Count;

    [Fact]
    public void Leaving_an_epoch_early_stops_the_workers_and_leaks_no_tensor()
    {
        using var ds = MakeDataset(12);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var reader = new DenseBatchReader(view, Options(3, 3));
        using (var warm = reader.ReadEpoch(0).First()) { }
        long before = torch.Tensor.TotalCount;
        for (int epoch = 0; epoch < 3; epoch++)
        {
            using (var first = reader.ReadEpoch(epoch).First()) Assert.Equal(3, first.Count);   // the rest of the epoch is abandoned
            Assert.Equal(0, LoaderThreads());
            foreach (var b in reader.ReadEpoch(epoch)) b.Dispose();
        }
        Assert.Equal(before, torch.Tensor.TotalCount);
    }

    [Fact]
    public async Task Workers_under_forced_garbage_collections_load_thousands_of_samples_without_error()
    {
        // The TorchSharp 0.107 Scalar race needs a native call in progress on one thread while a garbage collection finalises
        // its Scalar: several loader workers (allocating) plus a thread that forces collections all the time, while the
        // consuming thread runs torch operations on every batch. Any torch call with an implicit Scalar on the loader path
        // fails here sooner or later ("Unknown scalar type") or gives a wrong value. Checked: 200 `probe.add_(1.5)` per sample
        // on the workers (an implicit Scalar each) made this test fail in each of 2 runs.
        using var ds = MakeDataset(400);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        var reader = new DenseBatchReader(view, new DenseBatchReaderOptions
        {
            BatchSize = 8, ImageSize = 16, Augment = true, Shuffle = true, Seed = 3, DegreeOfParallelism = 4, PrefetchBatches = 3,
        });
        // Expected per-batch statistics from one single-threaded epoch, without the collector.
        var expected = new DenseBatchReader(view, new DenseBatchReaderOptions
        {
            BatchSize = 8, ImageSize = 16, Augment = true, Shuffle = true, Seed = 3, DegreeOfParallelism = 1, PrefetchBatches = 0,
        }).ReadEpoch(1).Select(b => { using (b) return Statistics(b); }).ToList();

        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            int n = 0;
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                n++;
            }
            return n;
        });
        int samples = 0;
        try
        {
            for (int epoch = 0; epoch < 5; epoch++)
            {
                int index = 0;
                foreach (var batch in reader.ReadEpoch(epoch))
                {
                    using (batch)
                    {
                        var stats = Statistics(batch);
                        if (epoch == 1) Assert.Equal(expected[index], stats);
                        samples += batch.Count;
                        index++;
                    }
                }
                Assert.Equal(50, index);
            }
        }
        finally
        {
            stop.Cancel();
        }
        int collections = await collector;
        Assert.True(collections > 10, $"only {collections} forced collections");
        Assert.Equal(2000, samples);
    }

    /// <summary>Torch reductions over a batch (run on the consuming thread, with long-lived Scalars).</summary>
    private static (string Ids, double Image, double Semseg, double Normals, long Ignored) Statistics(DenseBatch b)
    {
        using var scope = NewDisposeScope();
        var normals = b.Targets[DenseTask.SurfaceNormals];
        return (string.Join(",", b.Ids),
            Math.Round(b.Images.sum().item<float>(), 2),
            b.Targets[DenseTask.SemanticSegmentation].sum().item<float>(),
            Math.Round(normals.masked_fill(normals.eq(TorchScalars.IgnoreF), TorchScalars.ZeroF).abs().sum().item<float>(), 2),
            normals.eq(TorchScalars.IgnoreF).sum().item<long>());
    }
}
