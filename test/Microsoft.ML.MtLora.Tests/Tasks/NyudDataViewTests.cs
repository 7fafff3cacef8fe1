using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Nyud;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Data.Synthetic;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public sealed class NyudDataViewTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("mtlora-nyud-view-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void LoadNyud_reads_every_column_as_NyudLayout_decodes_it()
    {
        SyntheticNyud.Generate(_root, new SyntheticNyudOptions { TrainCount = 1, ValCount = 3, Width = 24, Height = 20, Seed = 4 });
        var view = new MLContext().Data.LoadNyud(_root, "val");
        Assert.Equal(["000002", "000003", "000004"], view.Ids);
        Assert.Equal(3, view.GetRowCount());

        // One label column per NYUD descriptor, named and typed as it says.
        foreach (var task in DenseTaskDescriptor.Nyud)
        {
            var type = Assert.IsType<VectorDataViewType>(view.Schema[task.LabelColumnName].Type);
            Assert.Equal(task.LabelItemType, type.ItemType);
        }
        Assert.Equal(["ImagePath", "Image", "Id", "Height", "Width", "SemsegLabel", "DepthLabel", "NormalsLabel", "EdgeLabel"],
            view.Schema.Select(c => c.Name));

        using var cursor = view.GetRowCursor(view.Schema, new Random(1));
        var path = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["ImagePath"]);
        var image = cursor.GetGetter<MLImage>(view.Schema["Image"]);
        var id = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["Id"]);
        var height = cursor.GetGetter<int>(view.Schema["Height"]);
        var width = cursor.GetGetter<int>(view.Schema["Width"]);
        var semseg = cursor.GetGetter<VBuffer<byte>>(view.Schema["SemsegLabel"]);
        var depth = cursor.GetGetter<VBuffer<float>>(view.Schema["DepthLabel"]);
        var normals = cursor.GetGetter<VBuffer<float>>(view.Schema["NormalsLabel"]);
        var edge = cursor.GetGetter<VBuffer<byte>>(view.Schema["EdgeLabel"]);
        var seen = new List<string>();
        while (cursor.MoveNext())
        {
            ReadOnlyMemory<char> p = default, i = default;
            int h = 0, w = 0;
            MLImage img = null!;
            VBuffer<byte> s = default, e = default;
            VBuffer<float> d = default, n = default;
            id(ref i);
            path(ref p);
            height(ref h);
            width(ref w);
            image(ref img);
            using (img) Assert.Equal((24, 20), (img.Width, img.Height));
            semseg(ref s);
            depth(ref d);
            normals(ref n);
            edge(ref e);
            string sid = i.ToString();
            seen.Add(sid);
            Assert.Equal(NyudLayout.ImagePath(view.Root, sid), p.ToString());
            Assert.Equal((24, 20), (w, h));
            Assert.Equal(NyudLayout.ReadSemseg(_root, sid, 24, 20), s.DenseValues());
            Assert.Equal(NyudLayout.ReadDepth(_root, sid, 24, 20), d.DenseValues());
            Assert.Equal(NyudLayout.ReadNormals(_root, sid, 24, 20), n.DenseValues());
            Assert.Equal(NyudLayout.ReadEdge(_root, sid, 24, 20), e.DenseValues());
            // The decoding itself: file value 0 → 255, k → k − 1 (NYUD_MT._load_semseg), read here from the PNG directly.
            var png = IndexedPng.Read(Path.Combine(_root, "segmentation", sid + ".png")).Pixels;
            Assert.Equal(png.Select(v => v == 0 ? (byte)255 : (byte)(v - 1)), s.DenseValues());
        }
        Assert.Equal(view.Ids.Order(), seen.Order());
    }

    [Fact]
    public void The_batch_pipeline_reads_every_NYUD_task_from_LoadNyud()
    {
        SyntheticNyud.Generate(_root, new SyntheticNyudOptions { TrainCount = 1, ValCount = 2, Width = 24, Height = 16, Seed = 2 });
        var view = new MLContext().Data.LoadNyud(_root, "val");
        var reader = new DenseBatchReader(view, new DenseBatchReaderOptions { Tasks = DenseTaskDescriptor.Nyud, ImageSize = 16, BatchSize = 2 });
        Assert.Equal(DenseTaskDescriptor.Nyud, reader.Tasks);
        using var batch = Assert.Single(reader.ReadEpoch(0));
        Assert.Equal([2, 3, 16, 16], batch.Images.shape);
        foreach (var task in DenseTaskDescriptor.Nyud) Assert.Equal([2, task.LabelChannels, 16, 16], batch.Targets[task].shape);
        // 24×16 → 16×16, nearest: rows unchanged, output column u reads column floor(u·24/16).
        for (int i = 0; i < 2; i++)
        {
            string id = batch.Ids[i];
            var semseg = NyudLayout.ReadSemseg(_root, id, 24, 16);
            var depth = NyudLayout.ReadDepth(_root, id, 24, 16);
            var edge = NyudLayout.ReadEdge(_root, id, 24, 16);
            var s = batch.Targets[DenseTaskDescriptor.NyudSemanticSegmentation][i, 0].data<float>().ToArray();
            var d = batch.Targets[DenseTaskDescriptor.NyudDepth][i, 0].data<float>().ToArray();
            var e = batch.Targets[DenseTaskDescriptor.NyudEdge][i, 0].data<float>().ToArray();
            for (int v = 0; v < 16; v++)
                for (int u = 0; u < 16; u++)
                {
                    int k = v * 24 + (int)Math.Floor(u * 24 / 16.0);
                    Assert.Equal(semseg[k], s[v * 16 + u]);
                    Assert.Equal(depth[k] == 0 ? 255f : depth[k], d[v * 16 + u]);   // AddIgnoreRegions: a hole (0) is ignored
                    Assert.Equal(edge[k], e[v * 16 + u]);
                }
        }
    }

    [Fact]
    public void Bad_files_fail_with_the_file_named()
    {
        SyntheticNyud.Generate(_root, new SyntheticNyudOptions { TrainCount = 1, ValCount = 1, Width = 16, Height = 16 });
        Assert.Contains("gt_sets/test.txt", Assert.Throws<FileNotFoundException>(() => new MLContext().Data.LoadNyud(_root, "test")).Message);
        var depth = Path.Combine(_root, "depth", "000002.npy");
        NpyFile.WriteFloat32(depth, [16, 15], new float[16 * 15]);
        var view = new MLContext().Data.LoadNyud(_root, "val");
        using var cursor = view.GetRowCursor([view.Schema["DepthLabel"]]);
        var getter = cursor.GetGetter<VBuffer<float>>(view.Schema["DepthLabel"]);
        Assert.True(cursor.MoveNext());
        VBuffer<float> value = default;
        var error = Assert.Throws<InvalidDataException>(() => getter(ref value));
        Assert.Contains(depth, error.Message);
        Assert.Contains("(16, 15)", error.Message);
    }
}
