using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Folder;

namespace Microsoft.ML.MtLora.Tests.Data.Folder;

public sealed class DenseTaskFolderDataViewTests : IDisposable
{
    private const int W = 4, H = 3, N = W * H;
    private static readonly DenseTaskDescriptor Defects = DenseTaskDescriptor.Segmentation("defects", classes: 5);
    private static readonly DenseTaskDescriptor Cracks = DenseTaskDescriptor.BinaryMap("cracks");
    private static readonly DenseTaskDescriptor Range = DenseTaskDescriptor.Depth("range");
    private static readonly DenseTaskDescriptor Tilt = DenseTaskDescriptor.SurfaceNormals("tilt");
    private static readonly DenseTaskDescriptor[] All = [Defects, Cracks, Range, Tilt];

    private readonly TempDir _dir = Fixture.TempDir();
    private readonly MLContext _ml = new(seed: 0);

    public void Dispose() => _dir.Dispose();

    private string F(string relative) => Path.Combine(_dir.Path, relative);

    // Class ids per pixel: 0..4 and 255 (ignore), the same for every id.
    private static readonly int[] Classes = [0, 1, 2, 3, 4, 255, 4, 3, 2, 1, 0, 255];

    /// <summary>Three ids, each task stored in a different format per id (known values below).</summary>
    private void WriteFolder()
    {
        FolderFiles.Image(F("images/a.png"), W, H, 1);
        FolderFiles.Image(F("images/b.jpg"), W, H, 2);
        FolderFiles.Image(F("images/c.png"), W, H, 3);
        File.WriteAllText(F("images/notes.txt"), "not an image");

        FolderFiles.Palette(F("defects/a.png"), W, H, Classes);
        FolderFiles.Gray8(F("defects/b.png"), W, H, Classes);
        FolderFiles.Palette(F("defects/c.png"), W, H, Classes);

        FolderFiles.Gray8(F("cracks/a.png"), W, H, 0, 100, 127, 128, 200, 255, 0, 0, 255, 255, 1, 2);          // 0/255 map: v > 127
        FolderFiles.Npy(F("cracks/b.npy"), "<f4", [H, W], 0, 0.25, 0.49, 0.5, 0.75, 1, 0, 1, 0, 1, 0, 1);      // ≥ 0.5
        FolderFiles.Gray8(F("cracks/c.png"), W, H, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0);                        // a 0/1 map, as is

        FolderFiles.Gray16(F("range/a.png"), W, H, 0, 1, 1000, 1500, 65535, 250, 0, 2000, 3000, 4000, 5000, 6000); // mm
        FolderFiles.Npy(F("range/b.npy"), "<f4", [H, W], 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 0, 5, 6);             // m
        FolderFiles.Npy(F("range/c.npy"), "<f8", [H, W, 1], 1.25, 0, 2.25, 0, 3.25, 0, 4.25, 0, 5.25, 0, 6.25, 0);

        var rgb = new int[3 * N];
        for (int i = 0; i < N; i++) (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]) = i == 5 ? (0, 0, 0) : (255, 0, 128 + i);
        FolderFiles.Rgb(F("tilt/a.png"), W, H, rgb);
        FolderFiles.Npy(F("tilt/b.npy"), "<f8", [H, W, 3], Enumerable.Range(0, 3 * N).Select(k => k % 3 == 2 ? 1.0 : 0.0).ToArray());
        FolderFiles.Rgb(F("tilt/c.png"), W, H, rgb);
    }

    private static T[] Read<T>(IDataView view, string column, string id)
    {
        using var cursor = view.GetRowCursor([view.Schema[column], view.Schema["Id"]]);
        var getter = cursor.GetGetter<VBuffer<T>>(view.Schema[column]);
        var ids = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
        while (cursor.MoveNext())
        {
            ReadOnlyMemory<char> i = default;
            ids(ref i);
            if (i.ToString() != id) continue;
            VBuffer<T> v = default;
            getter(ref v);
            return v.DenseValues().ToArray();
        }
        throw new InvalidOperationException($"no row {id}");
    }

    [Fact]
    public void Every_column_holds_the_values_written_in_each_format()
    {
        WriteFolder();
        var view = _ml.Data.LoadDenseTaskFolder(_dir.Path, All);

        Assert.Equal(["ImagePath", "Image", "Id", "Height", "Width", "DefectsLabel", "CracksLabel", "RangeLabel", "TiltLabel"], view.Schema.Select(c => c.Name));
        foreach (var task in All) Assert.Equal(task.LabelItemType, Assert.IsType<VectorDataViewType>(view.Schema[task.LabelColumnName].Type).ItemType);
        Assert.Equal(["a", "b", "c"], view.Ids);                       // every image, sorted; notes.txt is no image
        Assert.Equal(3, view.GetRowCount());
        Assert.True(view.CanShuffle);
        Assert.Null(view.Split);

        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var path = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["ImagePath"]);
            var image = cursor.GetGetter<MLImage>(view.Schema["Image"]);
            var height = cursor.GetGetter<int>(view.Schema["Height"]);
            var width = cursor.GetGetter<int>(view.Schema["Width"]);
            var paths = new List<string>();
            while (cursor.MoveNext())
            {
                ReadOnlyMemory<char> p = default;
                MLImage img = null!;
                int h = 0, w = 0;
                path(ref p);
                image(ref img);
                height(ref h);
                width(ref w);
                using (img) Assert.Equal((W, H), (img.Width, img.Height));
                Assert.Equal((W, H), (w, h));
                paths.Add(p.ToString());
            }
            Assert.Equal([F("images/a.png"), F("images/b.jpg"), F("images/c.png")], paths);
        }

        byte[] classes = Classes.Select(v => (byte)v).ToArray();
        foreach (var id in new[] { "a", "b", "c" }) Assert.Equal(classes, Read<byte>(view, "DefectsLabel", id));

        Assert.Equal(new byte[] { 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0 }, Read<byte>(view, "CracksLabel", "a"));
        Assert.Equal(new byte[] { 0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1 }, Read<byte>(view, "CracksLabel", "b"));
        Assert.Equal(new byte[] { 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0 }, Read<byte>(view, "CracksLabel", "c"));

        // 16-bit millimetres × 0.001 (the default DepthPngScale); all 16 bits kept (65535 → 65.535 m, 1 → 1 mm).
        double[] metres = [0, 0.001, 1, 1.5, 65.535, 0.25, 0, 2, 3, 4, 5, 6];
        Assert.Equal(metres, Read<float>(view, "RangeLabel", "a").Select(v => (double)v), new Tolerance(1e-6));
        Assert.Equal(new float[] { 0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4, 0, 5, 6 }, Read<float>(view, "RangeLabel", "b"));
        Assert.Equal(new float[] { 1.25f, 0, 2.25f, 0, 3.25f, 0, 4.25f, 0, 5.25f, 0, 6.25f, 0 }, Read<float>(view, "RangeLabel", "c"));

        // RGB PNG: n = 2v/255 − 1 per channel, planar; the black pixel 5 is invalid (255 in all three planes).
        var expected = new double[3 * N];
        for (int i = 0; i < N; i++)
        {
            bool invalid = i == 5;
            expected[i] = invalid ? 255 : 1;
            expected[N + i] = invalid ? 255 : -1;
            expected[2 * N + i] = invalid ? 255 : 2.0 * (128 + i) / 255 - 1;
        }
        Assert.Equal(expected, Read<float>(view, "TiltLabel", "a").Select(v => (double)v), new Tolerance(1e-6));
        // .npy (H, W, 3) interleaved → planar: z = 1, x = y = 0.
        Assert.Equal(Enumerable.Repeat(0f, 2 * N).Concat(Enumerable.Repeat(1f, N)), Read<float>(view, "TiltLabel", "b"));
    }

    private sealed class Tolerance(double eps) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= eps * Math.Max(1, Math.Abs(y)); // relative beyond 1: float32 labels
        public int GetHashCode(double obj) => 0;
    }

    [Fact]
    public void A_split_list_gives_its_ids_in_file_order_and_options_move_the_folders()
    {
        WriteFolder();
        Directory.Move(F("defects"), F("defect_masks"));
        Directory.CreateDirectory(F("lists"));
        File.WriteAllText(F("lists/val.txt"), "c\n\n  a  \n");
        var options = new DenseTaskFolderOptions { SplitsFolder = "lists", LabelFolders = { ["defects"] = "defect_masks" }, DepthPngScale = 0.0001f };

        var view = _ml.Data.LoadDenseTaskFolder(_dir.Path, All, "val", options);
        Assert.Equal(["c", "a"], view.Ids);
        Assert.Equal("val", view.Split);
        Assert.Equal(2, view.GetRowCount());
        Assert.Equal(Classes.Select(v => (byte)v), Read<byte>(view, "DefectsLabel", "c"));
        Assert.Equal(0.15, Read<float>(view, "RangeLabel", "a")[3], 6);   // 1500 × 0.0001 m

        // Shuffled cursors visit the same rows.
        using var cursor = view.GetRowCursor([view.Schema["Id"]], new Random(3));
        var ids = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
        var seen = new List<string>();
        while (cursor.MoveNext()) { ReadOnlyMemory<char> i = default; ids(ref i); seen.Add(i.ToString()); }
        Assert.Equal(["a", "c"], seen.Order());

        // The label column set follows the tasks asked for.
        var one = _ml.Data.LoadDenseTaskFolder(_dir.Path, [Range]);
        Assert.Equal(["ImagePath", "Image", "Id", "Height", "Width", "RangeLabel"], one.Schema.Select(c => c.Name));
    }

    private Exception Creating(IEnumerable<DenseTaskDescriptor>? tasks = null, string? split = null) =>
        Record.Exception(() => _ml.Data.LoadDenseTaskFolder(_dir.Path, tasks ?? All, split))!;

    private Exception Reading(string column, string id = "a") => Record.Exception(() => Read<byte>(_ml.Data.LoadDenseTaskFolder(_dir.Path, All), column, id))!;

    private Exception ReadingFloat(string column, string id = "a") => Record.Exception(() => Read<float>(_ml.Data.LoadDenseTaskFolder(_dir.Path, All), column, id))!;

    [Fact]
    public void Bad_folders_fail_when_the_view_is_created_naming_what_is_wrong()
    {
        var e = Assert.IsType<DirectoryNotFoundException>(Creating());
        Assert.Contains(F("images"), e.Message);

        Directory.CreateDirectory(F("images"));
        var empty = Assert.IsType<InvalidDataException>(Creating());
        Assert.Contains("holds no image", empty.Message);

        WriteFolder();
        Assert.Contains("'defects' is given twice", Assert.IsType<ArgumentException>(Creating([Defects, Range, Defects])).Message);
        Assert.Contains("No task", Assert.IsType<ArgumentException>(Creating([])).Message);
        Assert.Contains("both have the label column 'RangeLabel'",
            Assert.IsType<ArgumentException>(Creating([Range, DenseTaskDescriptor.Depth("range2", columnStem: "Range")])).Message);

        var noFolder = Assert.IsType<DirectoryNotFoundException>(Creating([DenseTaskDescriptor.BinaryMap("holes")]));
        Assert.Contains("task 'holes'", noFolder.Message);

        Assert.Contains("splits/val.txt", Assert.IsType<FileNotFoundException>(Creating(split: "val")).Message);
        Directory.CreateDirectory(F("splits"));
        File.WriteAllText(F("splits/val.txt"), "a\nzz\n");
        var missingId = Assert.IsType<FileNotFoundException>(Creating(split: "val"));
        Assert.Contains("line 2 lists 'zz'", missingId.Message);
        File.WriteAllText(F("splits/val.txt"), "a\nb\na\n");
        Assert.Contains("line 3: id 'a' is listed again", Assert.IsType<InvalidDataException>(Creating(split: "val")).Message);
        File.WriteAllText(F("splits/val.txt"), "\n\n");
        Assert.Contains("lists no id", Assert.IsType<InvalidDataException>(Creating(split: "val")).Message);

        File.Delete(F("range/b.npy"));
        var missingLabel = Assert.IsType<FileNotFoundException>(Creating());
        Assert.Contains("Task 'range': the label of image 'b' is missing", missingLabel.Message);
        Assert.Contains(F("range/b.png"), missingLabel.Message);

        FolderFiles.Npy(F("range/b.npy"), "<f4", [H, W], new double[N]);
        FolderFiles.Gray16(F("range/b.png"), W, H, new int[N]);
        Assert.Contains("has both", Assert.IsType<InvalidDataException>(Creating()).Message);

        FolderFiles.Image(F("images/b.png"), W, H, 4);                       // b.jpg and b.png
        Assert.Contains("two images of id 'b'", Assert.IsType<InvalidDataException>(Creating([Range])).Message);
    }

    [Fact]
    public void Bad_labels_fail_when_read_naming_the_file_the_task_and_what_was_expected()
    {
        WriteFolder();

        FolderFiles.Palette(F("defects/a.png"), W + 1, H, new int[(W + 1) * H]);
        var size = Assert.IsType<InvalidDataException>(Reading("DefectsLabel"));
        Assert.Contains(F("defects/a.png"), size.Message);
        Assert.Contains("the label is 5×3 but its image", size.Message);

        FolderFiles.Palette(F("defects/a.png"), W, H, [0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0]);
        var value = Assert.IsType<InvalidDataException>(Reading("DefectsLabel"));
        Assert.Contains("(task 'defects'): pixel (x 1, y 1) holds 5; expected a class id 0..4 or 255", value.Message);

        FolderFiles.Rgb(F("defects/a.png"), W, H, new int[3 * N]);
        Assert.Contains("found a 8-bit RGB PNG; a segmentation label is a palette", Assert.IsType<InvalidDataException>(Reading("DefectsLabel")).Message);

        FolderFiles.Palette(F("cracks/a.png"), W, H, new int[N]);
        Assert.Contains("found a 8-bit palette PNG; a binary map label is an 8-bit grayscale PNG", Assert.IsType<InvalidDataException>(Reading("CracksLabel")).Message);
        FolderFiles.Npy(F("cracks/b.npy"), "<f4", [H, W], Enumerable.Repeat(2.0, N).ToArray());
        Assert.Contains("holds 2; expected a value in 0..1", Assert.IsType<InvalidDataException>(Reading("CracksLabel", "b")).Message);

        FolderFiles.Gray8(F("range/a.png"), W, H, new int[N]);
        var depth8 = Assert.IsType<InvalidDataException>(ReadingFloat("RangeLabel"));
        Assert.Contains(F("range/a.png"), depth8.Message);
        Assert.Contains("found a 8-bit grayscale PNG; a depth label PNG is 16-bit grayscale", depth8.Message);
        FolderFiles.Npy(F("range/b.npy"), "|u1", [H, W], new double[N]);
        Assert.Contains("dtype uint8; expected float32 or float64", Assert.IsType<InvalidDataException>(ReadingFloat("RangeLabel", "b")).Message);
        FolderFiles.Npy(F("range/c.npy"), "<f4", [W, H], new double[N]);
        Assert.Contains("shape (4, 3); expected (3, 4) or (3, 4, 1)", Assert.IsType<InvalidDataException>(ReadingFloat("RangeLabel", "c")).Message);

        FolderFiles.Gray8(F("tilt/a.png"), W, H, new int[N]);
        Assert.Contains("found a 8-bit grayscale PNG; a normals label PNG is 8-bit RGB", Assert.IsType<InvalidDataException>(ReadingFloat("TiltLabel")).Message);
        FolderFiles.Npy(F("tilt/b.npy"), "<f4", [H, W], new double[N]);
        var shape = Assert.IsType<InvalidDataException>(ReadingFloat("TiltLabel", "b"));
        Assert.Contains(F("tilt/b.npy"), shape.Message);
        Assert.Contains("shape (3, 4); expected (3, 4, 3)", shape.Message);
    }

    [Fact]
    public void A_16_bit_PNG_keeps_every_bit_and_refuses_other_formats()
    {
        var path = F("d.png");
        FolderFiles.Gray16(path, 3, 2, 0, 1, 255, 256, 40000, 65535);
        var (w, h, values) = Microsoft.ML.MtLora.Data.Formats.IndexedPng.ReadGray16(path);
        Assert.Equal((3, 2), (w, h));
        Assert.Equal(new ushort[] { 0, 1, 255, 256, 40000, 65535 }, values);
        FolderFiles.Gray8(path, 3, 2, 0, 1, 2, 3, 4, 5);
        Assert.Contains("found a 8-bit grayscale image; expected a 16-bit grayscale PNG",
            Assert.Throws<InvalidDataException>(() => Microsoft.ML.MtLora.Data.Formats.IndexedPng.ReadGray16(path)).Message);
    }
}
