using System.Buffers.Binary;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Tests.Data.Formats;

/// <summary>The MAT v5 writer: round trips through the reader, and the bytes it lays down per the format document.</summary>
public class MatFileWriterTests
{
    private static MatArray[] Sample()
    {
        var mask = new byte[] { 0, 1, 1, 0, 0, 1 }; // 2x3 row-major
        var part = new MatArray[] { new MatCharArray("", "luarm"), MatNumericArray.FromRowMajor("", 2, 3, mask) };
        var parts = new MatStructArray("", 1, 1, ["part_name", "mask"], [part]);
        var person = new MatArray[] { new MatCharArray("", "person"), MatNumericArray.Scalar("", 15), MatNumericArray.FromRowMajor("", 2, 3, mask), parts };
        var cat = new MatArray[] { new MatCharArray("", "cat"), MatNumericArray.Scalar("", 8), MatNumericArray.FromRowMajor("", 2, 3, new byte[6]), MatNumericArray.Empty("") };
        var objects = new MatStructArray("", 1, 2, ["class", "class_ind", "mask", "parts"], [person, cat]);
        var anno = new MatStructArray("anno", 1, 1, ["imname", "objects"], [[new MatCharArray("", "2008_000123"), objects]]);
        return
        [
            anno,
            MatNumericArray.FromRowMajor("LabelMap", 2, 3, new ushort[] { 1, 440, 158, 360, 284, 459 }),
            MatNumericArray.FromRowMajor("f", 1, 2, new float[] { 1.25f, -3f }),
            MatNumericArray.FromRowMajor("i8", 1, 2, new sbyte[] { -128, 127 }),
            MatNumericArray.FromRowMajor("i16", 1, 1, new short[] { -5 }),
            MatNumericArray.FromRowMajor("i32", 1, 1, new[] { int.MinValue }),
            MatNumericArray.FromRowMajor("u32", 1, 1, new[] { uint.MaxValue }),
            MatNumericArray.FromRowMajor("i64", 1, 1, new[] { long.MinValue }),
            MatNumericArray.FromRowMajor("u64", 1, 1, new[] { ulong.MaxValue }),
            MatNumericArray.FromRowMajor("flags", 1, 3, new[] { true, false, true }),
            new MatNumericArray("cube", [2, 2, 2], Enumerable.Range(0, 8).Select(i => (double)i).ToArray()),
            new MatCellArray("c", 1, 2, [new MatCharArray("", "x"), MatNumericArray.Empty("")]),
            new MatCharArray("empty", ""),
            new MatCharArray("uni", "héllo €"),
        ];
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RoundTripsEveryKindOfArray(bool compress)
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("all.mat");
        MatFile.Write(path, Sample(), compress);
        var v = MatFile.Read(path);

        Assert.Equal(Sample().Select(a => a.Name), v.Keys);
        var anno = Assert.IsType<MatStructArray>(v["anno"]);
        Assert.Equal("2008_000123", ((MatCharArray)anno.Get(0, 0)).Value);
        var objects = (MatStructArray)anno.Get(0, 1);
        Assert.Equal(["class", "class_ind", "mask", "parts"], objects.FieldNames);
        Assert.Equal(15, ((MatNumericArray)objects.Get(0, 1)).GetDouble(0));
        Assert.Equal(new[] { 0, 1, 1, 0, 0, 1 }, ((MatNumericArray)objects.Get(0, 2)).ToRowMajorInt32(out _, out _));
        var parts = (MatStructArray)objects.Get(0, 3);
        Assert.Equal("luarm", ((MatCharArray)parts.Get(0, "part_name")).Value);
        Assert.Equal(0, objects.Get(1, 3).Count);

        Assert.Equal(new[] { 1, 440, 158, 360, 284, 459 }, ((MatNumericArray)v["LabelMap"]).ToRowMajorInt32(out int r, out int c));
        Assert.Equal((2, 3), (r, c));
        Assert.Equal(MatClass.UInt16, ((MatNumericArray)v["LabelMap"]).Class);
        Assert.Equal(new[] { 1.25f, -3f }, (float[])((MatNumericArray)v["f"]).Data);
        Assert.Equal(new sbyte[] { -128, 127 }, (sbyte[])((MatNumericArray)v["i8"]).Data);
        Assert.Equal(new short[] { -5 }, (short[])((MatNumericArray)v["i16"]).Data);
        Assert.Equal(new[] { int.MinValue }, (int[])((MatNumericArray)v["i32"]).Data);
        Assert.Equal(new[] { uint.MaxValue }, (uint[])((MatNumericArray)v["u32"]).Data);
        Assert.Equal(new[] { long.MinValue }, (long[])((MatNumericArray)v["i64"]).Data);
        Assert.Equal(new[] { ulong.MaxValue }, (ulong[])((MatNumericArray)v["u64"]).Data);
        var flags = (MatNumericArray)v["flags"];
        Assert.True(flags.IsLogical);
        Assert.Equal(new byte[] { 1, 0, 1 }, (byte[])flags.Data);
        Assert.Equal([2, 2, 2], v["cube"].Dimensions);
        Assert.Equal(7, ((MatNumericArray)v["cube"]).GetDouble(7));
        var cell = (MatCellArray)v["c"];
        Assert.Equal("x", ((MatCharArray)cell[0]).Value);
        Assert.Equal(0, cell[1].Count);
        Assert.Equal("", ((MatCharArray)v["empty"]).Value);
        Assert.Equal([0, 0], v["empty"].Dimensions);
        Assert.Equal("héllo €", ((MatCharArray)v["uni"]).Value);
        Assert.Equal([1, 7], v["uni"].Dimensions);
    }

