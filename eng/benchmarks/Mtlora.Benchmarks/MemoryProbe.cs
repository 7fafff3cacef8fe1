using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MtLora.Benchmarks;

/// <summary>Peak memory of the host process (resident set high-water mark).</summary>
internal static class HostMemory
{
    /// <summary>The process's peak working set (Linux: VmHWM) in bytes.</summary>
    public static long PeakWorkingSet()
    {
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        return self.PeakWorkingSet64;
    }

    /// <summary>
    /// Resets the Linux high-water mark (VmHWM) to the current resident size, so the next peak covers the timed steps only.
    /// Returns false where the kernel does not allow it (other systems, restricted containers).
    /// </summary>
    public static bool TryResetPeak()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}

/// <summary>
/// Peak GPU memory through NVML (the library behind <c>nvidia-smi</c>), sampled every few milliseconds on a background
/// thread. TorchSharp 0.107 does not expose the caching allocator's statistics (<c>torch.cuda.max_memory_allocated</c> has no
/// binding), so this reads the device's used memory instead: it includes the CUDA context and the memory the caching
/// allocator keeps reserved, so it is higher than PyTorch's <c>max_memory_allocated</c> for the same run (closer to
/// <c>max_memory_reserved</c> plus the context, about 0.5 GiB).
/// </summary>
internal sealed class GpuMemoryMonitor : IDisposable
{
    private const string Nvml = "libnvidia-ml.so.1";
    private readonly IntPtr _device;
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _peak;

    private GpuMemoryMonitor(IntPtr device, long baseline)
    {
        _device = device;
        Baseline = baseline;
        _peak = baseline;
        _thread = new Thread(Poll) { IsBackground = true, Name = "nvml-memory" };
        _thread.Start();
    }

    /// <summary>Used device memory when monitoring started (CUDA context and whatever was allocated before).</summary>
    public long Baseline { get; }

    /// <summary>The highest used device memory seen so far.</summary>
    public long Peak => Interlocked.Read(ref _peak);

    /// <summary>Starts monitoring GPU <paramref name="index"/>, or returns null (with the reason) when NVML is missing.</summary>
    public static GpuMemoryMonitor? TryStart(int index, out string? why)
    {
        why = null;
        try
        {
            int rc = nvmlInit_v2();
            if (rc != 0) { why = $"nvmlInit_v2 returned {rc}"; return null; }
            rc = nvmlDeviceGetHandleByIndex_v2((uint)index, out var device);
            if (rc != 0) { why = $"nvmlDeviceGetHandleByIndex_v2({index}) returned {rc}"; return null; }
            rc = nvmlDeviceGetMemoryInfo(device, out var memory);
            if (rc != 0) { why = $"nvmlDeviceGetMemoryInfo returned {rc}"; return null; }
            return new GpuMemoryMonitor(device, (long)memory.Used);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            why = $"NVML ({Nvml}) could not be loaded: {e.Message}";
            return null;
        }
    }

    /// <summary>Takes one sample now (call after synchronising, so the end of the run is seen).</summary>
    public void Sample()
    {
        if (nvmlDeviceGetMemoryInfo(_device, out var memory) != 0) return;
        long used = (long)memory.Used;
        long seen;
        while (used > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, used, seen) != seen)
        {
        }
    }

    private void Poll()
    {
        while (!_stop)
        {
            Sample();
            Thread.Sleep(2);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
        nvmlShutdown();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct NvmlMemory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [DllImport(Nvml)]
    private static extern int nvmlInit_v2();

    [DllImport(Nvml)]
    private static extern int nvmlShutdown();

    [DllImport(Nvml)]
    private static extern int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);

    [DllImport(Nvml)]
    private static extern int nvmlDeviceGetMemoryInfo(IntPtr device, out NvmlMemory memory);
}
