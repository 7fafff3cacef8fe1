using System.Text;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Tests.Data.Formats;

/// <summary>The MAT v5 reader on bytes built by hand from the format document and on files written by scipy.</summary>
public class MatFileReaderTests
{
    private const int MxCell = 1, MxStruct = 2, MxObject = 3, MxChar = 4, MxSparse = 5, MxDouble = 6, MxUInt8 = 9,
        MxUInt16 = 11, MxFunction = 16;

    private static IReadOnlyDictionary<string, MatArray> Read(byte[] bytes, string name = "test.mat") =>
        MatFile.Read(new MemoryStream(bytes), name);

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void HandMadeDoubleMatrixIsColumnMajor(bool bigEndian, bool compressed)
    {
        var m = new MatBytes(bigEndian);
        // A = [1 2 3; 4 5 6] is stored column by column: 1 4 2 5 3 6.
        var matrix = m.Matrix(m.Flags(MxDouble), m.Dims(2, 3), m.Name("A"), m.Element(MatBytes.MiDouble, m.Doubles(1, 4, 2, 5, 3, 6)));
        var bytes = m.File(compressed ? MatBytes.Compressed(m, matrix) : matrix);

        var a = Assert.IsType<MatNumericArray>(Read(bytes)["A"]);
        Assert.Equal(MatClass.Double, a.Class);
        Assert.Equal([2, 3], a.Dimensions);
        Assert.Equal(new double[] { 1, 4, 2, 5, 3, 6 }, (double[])a.Data);
        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6 }, a.ToRowMajorInt32(out int rows, out int cols));
        Assert.Equal((2, 3), (rows, cols));
        Assert.Equal(5, a.GetDouble(3));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SmallElementsAndNarrowStorageAreReadAsTheArrayClass(bool bigEndian)
    {
        var m = new MatBytes(bigEndian);
        // MATLAB saves a double array of small integers as miUINT8 data, in the small format when it fits in 4 bytes.
        var small = m.Matrix(m.Flags(MxDouble), m.Dims(1, 3), m.Name("v"), m.Small(MatBytes.MiUInt8, [7, 0, 255]));
        // A uint16 label map (2x2) whose values are stored as miUINT16: [1 459; 284 2] column-major.
        var labels = m.Matrix(m.Flags(MxUInt16), m.Dims(2, 2), m.Name("LabelMap"), m.Element(MatBytes.MiUInt16, m.U16s(1, 284, 459, 2)));
        var vars = Read(m.File(small, labels));

        var v = Assert.IsType<MatNumericArray>(vars["v"]);
        Assert.Equal(MatClass.Double, v.Class);
        Assert.Equal(new double[] { 7, 0, 255 }, (double[])v.Data);
        var l = Assert.IsType<MatNumericArray>(vars["LabelMap"]);
        Assert.Equal(MatClass.UInt16, l.Class);
        Assert.Equal(new[] { 1, 459, 284, 2 }, l.ToRowMajorInt32(out _, out _));
        Assert.Equal(["v", "LabelMap"], vars.Keys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HandMadeNestedStructWithEmptyFieldAndCharData(bool bigEndian)
    {
        var m = new MatBytes(bigEndian);
        byte[] FieldNames(int slot, params string[] names)
        {
            var b = new byte[slot * names.Length];
            for (int i = 0; i < names.Length; i++) Encoding.ASCII.GetBytes(names[i], 0, names[i].Length, b, i * slot);
            return b;
        }
        var partName = m.Matrix(m.Flags(MxChar), m.Dims(1, 4), m.Element(MatBytes.MiInt8, []), m.Element(MatBytes.MiUInt16, m.U16s("head".Select(c => (ushort)c).ToArray())));
        var partMask = m.Matrix(m.Flags(MxUInt8, 0x0200), m.Dims(2, 2), m.Element(MatBytes.MiInt8, []), m.Small(MatBytes.MiUInt8, [1, 0, 0, 1]));
        var parts = m.Matrix(m.Flags(MxStruct), m.Dims(1, 1), m.Element(MatBytes.MiInt8, []),
            m.Small(MatBytes.MiInt32, m.U32(32)), m.Element(MatBytes.MiInt8, FieldNames(32, "part_name", "mask")), partName, partMask);
        var name = m.Matrix(m.Flags(MxChar), m.Dims(1, 3), m.Element(MatBytes.MiInt8, []), m.Element(MatBytes.MiUtf8, "cat"u8.ToArray()));
        // MATLAB writes [] inside structs as an miMATRIX element of 0 bytes.
        var empty = m.Element(MatBytes.MiMatrix, []);
        var obj = m.Matrix(m.Flags(MxStruct), m.Dims(1, 2), m.Name("obj"),
            m.Small(MatBytes.MiInt32, m.U32(8)), m.Element(MatBytes.MiInt8, FieldNames(8, "class", "parts")),
            name, parts, name, empty);

        var s = Assert.IsType<MatStructArray>(Read(m.File(obj))["obj"]);
        Assert.Equal(["class", "parts"], s.FieldNames);
        Assert.Equal(2, s.Count);
        Assert.Equal("cat", Assert.IsType<MatCharArray>(s.Get(0, "class")).Value);
        var p = Assert.IsType<MatStructArray>(s.Get(0, 1));
        Assert.Equal("head", Assert.IsType<MatCharArray>(p.Get(0, 0)).Value);
        var mask = Assert.IsType<MatNumericArray>(p.Get(0, "mask"));
        Assert.True(mask.IsLogical);
        Assert.Equal(new[] { 1, 0, 0, 1 }, mask.ToRowMajorInt32(out _, out _));
        var e = Assert.IsType<MatNumericArray>(s.Get(1, "parts"));
        Assert.Equal(0, e.Count);
        Assert.Equal([0, 0], e.Dimensions);
    }

    [Fact]
    public void HandMadeCellArray()
    {
        var m = new MatBytes();
        var c1 = m.Matrix(m.Flags(MxDouble), m.Dims(1, 1), m.Element(MatBytes.MiInt8, []), m.Element(MatBytes.MiDouble, m.Doubles(2.5)));
        var c2 = m.Matrix(m.Flags(MxChar), m.Dims(1, 2), m.Element(MatBytes.MiInt8, []), m.Small(MatBytes.MiUInt16, m.U16s('o', 'k')));
        var cell = m.Matrix(m.Flags(MxCell), m.Dims(2, 1), m.Name("c"), c1, c2);
        var c = Assert.IsType<MatCellArray>(Read(m.File(cell))["c"]);
        Assert.Equal(2.5, Assert.IsType<MatNumericArray>(c[0]).GetDouble(0));
        Assert.Equal("ok", Assert.IsType<MatCharArray>(c[1]).Value);
    }

    [Theory]
    [InlineData(MxSparse, "sparse")]
    [InlineData(MxObject, "object")]
    [InlineData(MxFunction, "function handle")]
    public void UnsupportedClassesAreRefusedByName(int cls, string word)
    {
        var m = new MatBytes();
        var bad = m.Matrix(m.Flags(cls), m.Dims(1, 1), m.Name("weird"), m.Element(MatBytes.MiDouble, m.Doubles(1)));
        var e = Assert.Throws<NotSupportedException>(() => Read(m.File(bad), "x.mat"));
        Assert.Contains("x.mat", e.Message);
        Assert.Contains("weird", e.Message);
        Assert.Contains(word, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void ComplexArraysAreRefused()
    {
        var m = new MatBytes();
        var bad = m.Matrix(m.Flags(MxDouble, 0x0800), m.Dims(1, 1), m.Name("z"), m.Element(MatBytes.MiDouble, m.Doubles(1)), m.Element(MatBytes.MiDouble, m.Doubles(2)));
        Assert.Contains("complex", Assert.Throws<NotSupportedException>(() => Read(m.File(bad))).Message);
    }

    [Fact]
    public void NotMatV5FilesAreRefusedClearly()
    {
        var v73 = new MatBytes().Header("MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00");
        v73[124] = 0x00; v73[125] = 0x02;
        Assert.Contains("v7.3", Assert.Throws<NotSupportedException>(() => Read(v73)).Message);

        var png = new byte[200];
        "\x89PNG"u8.CopyTo(png);
        var e = Assert.Throws<InvalidDataException>(() => Read(png, "image.png"));
        Assert.Contains("image.png", e.Message);
        Assert.Contains("'IM' or 'MI'", e.Message);

        Assert.Contains("128-byte", Assert.Throws<InvalidDataException>(() => Read("MATLAB"u8.ToArray())).Message);
    }

    [Fact]
    public void DataSizeMismatchNamesTheNestedElement()
    {
        var m = new MatBytes();
        var maskBad = m.Matrix(m.Flags(MxUInt8), m.Dims(2, 2), m.Element(MatBytes.MiInt8, []), m.Small(MatBytes.MiUInt8, [1, 0, 1]));
        var s = m.Matrix(m.Flags(MxStruct), m.Dims(1, 1), m.Name("anno"), m.Small(MatBytes.MiInt32, m.U32(8)),
            m.Element(MatBytes.MiInt8, Encoding.ASCII.GetBytes("mask\0\0\0\0")), maskBad);
        var e = Assert.Throws<InvalidDataException>(() => Read(m.File(s), "p.mat"));
        Assert.Contains("p.mat", e.Message);
        Assert.Contains("anno.mask", e.Message);
        Assert.Contains("need 4", e.Message);
    }

    [Fact]
    public void ScipyHumanPartsFileReadsPositionallyLikeTheReference()
    {
        foreach (var bytes in new[] { ScipyMatFiles.PartsCompressed, ScipyMatFiles.PartsUncompressed })
        {
            var anno = Assert.IsType<MatStructArray>(Read(bytes)["anno"]);
            Assert.Equal(["imname", "objects"], anno.FieldNames);
            Assert.Equal("2008_000001", Assert.IsType<MatCharArray>(anno.Get(0, 0)).Value);
            // anno[0][0][1][0] = objects
            var objects = Assert.IsType<MatStructArray>(anno.Get(0, 1));
            Assert.Equal([1, 2], objects.Dimensions);
            Assert.Equal(["class", "class_ind", "mask", "parts"], objects.FieldNames);
            Assert.Equal("person", Assert.IsType<MatCharArray>(objects.Get(0, 0)).Value);
            Assert.Equal(15, Assert.IsType<MatNumericArray>(objects.Get(0, 1)).GetDouble(0));
            Assert.Equal(8, Assert.IsType<MatNumericArray>(objects.Get(1, 1)).GetDouble(0));

            var parts = Assert.IsType<MatStructArray>(objects.Get(0, 3));
            Assert.Equal(2, parts.Count);
            Assert.Equal("head", Assert.IsType<MatCharArray>(parts.Get(0, 0)).Value);
            Assert.Equal("llarm", Assert.IsType<MatCharArray>(parts.Get(1, 0)).Value);
            // m2 = zeros(3,4); m2[2,3] = 1; m2[1,0] = 1 (numpy row-major indices)
            var m2 = Assert.IsType<MatNumericArray>(parts.Get(1, 1)).ToRowMajorInt32(out int rows, out int cols);
            Assert.Equal((3, 4), (rows, cols));
            var expected = new int[12];
            expected[2 * 4 + 3] = 1;
            expected[1 * 4 + 0] = 1;
            Assert.Equal(expected, m2);
            Assert.Equal(MatClass.UInt8, Assert.IsType<MatNumericArray>(parts.Get(1, 1)).Class);
            Assert.Equal(0, objects.Get(1, 3).Count);
        }
    }

    [Fact]
    public void ScipyLabelMap()
    {
        var lm = Assert.IsType<MatNumericArray>(Read(ScipyMatFiles.LabelMapCompressed)["LabelMap"]);
        Assert.Equal(MatClass.UInt16, lm.Class);
        var ids = lm.ToRowMajorInt32(out int rows, out int cols);
        Assert.Equal((3, 4), (rows, cols));
        Assert.Equal(Enumerable.Range(0, 12).Select(i => i * 37 + 1), ids);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ScipyNumericClassesCharsCellsAndNdArrays(bool compressed)
    {
        var v = Read(compressed ? ScipyMatFiles.NumericsCompressed : ScipyMatFiles.NumericsUncompressed);
        MatNumericArray N(string name) => Assert.IsType<MatNumericArray>(v[name]);

        Assert.Equal(new[] { 1.5, 4.0, -2.0, 5.0, 3.25, 6.0 }, (double[])N("d").Data);
        Assert.Equal(new[] { 1.5f, 2.5f }, (float[])N("s").Data);
        Assert.Equal(new sbyte[] { -3, 4 }, (sbyte[])N("i8").Data);
        Assert.Equal(new byte[] { 200, 7, 9 }, (byte[])N("u8").Data);
        Assert.Equal(new short[] { -300, 400 }, (short[])N("i16").Data);
        Assert.Equal([2, 1], N("i16").Dimensions);
        Assert.Equal(new ushort[] { 60000, 1 }, (ushort[])N("u16").Data);
        Assert.Equal(new[] { -70000, 5 }, (int[])N("i32").Data);
        Assert.Equal(new uint[] { 4000000000 }, (uint[])N("u32").Data);
        Assert.Equal(new long[] { -(1L << 40), 3 }, (long[])N("i64").Data);
        Assert.Equal(new ulong[] { (1UL << 63) + 5 }, (ulong[])N("u64").Data);
        Assert.True(N("b").IsLogical);
        Assert.Equal(new byte[] { 1, 0, 1 }, (byte[])N("b").Data);
        Assert.Equal(0, N("e").Count);
        Assert.Equal("hello", Assert.IsType<MatCharArray>(v["txt"]).Value);
        Assert.Equal("", Assert.IsType<MatCharArray>(v["empty_txt"]).Value);
        var cell = Assert.IsType<MatCellArray>(v["cell"]);
        Assert.Equal(1.0, Assert.IsType<MatNumericArray>(cell[0]).GetDouble(0));
        Assert.Equal("ab", Assert.IsType<MatCharArray>(cell[1]).Value);
        // numpy arange(24).reshape(2,3,4): element [i,j,k] = 12i + 4j + k, at MATLAB linear index i + 2j + 6k.
        var nd = N("nd");
        Assert.Equal([2, 3, 4], nd.Dimensions);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++) Assert.Equal(12 * i + 4 * j + k, nd.GetDouble(i + 2 * j + 6 * k));
        Assert.Throws<InvalidDataException>(() => nd.ToRowMajorInt32(out _, out _));
    }

    [Fact]
    public void EveryTruncationAndManyCorruptionsGiveCleanErrors()
    {
        foreach (var (label, bytes) in new[] { ("u", ScipyMatFiles.PartsUncompressed), ("c", ScipyMatFiles.PartsCompressed) })
        {
            // Every truncation point past the header: a clean InvalidDataException naming the file, nothing else.
            for (int cut = 128 + 1; cut < bytes.Length; cut++)
            {
                var e = Assert.Throws<InvalidDataException>(() => Read(bytes[..cut], $"cut{label}{cut}.mat"));
                Assert.Contains($"cut{label}{cut}.mat", e.Message);
                // Once the variable's name is in the file, the message names the variable too.
                if (cut >= 128 + 100) Assert.Contains("'anno", e.Message);
            }
            // Random byte corruptions: the reader either succeeds or says why, never crashes otherwise.
            var rng = new Random(1234);
            for (int trial = 0; trial < 400; trial++)
            {
                var copy = (byte[])bytes.Clone();
                int flips = 1 + rng.Next(3);
                for (int f = 0; f < flips; f++) copy[128 + rng.Next(copy.Length - 128)] = (byte)rng.Next(256);
                try { Read(copy); }
                catch (InvalidDataException) { }
                catch (NotSupportedException) { }
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncationNamesTheVariableAndTheElementWhereTheDataStops(bool compress)
    {
        // anno.objects(1).parts(2).mask is the last array of the file; cut into it.
        var bytes = compress ? ScipyMatFiles.PartsCompressed : ScipyMatFiles.PartsUncompressed;
        var e = Assert.Throws<InvalidDataException>(() => Read(bytes[..(bytes.Length - 4)], "h.mat"));
        Assert.Contains("h.mat", e.Message);
        Assert.Contains("variable 'anno'", e.Message);
        if (!compress) Assert.Contains("anno.objects(2).parts", e.Message);
    }
}
