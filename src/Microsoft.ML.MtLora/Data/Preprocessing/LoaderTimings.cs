using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>The stages of the training input path that <see cref="LoaderTimings"/> measures.</summary>
internal enum LoaderStage
{
    /// <summary>Decoding the image (JPEG) into pixels, or reading the image column of another data view.</summary>
    DecodeImage,

    /// <summary>Reading the label files (PNG, MAT) or label columns into class maps and normals.</summary>
    LoadLabels,

    /// <summary>Flip, rotation, scale, resize to S×S, ignore rules and normalisation into the batch buffers.</summary>
    Augment,

    /// <summary>Making the batch tensors from the buffers (on the thread that consumes the batches).</summary>
    Batch,
}

/// <summary>
/// Where the data loader's time goes, for the data benchmark (eng/benchmarks, <c>--mode data</c>): CPU time of the thread
/// that ran each stage (<c>CLOCK_THREAD_CPUTIME_ID</c> on Linux, wall time elsewhere), summed over the workers. Safe to update
/// from several threads.
/// </summary>
internal sealed partial class LoaderTimings
{
    private readonly long[] _nanoseconds = new long[4];
    private long _samples, _batches;

    /// <summary>Total CPU seconds spent in a stage.</summary>
    public double Seconds(LoaderStage stage) => Interlocked.Read(ref _nanoseconds[(int)stage]) / 1e9;

    /// <summary>Samples pre-processed.</summary>
    public long Samples => Interlocked.Read(ref _samples);

    /// <summary>Batches made.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Whether the stage times are thread CPU time (Linux) rather than wall time.</summary>
    public static bool MeasuresCpuTime => OperatingSystem.IsLinux();

    internal void Add(LoaderStage stage, long nanoseconds) => Interlocked.Add(ref _nanoseconds[(int)stage], nanoseconds);

    internal void CountSample() => Interlocked.Increment(ref _samples);

    internal void CountBatch() => Interlocked.Increment(ref _batches);

    /// <summary>The calling thread's CPU time in nanoseconds (Linux), or a wall-clock timestamp in nanoseconds elsewhere.</summary>
    internal static long Now()
    {
        if (OperatingSystem.IsLinux() && ClockGetTime(ThreadCpuTimeClock, out var t) == 0) return t.Seconds * 1_000_000_000 + t.Nanoseconds;
        return (long)(Stopwatch.GetTimestamp() * (1e9 / Stopwatch.Frequency));
    }

    private const int ThreadCpuTimeClock = 3; // CLOCK_THREAD_CPUTIME_ID (Linux, time.h)

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);
}
