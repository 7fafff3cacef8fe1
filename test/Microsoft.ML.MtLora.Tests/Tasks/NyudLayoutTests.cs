using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Nyud;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public sealed class NyudLayoutTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("mtlora-nyud-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>One 3×2 sample with all five files (the image's bytes do not matter to the layout).</summary>
    private void Sample(string id, byte[] semseg, float[] depth, float[] normalsHwc, float[] edge)
    {
        foreach (var d in new[] { "images", "segmentation", "depth", "normals", "edge", "gt_sets" }) Directory.CreateDirectory(Path.Combine(_root, d));
        File.WriteAllBytes(NyudLayout.ImagePath(_root, id), [0xFF, 0xD8]);
        IndexedPng.WriteGray(Path.Combine(_root, "segmentation", id + ".png"), new IndexedImage(3, 2, semseg));
        NpyFile.WriteFloat32(Path.Combine(_root, "depth", id + ".npy"), [2, 3], depth);
        NpyFile.WriteFloat32(Path.Combine(_root, "normals", id + ".npy"), [2, 3, 3], normalsHwc);
        NpyFile.WriteFloat32(Path.Combine(_root, "edge", id + ".npy"), [2, 3], edge);
    }

    private static float[] Normals() => Enumerable.Range(0, 18).Select(i => i / 18f).ToArray();

    [Fact]
    public void DecodesLabelsAsTheReferenceLoader()
    {
        Sample("0001", [0, 1, 40, 2, 0, 7], [0.5f, 1f, 2f, 3f, 4f, 10f], Normals(), [0, 1, 0, 0, 1, 1]);
        File.WriteAllLines(Path.Combine(_root, "gt_sets", "val.txt"), ["0001"]);
        Assert.Equal(["0001"], NyudLayout.ReadSplit(_root, "val"));
        // 0 → 255 (ignore), k → k − 1 (NYUD_MT._load_semseg).
        Assert.Equal([255, 0, 39, 1, 255, 6], NyudLayout.ReadSemseg(_root, "0001", 3, 2));
        Assert.Equal([0.5f, 1f, 2f, 3f, 4f, 10f], NyudLayout.ReadDepth(_root, "0001", 3, 2));
        Assert.Equal([0, 1, 0, 0, 1, 1], NyudLayout.ReadEdge(_root, "0001", 3, 2));
        var planar = NyudLayout.ReadNormals(_root, "0001", 3, 2);
        // HWC (pixel i, channel c) = (3i + c) / 18 → CHW index c·6 + i.
        for (int i = 0; i < 6; i++) for (int c = 0; c < 3; c++) Assert.Equal((3 * i + c) / 18f, planar[c * 6 + i]);

        // Counted by hand from the arrays above: semseg 4 labelled + 2 unlabelled; depth 6 valid, range 0.5..10, mean 20.5 / 6;
        // 3 edge pixels of 6.
        var s = NyudStatistics.Compute(_root, "val");
        Assert.Equal(1, s.Samples);
        Assert.Equal((4L, 2L), (s.SemsegValidPixels, s.SemsegIgnoredPixels));
        Assert.Equal((6L, 0L), (s.DepthValidPixels, s.DepthZeroPixels));
        Assert.Equal((0.5, 10.0), (s.DepthMin, s.DepthMax));
        Assert.Equal(20.5 / 6, s.DepthMean, 12);
        Assert.Equal(6, s.NormalsPixels);
        Assert.Equal((3L, 6L), (s.EdgePositivePixels, s.EdgePixels));
    }

    [Fact]
    public void BadFilesGiveOneLineErrorsNamingTheFile()
    {
        Sample("0002", [0, 1, 41, 2, 0, 7], [0.5f, float.NaN, 2f, -1f, 4f, 10f], Normals(), [0, 1, 0, 0, 2, 1]);
        File.WriteAllLines(Path.Combine(_root, "gt_sets", "train.txt"), ["0002", "0003"]);
        var missing = Assert.Throws<FileNotFoundException>(() => NyudLayout.ReadSplit(_root, "train"));
        Assert.Contains("line 2 lists '0003'", missing.Message);
        Assert.Contains("0003.jpg", missing.Message);
        Assert.Contains("gt_sets/test.txt", Assert.Throws<FileNotFoundException>(() => NyudLayout.ReadSplit(_root, "test")).Message);
        Assert.Contains("holds 41", Assert.Throws<InvalidDataException>(() => NyudLayout.ReadSemseg(_root, "0002", 3, 2)).Message);
        var depth = Assert.Throws<InvalidDataException>(() => NyudLayout.ReadDepth(_root, "0002", 3, 2)).Message;
        Assert.Contains("0002.npy", depth);
        Assert.Contains("NaN", depth);
        Assert.Contains("expected an edge value", Assert.Throws<InvalidDataException>(() => NyudLayout.ReadEdge(_root, "0002", 3, 2)).Message);
        Assert.Contains("expected (3, 2) or (3, 2, 1)", Assert.Throws<InvalidDataException>(() => NyudLayout.ReadDepth(_root, "0002", 2, 3)).Message);
    }
}
