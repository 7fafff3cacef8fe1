using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Tests.Tasks;

public class NpyFileTests
{
    /// <summary>A version 1.0 file with the given header dictionary and data bytes, laid out as numpy.save does.</summary>
    private static byte[] Npy(string dict, byte[] data, byte major = 1)
    {
        int prefix = major == 1 ? 10 : 12;
        string header = dict + new string(' ', (64 - (prefix + dict.Length + 1) % 64) % 64) + "\n";
        var bytes = new byte[prefix + header.Length + data.Length];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', major, 0 }.CopyTo(bytes, 0);
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(bytes, prefix);
        data.CopyTo(bytes, prefix + header.Length);
        return bytes;
    }

    private static byte[] Floats(bool bigEndian, params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++)
            if (bigEndian) BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(4 * i), v[i]); else BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
        return b;
    }

    [Fact]
    public void ReadsLittleAndBigEndianFloatsDoublesAndBytes()
    {
        var le = NpyFile.Parse(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", Floats(false, 1, 2, 3, 4, 5, 6.5f)), "a.npy");
        Assert.Equal([2, 3], le.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6.5f], le.Values);
        var be = NpyFile.Parse(Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", Floats(true, -1, 0.25f, 1e6f)), "b.npy");
        Assert.Equal([-1f, 0.25f, 1e6f], be.Values);
        var f8 = new byte[16];
        BinaryPrimitives.WriteDoubleBigEndian(f8, 1.5);
        BinaryPrimitives.WriteDoubleBigEndian(f8.AsSpan(8), -2.25);
        var d = NpyFile.Parse(Npy("{'shape': (2,), 'fortran_order': False, 'descr': '>f8'}", f8, major: 2), "c.npy");
        Assert.Equal(NpyElementType.Float64, d.ElementType);
        Assert.Equal([1.5f, -2.25f], d.Values);
        var u8 = NpyFile.Parse(Npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2), }", [0, 255]), "d.npy");
        Assert.Equal([0f, 255f], u8.Values);
    }

    [Fact]
    public void FortranOrderIsTransposedToRowMajor()
    {
        // numpy.asfortranarray([[1, 2, 3], [4, 5, 6]]) stores its columns one after the other: 1 4 2 5 3 6.
        var f = NpyFile.Parse(Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", Floats(false, 1, 4, 2, 5, 3, 6)), "f.npy");
        Assert.Equal([1f, 2, 3, 4, 5, 6], f.Values);
        // Rank 3, (2, 2, 2): Fortran index i + 2j + 4k holds the value 100i + 10j + k.
        var v = new float[8];
        for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) for (int k = 0; k < 2; k++) v[i + 2 * j + 4 * k] = 100 * i + 10 * j + k;
        var g = NpyFile.Parse(Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2), }", Floats(false, v)), "g.npy");
        Assert.Equal([0f, 1, 10, 11, 100, 101, 110, 111], g.Values);
    }

    [Theory]
    [InlineData("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "Python objects")]
    [InlineData("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", "'<i8' is not supported")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "needs 8 data bytes")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "lacks")]
    [InlineData("{'descr': '<f4', 'fortran_order': maybe, 'shape': (1,), }", "True or False")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "'x'")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "non-negative dimension")]
    [InlineData("__import__('os')", "'{' expected")]
    public void MalformedOrUnsupportedFilesAreRefusedNamingTheFile(string dict, string expected)
    {
        var ex = Assert.Throws<InvalidDataException>(() => NpyFile.Parse(Npy(dict, Floats(false, 1)), "depth/0001.npy"));
        Assert.Contains("'depth/0001.npy'", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void NotNpyAndHugeShapesAreRefused()
    {
        Assert.Contains("magic", Assert.Throws<InvalidDataException>(() => NpyFile.Parse("PK\u0003\u0004 not npy"u8, "x.npy")).Message);
        Assert.Contains("more than", Assert.Throws<InvalidDataException>(() =>
            NpyFile.Parse(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536), }", []), "x.npy")).Message);
    }

    [Fact]
    public void WriteThenReadRoundTrips()
    {
        string dir = Directory.CreateTempSubdirectory("mtlora-npy-").FullName;
        try
        {
            string path = Path.Combine(dir, "d.npy");
            NpyFile.WriteFloat32(path, [2, 2], [0.5f, 1f, 255f, 3.25f]);
            var a = NpyFile.Read(path);
            Assert.Equal([2, 2], a.Shape);
            Assert.Equal([0.5f, 1f, 255f, 3.25f], a.Values);
            Assert.Equal(0, new FileInfo(path).Length % 4);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
