using Microsoft.ML.MtLora.Data.Preprocessing;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

public class LabelCacheTests
{
    [Fact]
    public void Run_length_encoding_round_trips_and_is_small_for_label_maps()
    {
        // Runs of every length class of the varint (1 byte up to 127, 2 bytes up to 16383, 3 bytes beyond).
        var map = new byte[40000];
        map.AsSpan(0, 5).Fill(3);
        map.AsSpan(5, 200).Fill(255);
        map.AsSpan(205, 20000).Fill(1);
        map[20205] = 7;
        var encoded = LabelCache.Encode(map);
        Assert.Equal([3, 5, 255, 0xC8, 0x01, 1, 0xA0, 0x9C, 0x01, 7, 1, 0, 0xD2, 0x9A, 0x01], encoded); // 200 = 0xC8 0x01, 20000 = 0xA0 0x9C 0x01, 19794 = 0xD2 0x9A 0x01
        var back = new byte[map.Length];
        LabelCache.Expand(encoded, back);
        Assert.Equal(map, back);
        Assert.Throws<InvalidOperationException>(() => LabelCache.Expand(encoded, new byte[map.Length + 1]));
    }

    [Fact]
    public void Maps_are_decoded_once_then_served_from_the_cache_within_its_capacity()
    {
        var cache = new LabelCache(capacity: 150);
        int decodes = 0;
        byte[] buffer = [];
        byte[] Decode() { decodes++; return [1, 1, 1, 2]; }
        Assert.True(cache.Get("a", 0, 4, ref buffer, Decode));
        Assert.True(cache.Get("a", 0, 4, ref buffer, Decode));
        Assert.Equal([1, 1, 1, 2], buffer[..4]);
        Assert.Equal(1, decodes);
        // "No map" (an image without annotated persons) is remembered too.
        Assert.False(cache.Get("a", 1, 4, ref buffer, () => { decodes++; return null; }));
        Assert.False(cache.Get("a", 1, 4, ref buffer, () => { decodes++; return null; }));
        Assert.Equal(2, decodes);
        // Beyond the capacity (64 bytes of bookkeeping per entry here) maps are decoded every time.
        Assert.True(cache.Get("b", 0, 4, ref buffer, Decode));
        Assert.True(cache.Get("b", 0, 4, ref buffer, Decode));
        Assert.Equal(4, decodes);
        Assert.Equal(2, cache.Count);
        Assert.True(cache.Bytes <= cache.Capacity);
        Assert.Throws<InvalidOperationException>(() => cache.Get("c", 0, 5, ref buffer, Decode));
    }
}
