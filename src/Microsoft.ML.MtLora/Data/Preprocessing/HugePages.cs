using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Asks Linux to back a large, freshly allocated buffer with transparent huge pages (<c>madvise(MADV_HUGEPAGE)</c>).
/// </summary>
/// <remarks>
/// Every batch gets new tensors (the trainer frees them after its step), so their memory is new to the process each time
/// and every 4 KiB page faults on its first write. On the development VM that cost more than decoding and augmenting the
/// samples (writing a fresh 38 MB tensor: 150 ms with 4 KiB pages, 15 ms with 2 MiB pages). Linux's default
/// (<c>/sys/kernel/mm/transparent_hugepage/enabled</c> = <c>madvise</c> on Debian and Ubuntu) gives huge pages only to
/// regions that ask for them. Only whole 2 MiB blocks inside the buffer are advised, so no neighbouring memory is
/// touched; the advice is a hint, and a failure (another OS, THP off) changes nothing but speed.
/// </remarks>
internal static partial class HugePages
{
    private const int MadvHugePage = 14;        // MADV_HUGEPAGE (Linux, asm-generic/mman-common.h)
    private const long HugePageSize = 2 << 20;  // x86-64 and arm64 with 4 KiB base pages

    private static bool _unavailable = !OperatingSystem.IsLinux();

    /// <summary>Advises huge pages for the 2 MiB blocks that lie wholly in [<paramref name="address"/>, + <paramref name="length"/>).</summary>
    public static void Advise(nint address, long length)
    {
        if (_unavailable || length < HugePageSize) return;
        long start = (address + HugePageSize - 1) & ~(HugePageSize - 1);
        long end = (address + length) & ~(HugePageSize - 1);
        if (end <= start) return;
        try
        {
            MAdvise((nint)start, (nuint)(end - start), MadvHugePage);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _unavailable = true;
        }
    }

    /// <summary>
    /// The data pointer of a freshly made float32 CPU batch tensor, advised for huge pages, for loader workers to write
    /// into (no TorchSharp call on their side). The caller keeps the tensor alive while the pointer is in use.
    /// </summary>
    internal static unsafe float* WritePointer(Tensor tensor)
    {
        var bytes = tensor.bytes;
        var pointer = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
        Advise((nint)pointer, bytes.Length);                                                 // before the workers' first writes
        return pointer;
    }

    /// <summary>
    /// Takes a batch tensor out of its slot: itself when it holds exactly <paramref name="count"/> samples, else a copy of
    /// its first ones (a last, incomplete batch), the original freed. The result belongs to no dispose scope.
    /// </summary>
    internal static Tensor TakeFirst(ref Tensor? stored, int count)
    {
        var t = stored ?? throw new InvalidOperationException("The batch tensor was already taken.");
        stored = null;
        if (t.shape[0] == count) return t;
        using var scope = NewDisposeScope();
        var first = t.narrow(0, 0, count).clone().DetachFromDisposeScope();                // (count, ...)
        t.Dispose();
        return first;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int MAdvise(nint address, nuint length, int advice);
}
