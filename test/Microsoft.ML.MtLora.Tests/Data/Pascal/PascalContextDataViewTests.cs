using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Tests.Data.Pascal;

public class PascalContextDataViewTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static T[] ReadColumn<T>(IDataView view, string column, int row = 0)
    {
        var col = view.Schema[column];
        using var cursor = view.GetRowCursor([col]);
        var getter = cursor.GetGetter<VBuffer<T>>(col);
        for (int i = 0; i <= row; i++) Assert.True(cursor.MoveNext());
        VBuffer<T> value = default;
        getter(ref value);
        return value.DenseValues().ToArray();
    }

    private static ReadOnlySpan<byte> ReadPixels(MLImage image)
    {
        var bytes = new byte[image.Width * image.Height * 4];
        Microsoft.ML.MtLora.Data.Preprocessing.MLImagePixels.CopyTo(image, bytes);
        return bytes;
    }

    private static List<string> ReadIds(IDataView view, Random? rand = null)
    {
        var col = view.Schema[MtLoraColumnNames.Id];
        using var cursor = view.GetRowCursor([col], rand);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        var ids = new List<string>();
        ReadOnlyMemory<char> text = default;
        while (cursor.MoveNext())
        {
            Assert.Equal(ids.Count, cursor.Position);
            getter(ref text);
            ids.Add(text.ToString());
        }
        return ids;
    }

    [Fact]
    public void Schema_has_image_id_size_and_one_label_column_per_task()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteSimpleSample("a");
        var view = Ml.Data.LoadPascalContext(ds.Root, "val");
        var names = view.Schema.Select(c => c.Name).ToArray();
        Assert.Equal(["Image", "Id", "Height", "Width", "SemsegLabel", "HumanPartsLabel", "SaliencyLabel", "NormalsLabel"], names);
        Assert.IsType<ImageDataViewType>(view.Schema["Image"].Type);
        Assert.Equal(TextDataViewType.Instance, view.Schema["Id"].Type);
        Assert.Equal(NumberDataViewType.Int32, view.Schema["Height"].Type);
        Assert.Equal(NumberDataViewType.Byte, ((VectorDataViewType)view.Schema["SemsegLabel"].Type).ItemType);
        Assert.Equal(NumberDataViewType.Single, ((VectorDataViewType)view.Schema["NormalsLabel"].Type).ItemType);
        Assert.Equal(1, view.GetRowCount());
        Assert.True(view.CanShuffle);

        var only = Ml.Data.LoadPascalContext(ds.Root, "val", "sal,semseg");
        Assert.Equal(["Image", "Id", "Height", "Width", "SemsegLabel", "SaliencyLabel"], only.Schema.Select(c => c.Name).ToArray());
    }

    [Fact]
    public void Image_height_width_and_simple_labels_are_read_at_original_resolution()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteSimpleSample("a", width: 6, height: 4);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val");
        using var cursor = view.GetRowCursor(view.Schema);
        Assert.True(cursor.MoveNext());
        int h = 0, w = 0;
        cursor.GetGetter<int>(view.Schema["Height"])(ref h);
        cursor.GetGetter<int>(view.Schema["Width"])(ref w);
        Assert.Equal((4, 6), (h, w));
        MLImage image = null!;
        cursor.GetGetter<MLImage>(view.Schema["Image"])(ref image);
        using (image)
        {
            Assert.Equal(6, image.Width);
            Assert.Equal(4, image.Height);
            // pixel (x=3, y=2) = (30, 20, 50), stored RGBA
            int i = (2 * 6 + 3) * 4;
            var px = ReadPixels(image);
            Assert.Equal(MLPixelFormat.Rgba32, image.PixelFormat);
            Assert.Equal(new byte[] { 30, 20, 50 }, px.Slice(i, 3).ToArray());
        }
        Assert.False(cursor.MoveNext());
        Assert.All(ReadColumn<byte>(view, "SemsegLabel"), v => Assert.Equal(1, v));
        Assert.All(ReadColumn<byte>(view, "SaliencyLabel"), v => Assert.Equal(1, v));
        Assert.All(ReadColumn<byte>(view, "HumanPartsLabel"), v => Assert.Equal(255, v));
        var normals = ReadColumn<float>(view, "NormalsLabel");
        Assert.Equal(3 * 24, normals.Length);
        Assert.All(normals[..24], v => Assert.Equal(1f, v));
        Assert.All(normals[24..48], v => Assert.Equal((float)(2.0 * 128 / 255.0 - 1.0), v));
        Assert.All(normals[48..], v => Assert.Equal(-1f, v));
    }

    [Fact]
    public void Semseg_palette_and_grayscale_pngs_give_the_same_indices_and_voc12_wins_over_context()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "pal", "gray");
        byte[] classes = [0, 1, 20, 255, 15, 7];
        foreach (var id in new[] { "pal", "gray" }) ds.WriteImage(id, 3, 2, (_, _) => (0, 0, 0));
        ds.WriteSemseg("pal", 3, 2, classes, palette: true, folder: "VOC12");
        ds.WriteSemseg("pal", 3, 2, new byte[6], palette: true, folder: "pascal-context"); // VOC12 is checked first
        ds.WriteSemseg("gray", 3, 2, classes, palette: false, folder: "pascal-context");
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.SemanticSegmentation]);
        Assert.Equal(classes, ReadColumn<byte>(view, "SemsegLabel", 0));
        Assert.Equal(classes, ReadColumn<byte>(view, "SemsegLabel", 1));
    }

    [Fact]
    public void Saliency_is_binarised_at_half()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteImage("a", 4, 1, (_, _) => (0, 0, 0));
        ds.WriteSaliency("a", 4, 1, [0, 127, 128, 255]);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.Saliency]);
        Assert.Equal(new byte[] { 0, 0, 1, 1 }, ReadColumn<byte>(view, "SaliencyLabel"));
    }

    [Fact]
    public void Normals_are_masked_by_the_170_context_classes()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteImage("a", 4, 1, (_, _) => (0, 0, 0));
        byte[] rgb = [255, 0, 128, 10, 20, 30, 0, 255, 64, 200, 100, 50];
        // wall 440 valid, sky 360 invalid, tvmonitor 427 valid, 0 (unlabelled) invalid
        ds.WriteNormals("a", 4, 1, rgb, [440, 360, 427, 0]);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.SurfaceNormals]);
        var n = ReadColumn<float>(view, "NormalsLabel");
        static float N(int v) => (float)(2.0 * v / 255.0 - 1.0);
        Assert.Equal(new[] { N(255), 255f, N(0), 255f }, n[0..4]);     // x plane (R)
        Assert.Equal(new[] { N(0), 255f, N(255), 255f }, n[4..8]);     // y plane (G)
        Assert.Equal(new[] { N(128), 255f, N(64), 255f }, n[8..12]);   // z plane (B)
        Assert.Equal(170, PascalContextClasses.NormalsValidClassIds.Count);
        Assert.True(PascalContextClasses.HasValidNormals(284));        // person
        Assert.False(PascalContextClasses.HasValidNormals(420));       // tree
    }

    [Fact]
    public void Human_parts_are_grouped_into_six_parts_and_later_parts_overwrite()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteImage("a", 4, 2, (_, _) => (0, 0, 0));
        static byte[] At(params int[] idx) { var m = new byte[8]; foreach (var i in idx) m[i] = 1; return m; }
        ds.WriteHumanParts("a", 4, 2,
            new PartObject(12, At(4), [("head", At(4))]),                        // a dog with "parts": ignored
            new PartObject(15, At(5), []),                                        // a person without parts: ignored
            new PartObject(15, At(0, 1, 2, 3, 7), [("head", At(0)), ("llarm", At(1)), ("rfoot", At(2)), ("torso", At(3, 7)), ("luleg", At(7))]));
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.HumanParts]);
        Assert.Equal(new byte[] { 1, 4, 6, 2, 0, 0, 0, 5 }, ReadColumn<byte>(view, "HumanPartsLabel"));
        Assert.Equal(6, PascalContextClasses.HumanPartIds.Values.Max());
        Assert.Equal(24, PascalContextClasses.HumanPartIds.Count);
    }

    [Fact]
    public void Parts_index_decides_which_images_have_parts_and_a_stale_index_is_ignored_without_writing()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b");
        foreach (var id in new[] { "a", "b" })
        {
            ds.WriteImage(id, 2, 1, (_, _) => (0, 0, 0));
            ds.WriteSemseg(id, 2, 1, [0, 0]);
            ds.WriteHumanParts(id, 2, 1, new PartObject(15, [1, 1], [("head", [1, 0]), ("torso", [0, 1])]));
        }
        // The index says only "b" has a person: "a" is all-ignore although its .mat has parts (the reference trusts the index).
        ds.WritePartsIndex("val", """{"a": [-1], "b": [15]}""");
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", "semseg,human_parts");
        Assert.All(ReadColumn<byte>(view, "HumanPartsLabel", 0), v => Assert.Equal(255, v));
        Assert.Equal(new byte[] { 1, 2 }, ReadColumn<byte>(view, "HumanPartsLabel", 1));

        // Stale (does not list every id): derived from the .mat files instead, and the file is left untouched.
        ds.WritePartsIndex("val", """{"b": [15]}""");
        var stale = Ml.Data.LoadPascalContext(ds.Root, "val", "semseg,human_parts");
        Assert.Equal(new byte[] { 1, 2 }, ReadColumn<byte>(stale, "HumanPartsLabel", 0));
        Assert.Equal("""{"b": [15]}""", File.ReadAllText(ds.PathOf("ImageSets", "Parts", "val.txt")));
        Assert.False(File.Exists(ds.PathOf("ImageSets", "Parts", "train.txt")));
    }

    [Fact]
    public void Human_parts_alone_keeps_only_images_with_annotated_persons()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b", "c");
        ds.WriteHumanParts("a", 2, 1, new PartObject(15, [1, 0], [("head", [1, 0])]));
        ds.WriteHumanParts("b", 2, 1, new PartObject(15, [0, 0], []));      // empty mask: not listed as a person
        ds.WriteHumanParts("c", 2, 1);
        foreach (var id in new[] { "a", "b", "c" }) ds.WriteImage(id, 2, 1, (_, _) => (0, 0, 0));
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", "human_parts");
        Assert.Equal(["a"], ReadIds(view));
        var all = Ml.Data.LoadPascalContext(ds.Root, "val", "human_parts", new PascalContextOptions { HumanPartsOnlyKeepsAnnotatedImages = false });
        Assert.Equal(["a", "b", "c"], ReadIds(all));
    }

    [Fact]
    public void Label_size_mismatch_is_resized_nearest_by_default_and_an_error_on_request()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteImage("a", 4, 1, (_, _) => (0, 0, 0));
        ds.WriteSemseg("a", 2, 1, [3, 9]);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.SemanticSegmentation]);
        // OpenCV nearest 2 → 4: source index floor(x·0.5) = 0, 0, 1, 1
        Assert.Equal(new byte[] { 3, 3, 9, 9 }, ReadColumn<byte>(view, "SemsegLabel"));

        var strict = Ml.Data.LoadPascalContext(ds.Root, "val", [DenseTask.SemanticSegmentation],
            new PascalContextOptions { LabelSizeMismatch = LabelSizeMismatchHandling.Error });
        var e = Assert.Throws<PascalSampleException>(() => ReadColumn<byte>(strict, "SemsegLabel"));
        Assert.Contains("a.png", e.Message);
        Assert.Contains("2x1", e.Message);
        Assert.Contains("4x1", e.Message);
        Assert.Equal("a", e.SampleId);
    }

    [Fact]
    public void Shuffled_cursors_are_deterministic_permutations()
    {
        using var ds = new PascalTestDataset();
        var ids = Enumerable.Range(0, 12).Select(i => $"2008_{i:D6}").ToArray();
        ds.WriteSplit("train", ids);
        foreach (var id in ids) ds.WriteSimpleSample(id, 2, 2);
        var view = Ml.Data.LoadPascalContext(ds.Root, "train");
        Assert.Equal(ids, ReadIds(view));
        var a = ReadIds(view, new Random(5));
        var b = ReadIds(view, new Random(5));
        var c = ReadIds(view, new Random(6));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(ids, a);
        Assert.Equal(ids.Order(), a.Order());
        // A cursor set splits the same order round-robin: cursor k gets positions k, k+4, k+8.
        var set = view.GetRowCursorSet([view.Schema["Id"]], 4, new Random(5));
        Assert.Equal(4, set.Length);
        for (int k = 0; k < 4; k++)
        {
            using var cursor = set[k];
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
            var mine = new List<string>();
            ReadOnlyMemory<char> text = default;
            while (cursor.MoveNext()) { getter(ref text); mine.Add(text.ToString()); }
            Assert.Equal(a.Where((_, i) => i % 4 == k), mine);
        }
    }

    [Fact]
    public void Opening_decodes_nothing_and_getters_decode_only_their_column()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b");
        ds.WriteSimpleSample("a");
        ds.WriteSimpleSample("b");
        // Every file exists but none can be decoded: opening and reading ids must still work.
        foreach (var f in Directory.GetFiles(ds.Root, "*.*", SearchOption.AllDirectories).Where(f => !f.Contains("ImageSets")))
            File.WriteAllBytes(f, [1, 2, 3]);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val");
        Assert.Equal(["a", "b"], ReadIds(view));
        var e = Assert.Throws<PascalSampleException>(() => ReadColumn<byte>(view, "SaliencyLabel"));
        Assert.Contains("a.jpg", e.Message); // the label needs the image size: the header read fails first
    }

    [Fact]
    public void Missing_root_split_and_unknown_task_name_are_clear_errors()
    {
        var missing = Path.Combine(Path.GetTempPath(), "mtlora-no-such-root-" + Guid.NewGuid());
        var e1 = Assert.Throws<DirectoryNotFoundException>(() => Ml.Data.LoadPascalContext(missing, "val"));
        Assert.Contains(missing, e1.Message);

        using var ds = new PascalTestDataset();
        var e2 = Assert.Throws<FileNotFoundException>(() => Ml.Data.LoadPascalContext(ds.Root, "val"));
        Assert.Contains(Path.Combine("ImageSets", "Context", "val.txt"), e2.Message);

        ds.WriteSplit("val", "a");
        var e3 = Assert.Throws<ArgumentException>(() => Ml.Data.LoadPascalContext(ds.Root, "val", "semseg,depth"));
        Assert.Contains("'depth'", e3.Message);
    }

    [Fact]
    public void Missing_image_or_label_file_names_the_id_and_the_file()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b");
        ds.WriteSimpleSample("a");
        ds.WriteSimpleSample("b");
        File.Delete(ds.PathOf("JPEGImages", "b.jpg"));
        var e = Assert.Throws<FileNotFoundException>(() => Ml.Data.LoadPascalContext(ds.Root, "val"));
        Assert.Contains("'b'", e.Message);
        Assert.Contains(ds.PathOf("JPEGImages", "b.jpg"), e.Message);

        ds.WriteSimpleSample("b");
        File.Delete(ds.PathOf("normals_distill", "a.png"));
        var e2 = Assert.Throws<FileNotFoundException>(() => Ml.Data.LoadPascalContext(ds.Root, "val"));
        Assert.Contains(ds.PathOf("normals_distill", "a.png"), e2.Message);
        // Tasks that do not need the file still open.
        Assert.Equal(2, Ml.Data.LoadPascalContext(ds.Root, "val", "semseg,sal").GetRowCount());
    }

    [Fact]
    public void Truncated_image_and_mat_files_are_errors_naming_the_file()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a");
        ds.WriteSimpleSample("a", 16, 16);
        ds.WriteJpeg("a", 16, 16, new SkiaSharp.SKColor(10, 20, 30));
        var jpg = ds.PathOf("JPEGImages", "a.jpg");
        var bytes = File.ReadAllBytes(jpg);
        File.WriteAllBytes(jpg, bytes[..(bytes.Length / 2)]);
        var view = Ml.Data.LoadPascalContext(ds.Root, "val");
        using (var cursor = view.GetRowCursor([view.Schema["Image"]]))
        {
            Assert.True(cursor.MoveNext());
            MLImage image = null!;
            var e = Assert.Throws<PascalSampleException>(() => cursor.GetGetter<MLImage>(view.Schema["Image"])(ref image));
            Assert.Contains(jpg, e.Message);
        }

        ds.WriteSimpleSample("a", 16, 16);
        var mat = ds.PathOf("human_parts", "a.mat");
        var matBytes = File.ReadAllBytes(mat);
        File.WriteAllBytes(mat, matBytes[..(matBytes.Length - 20)]);
        var view2 = Ml.Data.LoadPascalContext(ds.Root, "val", "human_parts", new PascalContextOptions { HumanPartsOnlyKeepsAnnotatedImages = false });
        var e2 = Assert.Throws<PascalSampleException>(() => ReadColumn<byte>(view2, "HumanPartsLabel"));
        Assert.Contains(mat, e2.Message);
    }

    [Fact]
    public void Skip_bad_samples_leaves_them_out_and_reports_each()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b", "c", "d");
        foreach (var id in new[] { "a", "b", "c", "d" }) ds.WriteSimpleSample(id);
        File.Delete(ds.PathOf("sal_distill", "b.png"));                              // missing: found at open
        File.WriteAllBytes(ds.PathOf("semseg", "VOC12", "d.png"), [0x89, 0x50, 0x4E]); // corrupt: found while reading
        var view = Ml.Data.LoadPascalContext(ds.Root, "val", DenseTasks.All, new PascalContextOptions { SkipBadSamples = true });
        Assert.Null(view.GetRowCount());
        Assert.Equal(1, view.SkippedSampleCount);
        var cols = view.Schema.Where(c => c.Name != "Image").ToArray();
        var ids = new List<string>();
        using (var cursor = view.GetRowCursor(cols))
        {
            var id = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
            ReadOnlyMemory<char> text = default;
            while (cursor.MoveNext()) { id(ref text); ids.Add(text.ToString()); }
        }
        Assert.Equal(["a", "c"], ids);
        Assert.Equal(2, view.SkippedSampleCount);
        var skipped = view.SkippedSamples;
        Assert.Equal(["b", "d"], skipped.Select(s => s.Id));
        Assert.Contains("b.png", skipped[0].Reason);
        Assert.Contains("d.png", skipped[1].Reason);
    }
}
