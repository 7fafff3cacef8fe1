using System.Buffers.Binary;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// The CRC-32 of PNG chunks and zip members (ISO 3309 / ITU-T V.42, polynomial 0xEDB88320, reflected), computed eight
/// bytes at a time ("slicing-by-8", Intel's 2008 method), about 1 GB/s in managed code: fast enough to check every member
/// of a model.zip or checkpoint as it is read.
/// </summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable(); // 8 tables of 256: table k advances a byte k positions further

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        for (int n = 0; n < 256; n++)
            for (int k = 1; k < 8; k++)
                table[k * 256 + n] = (table[(k - 1) * 256 + n] >> 8) ^ table[table[(k - 1) * 256 + n] & 0xFF];
        return table;
    }

    /// <summary>Continues a running CRC (start with <c>0xFFFFFFFF</c>, finish by XOR with <c>0xFFFFFFFF</c>).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        var t = Table.AsSpan();
        while (data.Length >= 8)
        {
            uint lo = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = t[7 * 256 + (int)(lo & 0xFF)] ^ t[6 * 256 + (int)((lo >> 8) & 0xFF)] ^ t[5 * 256 + (int)((lo >> 16) & 0xFF)] ^ t[4 * 256 + (int)(lo >> 24)]
                ^ t[3 * 256 + (int)(hi & 0xFF)] ^ t[2 * 256 + (int)((hi >> 8) & 0xFF)] ^ t[256 + (int)((hi >> 16) & 0xFF)] ^ t[(int)(hi >> 24)];
            data = data[8..];
        }
        foreach (var b in data) crc = t[(int)((crc ^ b) & 0xFF)] ^ (crc >> 8);
        return crc;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Update(0xFFFFFFFFu, data) ^ 0xFFFFFFFFu;
}
