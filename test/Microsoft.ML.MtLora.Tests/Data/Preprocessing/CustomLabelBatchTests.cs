using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>The batch pipeline on tasks outside the PASCAL label layouts: per-descriptor label slots read from any view.</summary>
public class CustomLabelBatchTests
{
    internal static readonly DenseTaskDescriptor Defects = DenseTaskDescriptor.Segmentation("defects", classes: 5);
    internal static readonly DenseTaskDescriptor Range = DenseTaskDescriptor.Depth("range");
    internal static readonly DenseTaskDescriptor Cracks = DenseTaskDescriptor.BinaryMap("cracks");

    /// <summary>A row with the labels the three custom descriptors name (DefectsLabel, RangeLabel, CracksLabel).</summary>
    public sealed class CustomRow
    {
        public string Name { get; set; } = "";
        public byte[] DefectsLabel { get; set; } = [];
        public float[] RangeLabel { get; set; } = [];
        public float[] CracksLabel { get; set; } = [];
        public int Height { get; set; }
        public int Width { get; set; }
    }

    /// <summary>
    /// PNG images of W×H in <paramref name="folder"/> with labels that follow them: defects = (x + y + i) mod 5 with the top
    /// row ignored (255), range = 1 + x + 10·y (+ 100·i) with a hole (255) at (1, 1), cracks = 1 on the right half.
    /// </summary>
    internal static List<CustomRow> Rows(string folder, int count, int width, int height, int seed = 11)
    {
        var rows = new List<CustomRow>();
        for (int i = 0; i < count; i++)
        {
            var name = $"custom{seed}_{i}.png";
            using (var image = MtLoraTestModel.Image(width, height, seed * 100 + i)) image.Save(Path.Combine(folder, name));
            var defects = new byte[width * height];
            var range = new float[width * height];
            var cracks = new float[width * height];
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    int k = y * width + x;
                    defects[k] = y == 0 ? DenseTasks.IgnoreLabel : (byte)((x + y + i) % 5);
                    range[k] = x == 1 && y == 1 ? 255f : 1 + x + 10 * y + 100 * i;
                    cracks[k] = x >= width / 2 ? 1 : 0;
                }
            rows.Add(new CustomRow { Name = name, DefectsLabel = defects, RangeLabel = range, CracksLabel = cracks, Height = height, Width = width });
        }
        return rows;
    }

    internal static IDataView View(MLContext ml, string folder, IEnumerable<CustomRow> rows)
    {
        var view = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.LoadImages("Image", folder, "Name").Fit(view).Transform(view);
    }

    private static DenseBatchReader Reader(IDataView view, int size, bool augment = false, int seed = 0) => new(view, new DenseBatchReaderOptions
    {
        Tasks = [Defects, Range, Cracks],
        ImageSize = size,
        BatchSize = 2,
        Augment = augment,
        Seed = seed,
    });

    [Fact]
    public void Custom_labels_are_resized_nearest_into_their_own_targets()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var rows = Rows(dir.Path, 2, 6, 4);
        var reader = Reader(View(ml, dir.Path, rows), 12);
        Assert.Equal([Defects, Range, Cracks], reader.Tasks);
        using var batch = Assert.Single(reader.ReadEpoch(0));
        Assert.Equal([2, 3, 12, 12], batch.Images.shape);
        foreach (var task in reader.Tasks) Assert.Equal([2, 1, 12, 12], batch.Targets[task].shape);
        // 6×4 → 12×12: OpenCV's nearest reads column floor(u / 2) and row floor(v / 3).
        for (int i = 0; i < 2; i++)
        {
            var d = batch.Targets[Defects][i, 0].data<float>().ToArray();
            var r = batch.Targets[Range][i, 0].data<float>().ToArray();
            var c = batch.Targets[Cracks][i, 0].data<float>().ToArray();
            for (int v = 0; v < 12; v++)
                for (int u = 0; u < 12; u++)
                {
                    int k = (v / 3) * 6 + u / 2;
                    Assert.Equal(rows[i].DefectsLabel[k], d[v * 12 + u]);
                    Assert.Equal(rows[i].RangeLabel[k], r[v * 12 + u]);
                    Assert.Equal(rows[i].CracksLabel[k], c[v * 12 + u]);
                }
        }
    }

    [Fact]
    public void Labels_smaller_than_the_image_are_resized_to_it_with_nearest_first()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var rows = Rows(dir.Path, 1, 6, 4);
        // 3×2 labels (the Height/Width columns) for a 6×4 image.
        rows[0].Height = 2;
        rows[0].Width = 3;
        rows[0].DefectsLabel = [0, 1, 2, 3, 4, 255];
        rows[0].RangeLabel = [1.5f, 2.5f, 255f, 4.5f, 5.5f, 6.5f];
        rows[0].CracksLabel = [0, 1, 0, 1, 0, 1];
        var reader = new DenseBatchReader(View(ml, dir.Path, rows), new DenseBatchReaderOptions { Tasks = [Defects, Range, Cracks], ImageSize = 6, BatchSize = 1 });
        using var batch = Assert.Single(reader.ReadEpoch(0));
        // 3×2 → 6×4 (label row y/2, column x/2), then 6×4 → 6×6 (OpenCV's nearest rows of 4 → 6).
        var rowsOf = CvGeometry.NearestIndices(4, 6);
        var d = batch.Targets[Defects].data<float>().ToArray();
        var r = batch.Targets[Range].data<float>().ToArray();
        var c = batch.Targets[Cracks].data<float>().ToArray();
        for (int v = 0; v < 6; v++)
            for (int u = 0; u < 6; u++)
            {
                int k = rowsOf[v] / 2 * 3 + u / 2;
                Assert.Equal(rows[0].DefectsLabel[k], d[v * 6 + u]);
                Assert.Equal(rows[0].RangeLabel[k], r[v * 6 + u]);
                Assert.Equal(rows[0].CracksLabel[k], c[v * 6 + u]);
            }
    }

    [Fact]
    public void Original_resolution_labels_of_custom_tasks_are_the_rows_labels()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var rows = Rows(dir.Path, 2, 6, 4);
        var reader = new DenseBatchReader(View(ml, dir.Path, rows), new DenseBatchReaderOptions { Tasks = [Defects, Range, Cracks], ImageSize = 8, BatchSize = 2, KeepOriginalLabelResolution = true });
        using var batch = Assert.Single(reader.ReadEpoch(0));
        Assert.Empty(batch.Targets);
        for (int i = 0; i < 2; i++)
        {
            var original = batch.OriginalTargets![i];
            foreach (var task in reader.Tasks) Assert.Equal([1, 4, 6], original[task].shape);
            Assert.Equal(rows[i].DefectsLabel.Select(v => (float)v), original[Defects].data<float>().ToArray());
            Assert.Equal(rows[i].RangeLabel, original[Range].data<float>().ToArray());
            Assert.Equal(rows[i].CracksLabel, original[Cracks].data<float>().ToArray());
        }
    }

    [Fact]
    public void Augmented_depth_is_never_blended_and_batches_are_deterministic()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        var rows = Rows(dir.Path, 4, 10, 8);
        var view = View(ml, dir.Path, rows);
        var first = new List<float[]>();
        int warped = 0;
        foreach (var batch in Reader(view, 16, augment: true, seed: 3).ReadEpoch(1))
            using (batch)
            {
                var depth = batch.Targets[Range].data<float>().ToArray();
                // Nearest only: every target is a source depth (÷ the draw's scale, as the reference's ScaleNRotate) or the
                // ignore value, never a mix of a hole and its neighbours.
                for (int i = 0; i < batch.Count; i++)
                {
                    var draw = AugmentationDraw.For(3, 1, batch.Index * 2 + i);
                    float scale = draw.Warps ? (float)draw.Scale : 1f;
                    warped += draw.Warps && draw.Scale != 1 ? 1 : 0;
                    var allowed = rows[batch.Index * 2 + i].RangeLabel.Select(v => v == 255f ? 255f : v / scale).Append(255f).ToHashSet();
                    Assert.All(depth.AsSpan(i * 256, 256).ToArray(), v => Assert.Contains(v, allowed));
                }
                Assert.All(batch.Targets[Defects].data<float>().ToArray(), v => Assert.True(v is >= 0 and <= 4 or 255));
                first.Add([.. batch.Images.data<float>().ToArray(), .. depth, .. batch.Targets[Defects].data<float>().ToArray()]);
            }
        var second = Reader(view, 16, augment: true, seed: 3).ReadEpoch(1).Select(b =>
        {
            using (b) return (float[])[.. b.Images.data<float>().ToArray(), .. b.Targets[Range].data<float>().ToArray(), .. b.Targets[Defects].data<float>().ToArray()];
        }).ToList();
        Assert.Equal(2, first.Count);
        Assert.True(warped > 0);
        Assert.Equal(first, second);
    }

    [Fact]
    public void Bad_custom_labels_fail_with_the_column_and_task_named()
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();

        InvalidDataException Fails(Action<CustomRow> spoil)
        {
            var rows = Rows(dir.Path, 1, 6, 4);
            spoil(rows[0]);
            return Assert.Throws<InvalidDataException>(() => Reader(View(ml, dir.Path, rows), 8).ReadEpoch(0).ToList().ForEach(b => b.Dispose()));
        }

        var classId = Fails(r => r.DefectsLabel[7] = 5);
        Assert.Contains("label column 'DefectsLabel' of task 'defects' holds class id 5 at index 7; expected 0..4 or 255 (ignore)", classId.Message);
        var negative = Fails(r => r.RangeLabel[3] = -1f);
        Assert.Contains("label column 'RangeLabel' of depth task 'range' holds -1 at index 3", negative.Message);
        var nan = Fails(r => r.RangeLabel[2] = float.NaN);
        Assert.Contains("label column 'RangeLabel' of depth task 'range' holds NaN at index 2", nan.Message);
        var binary = Fails(r => r.CracksLabel[0] = 2f);
        Assert.Contains("label column 'CracksLabel' of binary-map task 'cracks' holds 2 at index 0; expected 0 or 1", binary.Message);
        var size = Fails(r => r.RangeLabel = new float[5]);
        Assert.Contains("label column 'RangeLabel' of task 'range' holds 5 values; expected 24 (4·6", size.Message);

        // A depth column of bytes: refused when the reader is made, naming the column and the task.
        var bytes = ml.Data.LoadFromEnumerable(new[] { new { Name = "x.png", RangeLabel = new byte[24] } }.Select(r => new ByteDepthRow { Name = r.Name, RangeLabel = r.RangeLabel }));
        var images = ml.Transforms.LoadImages("Image", dir.Path, "Name").Fit(bytes).Transform(bytes);
        var type = Assert.Throws<ArgumentException>(() => new DenseBatchReader(images, new DenseBatchReaderOptions { Tasks = [Range] }));
        Assert.Contains("Label column 'RangeLabel' of task 'range' has type Vector<Byte>", type.Message);
    }

    public sealed class ByteDepthRow
    {
        public string Name { get; set; } = "";
        public byte[] RangeLabel { get; set; } = [];
    }
}
