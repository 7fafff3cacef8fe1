using System.Collections.Concurrent;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Decoded label maps kept between epochs, run-length encoded: the files do not change while training reads them 300
/// times, and decoding them (PNG inflation, MATLAB files of full-size masks for every annotated object and part) costs more
/// than re-expanding a few kilobytes of runs. Bounded by <see cref="Capacity"/> bytes; beyond it maps are decoded every
/// time. Safe for concurrent use by the loader workers.
/// </summary>
internal sealed class LabelCache
{
    private readonly ConcurrentDictionary<(string Id, int Kind), byte[]> _entries = new();
    private long _bytes;

    /// <param name="capacity">The most bytes of encoded maps kept.</param>
    public LabelCache(long capacity) => Capacity = capacity;

    /// <summary>Map kinds: the class-map slots (<see cref="SourceSample.Slot"/>) and the normals' validity mask.</summary>
    public const int NormalsValidity = 3;

    /// <summary>The default capacity: 256 MB, about 25 KB per image for the 10,103 PASCAL-Context images (a few KB each in practice).</summary>
    public const long DefaultCapacity = 256L << 20;

    /// <summary>The most bytes of encoded maps kept.</summary>
    public long Capacity { get; }

    /// <summary>Bytes of encoded maps kept now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Maps kept now.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// The map of (<paramref name="id"/>, <paramref name="kind"/>) into <paramref name="destination"/>, exactly
    /// <paramref name="length"/> bytes, from the cache or else from <paramref name="decode"/> (then kept if it fits). A null
    /// map (e.g. no annotated person) is cached too; the return value says whether the map exists.
    /// </summary>
    public bool Get(string id, int kind, int length, ref byte[] destination, Func<byte[]?> decode)
    {
        if (_entries.TryGetValue((id, kind), out var runs))
        {
            if (runs.Length == 0) return false;
            Expand(runs, TransformScratch.Grow(ref destination, length));
            return true;
        }
        var map = decode();
        if (map is not null && map.Length != length)
            throw new InvalidOperationException($"Sample '{id}': a label map of {map.Length} values where {length} were expected.");
        var encoded = map is null ? [] : Encode(map);
        if (Interlocked.Add(ref _bytes, encoded.Length + 64) <= Capacity) _entries.TryAdd((id, kind), encoded);
        else Interlocked.Add(ref _bytes, -(encoded.Length + 64));
        if (map is null) return false;
        map.AsSpan().CopyTo(TransformScratch.Grow(ref destination, length));
        return true;
    }

    /// <summary>Runs as (value, length) with the length as a base-128 varint.</summary>
    internal static byte[] Encode(ReadOnlySpan<byte> map)
    {
        var output = new List<byte>(256);
        int i = 0;
        while (i < map.Length)
        {
            byte value = map[i];
            int end = map[i..].IndexOfAnyExcept(value);
            int run = end < 0 ? map.Length - i : end;
            output.Add(value);
            for (uint r = (uint)run; ; r >>= 7)
            {
                if (r < 0x80)
                {
                    output.Add((byte)r);
                    break;
                }
                output.Add((byte)(r | 0x80));
            }
            i += run;
        }
        return output.ToArray();
    }

    internal static void Expand(ReadOnlySpan<byte> runs, Span<byte> destination)
    {
        int pos = 0, at = 0;
        while (pos < runs.Length)
        {
            byte value = runs[pos++];
            int run = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = runs[pos++];
                run |= (b & 0x7F) << shift;
                if (b < 0x80) break;
            }
            destination.Slice(at, run).Fill(value);
            at += run;
        }
        if (at != destination.Length) throw new InvalidOperationException($"A cached label map expands to {at} values; {destination.Length} were expected.");
    }
}