    [Fact]
    public void UncompressedLayoutFollowsTheFormatDocument()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("a.mat");
        MatFile.Write(path, [MatNumericArray.FromRowMajor("A", 2, 3, new double[] { 1, 2, 3, 4, 5, 6 })], compress: false);
        var b = File.ReadAllBytes(path);
        uint U(int at) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));

        Assert.StartsWith("MATLAB 5.0 MAT-file", System.Text.Encoding.ASCII.GetString(b, 0, 116));
        Assert.Equal((byte)' ', b[115]);
        Assert.Equal(0x0100, BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(124)));
        Assert.Equal("IM", System.Text.Encoding.ASCII.GetString(b, 126, 2));
        Assert.Equal(14u, U(128));                     // miMATRIX
        Assert.Equal((uint)(b.Length - 136), U(132));  // its size: the rest of the file
        Assert.Equal(0, (b.Length - 136) % 8);
        Assert.Equal((6u, 8u, 6u, 0u), (U(136), U(140), U(144), U(148))); // miUINT32 flags: mxDOUBLE_CLASS, nzmax 0
        Assert.Equal((5u, 8u, 2u, 3u), (U(152), U(156), U(160), U(164))); // miINT32 dims [2 3]
        Assert.Equal((1u << 16) | 1u, U(168));                              // small miINT8 name of 1 byte
        Assert.Equal((byte)'A', b[172]);
        Assert.Equal((9u, 48u), (U(176), U(180)));                         // miDOUBLE, 6 values
        var data = Enumerable.Range(0, 6).Select(i => BitConverter.ToDouble(b, 184 + 8 * i));
        Assert.Equal(new double[] { 1, 4, 2, 5, 3, 6 }, data);             // column-major
        Assert.Equal(232, b.Length);
    }

    [Fact]
    public void OutputIsDeterministicAndAtomic()
    {
        using var dir = Fixture.TempDir();
        MatFile.Write(dir.File("x.mat"), Sample());
        MatFile.Write(dir.File("y.mat"), Sample());
        Assert.Equal(File.ReadAllBytes(dir.File("x.mat")), File.ReadAllBytes(dir.File("y.mat")));
        Assert.Equal(2, Directory.GetFiles(dir.Path).Length); // no temporary files left behind
    }

    [Fact]
    public void InvalidNamesAreRejected()
    {
        using var dir = Fixture.TempDir();
        Assert.Throws<ArgumentException>(() => MatFile.Write(dir.File("n.mat"), [MatNumericArray.Scalar("1abc", 1)]));
        Assert.Throws<ArgumentException>(() => MatFile.Write(dir.File("n.mat"), [MatNumericArray.Scalar("a", 1), MatNumericArray.Scalar("a", 2)]));
        Assert.Throws<ArgumentException>(() => new MatStructArray("s", 1, 1, ["bad name"], [[MatNumericArray.Empty("")]]));
        Assert.Throws<ArgumentException>(() => new MatStructArray("s", 1, 2, ["a"], [[MatNumericArray.Empty("")]]));
        Assert.False(File.Exists(dir.File("n.mat")));
    }

    [Fact]
    public void ToRowMajorRejectsNonIntegers()
    {
        var a = MatNumericArray.FromRowMajor("x", 1, 2, new[] { 1.0, 2.5 });
        var e = Assert.Throws<InvalidDataException>(() => a.ToRowMajorInt32(out _, out _));
        Assert.Contains("2.5", e.Message);
    }
}
