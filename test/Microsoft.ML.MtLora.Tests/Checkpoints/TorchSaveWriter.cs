using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.MtLora.Tests.Checkpoints;

/// <summary>Writes pickle opcodes by hand, to build checkpoints (good and malicious) that torch.save would or could write.</summary>
internal sealed class PickleWriter
{
    private readonly MemoryStream _s = new();

    public PickleWriter Op(byte op) { _s.WriteByte(op); return this; }

    public PickleWriter Proto(int v = 2) => Op(0x80).Op((byte)v);

    public PickleWriter Mark() => Op((byte)'(');

    public PickleWriter Stop() => Op((byte)'.');

    public PickleWriter Global(string module, string name) => Op((byte)'c').Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

    public PickleWriter Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op((byte)'X');
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, b.Length);
        return Raw(len.ToArray()).Raw(b);
    }

    public PickleWriter Int(long v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, checked((int)v));
        return Op((byte)'J').Raw(b.ToArray());
    }

    /// <summary>Any 64-bit int: LONG1 with 8 little-endian bytes.</summary>
    public PickleWriter Long(long v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        return Op(0x8a).Op(8).Raw(b.ToArray());
    }

    /// <summary>BINPUT: memoizes the top of the stack under <paramref name="index"/> (0..255).</summary>
    public PickleWriter Put(int index) => Op((byte)'q').Op((byte)index);

    /// <summary>BINGET: pushes the object memoized under <paramref name="index"/>.</summary>
    public PickleWriter Get(int index) => Op((byte)'h').Op((byte)index);

    public PickleWriter Float(double v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(b, v);
        return Op((byte)'G').Raw(b.ToArray());
    }

    public PickleWriter IntTuple(params long[] values)
    {
        Mark();
        foreach (var v in values)
            if (v is >= int.MinValue and <= int.MaxValue) Int(v);
            else Long(v);
        return Op((byte)'t');
    }

    public PickleWriter EmptyTuple() => Op((byte)')');

    public PickleWriter EmptyDict() => Op((byte)'}');

    public PickleWriter EmptyList() => Op((byte)']');

    public PickleWriter Reduce() => Op((byte)'R');

    public PickleWriter SetItems() => Op((byte)'u');

    public PickleWriter Tuple() => Op((byte)'t');

    public PickleWriter OrderedDict() => Global("collections", "OrderedDict").EmptyTuple().Reduce();

    /// <summary>_rebuild_tensor_v2(('storage', type, key, 'cpu', numel), offset, size, stride, False, OrderedDict()).</summary>
    public PickleWriter Tensor(string storageType, string key, long numel, long offset, long[] size, long[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().Str("storage").Global("torch", storageType).Str(key).Str("cpu").Int(numel).Tuple().Op((byte)'Q');
        Int(offset).IntTuple(size).IntTuple(stride).Op(0x89).OrderedDict();
        return Tuple().Reduce();
    }

    public PickleWriter Raw(byte[] b) { _s.Write(b); return this; }

    public byte[] ToArray() => _s.ToArray();
}

/// <summary>Packs a pickle and storages the way torch.save lays out its zip.</summary>
internal static class TorchZip
{
    public static byte[] Build(byte[] pickle, IReadOnlyDictionary<string, byte[]>? storages = null, string archive = "archive", string? byteOrder = "little", CompressionLevel storageCompression = CompressionLevel.NoCompression)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, $"{archive}/data.pkl", pickle);
            if (byteOrder is not null) Add(zip, $"{archive}/byteorder", Encoding.ASCII.GetBytes(byteOrder));
            foreach (var (k, v) in storages ?? new Dictionary<string, byte[]>()) Add(zip, $"{archive}/data/{k}", v, storageCompression);
            Add(zip, $"{archive}/version", "3\n"u8.ToArray());
        }
        return ms.ToArray();
    }

    /// <summary>Copies a zip, replacing (or dropping, when the function returns null) entries.</summary>
    public static byte[] Rewrite(byte[] zipBytes, Func<string, byte[], byte[]?> change)
    {
        using var src = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read);
        using var ms = new MemoryStream();
        using (var dst = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var e in src.Entries)
            {
                using var s = e.Open();
                using var buf = new MemoryStream();
                s.CopyTo(buf);
                var data = change(e.FullName, buf.ToArray());
                if (data is not null) Add(dst, e.FullName, data);
            }
        }
        return ms.ToArray();
    }

    public static byte[] Entry(byte[] zipBytes, string suffix)
    {
        using var zip = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read);
        var e = zip.Entries.Single(x => x.FullName.EndsWith(suffix, StringComparison.Ordinal));
        using var s = e.Open();
        using var buf = new MemoryStream();
        s.CopyTo(buf);
        return buf.ToArray();
    }

    private static void Add(ZipArchive zip, string name, byte[] data, CompressionLevel level = CompressionLevel.NoCompression)
    {
        var e = zip.CreateEntry(name, level);
        using var s = e.Open();
        s.Write(data);
    }

    public static byte[] Floats(params float[] values)
    {
        var b = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), values[i]);
        return b;
    }
}
