using System.Runtime.InteropServices;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// Keeps the tensor memory a CPU training step frees for the next step, instead of handing it back to the kernel.
/// </summary>
/// <remarks>
/// <para>libtorch allocates CPU tensors with <c>malloc</c>. glibc's malloc maps blocks above a threshold afresh with
/// <c>mmap</c> and returns the top of its heap to the kernel once more than a trim threshold is free; both thresholds adapt
/// to the blocks freed so far (reference: <c>mallopt(3)</c>, M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). A training step frees
/// hundreds of megabytes of activations and gradients at its end and allocates them again in the next, so with the adaptive
/// thresholds a varying share of that memory is unmapped and faulted back in page by page: measured on the Swin-T benchmark
/// (224 px, batch 4), 2,000 to 70,000 page faults per step from run to run and 10–20 % of the step's CPU time.</para>
/// <para><see cref="KeepFreedMemory"/> fixes the mmap threshold at its maximum (32 MiB) and the trim threshold at 2 GiB, as
/// PyTorch's CPU performance guides do by swapping in jemalloc or tcmalloc. The process then keeps its peak heap (its
/// resident size stays near the step's peak). It is process-wide and idempotent; it does nothing outside Linux, and with
/// a C library without <c>mallopt</c>. Set the environment variable <see cref="OptOutVariable"/> to <c>1</c> to leave the
/// allocator as it is.</para>
/// </remarks>
internal static class NativeHeap
{
    /// <summary>The environment variable that turns <see cref="KeepFreedMemory"/> off (<c>MTLORA_KEEP_MALLOC_DEFAULTS=1</c>).</summary>
    public const string OptOutVariable = "MTLORA_KEEP_MALLOC_DEFAULTS";

    private const int TrimThreshold = -1;   // M_TRIM_THRESHOLD
    private const int MmapThreshold = -3;   // M_MMAP_THRESHOLD
    private static int _done;

    /// <summary>Applies the settings once per process (see the remarks). Returns whether they are in effect.</summary>
    public static bool KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(OptOutVariable) == "1") return false;
        if (Interlocked.Exchange(ref _done, 1) == 1) return true;
        try
        {
            return mallopt(MmapThreshold, 32 << 20) == 1 && mallopt(TrimThreshold, int.MaxValue) == 1;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
