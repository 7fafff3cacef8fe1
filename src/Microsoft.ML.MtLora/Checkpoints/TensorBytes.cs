using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// Moves a contiguous CPU tensor's raw bytes from and to a stream in slices, so a tensor over 2 GiB (which the formats
/// allow, but <see cref="Tensor.bytes"/> cannot span) is read and written like any other.
/// </summary>
internal static class TensorBytes
{
    /// <summary>The largest slice handed to the stream at once: 1 GiB.</summary>
    public const long DefaultSliceBytes = 1L << 30;

    /// <summary>Fills <paramref name="tensor"/> (contiguous, CPU) with exactly its size in bytes from <paramref name="stream"/>.</summary>
    /// <exception cref="EndOfStreamException">The stream ends first.</exception>
    public static void Read(Stream stream, Tensor tensor, long sliceBytes = DefaultSliceBytes)
    {
        foreach (var slice in Slices(tensor, sliceBytes))
            using (slice)
                stream.ReadExactly(slice.bytes);
    }

    /// <summary>Writes the bytes of <paramref name="tensor"/> (contiguous, CPU) to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, Tensor tensor, long sliceBytes = DefaultSliceBytes)
    {
        foreach (var slice in Slices(tensor, sliceBytes))
            using (slice)
                stream.Write(slice.bytes);
    }

    private static IEnumerable<Tensor> Slices(Tensor tensor, long sliceBytes)
    {
        long total = tensor.numel();
        if (total == 0) yield break;
        long elementBytes = tensor.ElementSize;
        long step = Math.Max(1, Math.Min(sliceBytes, int.MaxValue) / elementBytes);
        using var flat = tensor.view(-1);
        for (long start = 0; start < total; start += step)
            yield return flat.narrow(0, start, Math.Min(step, total - start));
    }
}
