using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.MtLora.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace MtLora.Benchmarks;

/// <summary>
/// The per-module timing mode (<c>--profile</c>): installed as the library's <see cref="IProfileRecorder"/>, it charges the
/// calling thread's CPU time (and wall time) between two region switches to the region entered first, in the forward pass,
/// and through identity autograd nodes (<see cref="RegionMarker"/>) in the backward pass. The benchmark itself switches to
/// the phases outside the network (gradients cleared, losses, clipping, optimizer step).
/// </summary>
/// <remarks>
/// <para>The backward attribution relies on libtorch's CPU autograd engine running the ready nodes on the calling thread in
/// decreasing creation order: the nodes a region created in the forward pass run after the marker of the next region and
/// before the region's own marker. Time after the earliest marker fired (the patch embedding, whose input needs no
/// gradient) goes to the region before that marker. On CUDA the kernels run asynchronously, so only CPU-side launch time is
/// seen: use the profile on the CPU.</para>
/// <para>Thread CPU time is <c>CLOCK_THREAD_CPUTIME_ID</c> (user + system) and minor page faults come from
/// <c>getrusage(RUSAGE_THREAD)</c>; with <c>--threads 1</c> every kernel runs on this thread, so the sums are the step's
/// CPU time.</para>
/// </remarks>
internal sealed class StepProfiler : IProfileRecorder
{
    private readonly Dictionary<string, Totals> _forward = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Totals> _backward = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private string? _current;
    private Sample _last;
    private bool _inBackward;
    private string? _beforeLastMarker;
    private int _steps;

    /// <inheritdoc/>
    public string? Current => _current;

    /// <summary>Steps recorded since the last <see cref="Reset"/>.</summary>
    public int Steps => _steps;

    /// <inheritdoc/>
    public Tensor Enter(string region, Tensor x)
    {
        Switch(region);
        if (!x.requires_grad || !torch.is_grad_enabled()) return x;
        return RegionMarker.apply(x, new RegionMarker.Info(this, region, _previous));
    }

    private string? _previous;

    /// <inheritdoc/>
    public void Phase(string phase) => Switch(phase);

    /// <summary>Ends the running forward region (or phase) and starts <paramref name="region"/>.</summary>
    public void Switch(string region)
    {
        var now = Sample.Now();
        if (_current is not null && !_inBackward) Charge(_forward, _current, now - _last);
        _previous = _current;
        _current = region;
        _last = now;
    }

    /// <inheritdoc/>
    public void BeginBackward()
    {
        var now = Sample.Now();
        if (_current is not null) Charge(_forward, _current, now - _last);
        _inBackward = true;
        _beforeLastMarker = _current;
        _last = now;
    }

    /// <summary>A marker's backward ran: the time since the previous one belongs to its region.</summary>
    private void Fired(string region, string? previous)
    {
        var now = Sample.Now();
        Charge(_backward, region, now - _last);
        _beforeLastMarker = previous;
        _last = now;
    }

    /// <summary>After <c>backward()</c> returned: what ran after the earliest marker goes to the region before it.</summary>
    /// <param name="next">The phase that follows.</param>
    public void EndBackward(string next)
    {
        var now = Sample.Now();
        Charge(_backward, _beforeLastMarker ?? "(before the first region)", now - _last);
        _inBackward = false;
        _current = next;
        _last = now;
    }

    /// <summary>Charges the running phase and counts a finished step.</summary>
    public void EndStep()
    {
        var now = Sample.Now();
        if (_current is not null && !_inBackward) Charge(_forward, _current, now - _last);
        _current = null;
        _last = now;
        _steps++;
    }

    /// <summary>Forgets everything recorded (after the warm-up).</summary>
    public void Reset()
    {
        _forward.Clear();
        _backward.Clear();
        _order.Clear();
        _steps = 0;
    }

    private void Charge(Dictionary<string, Totals> where, string region, Sample delta)
    {
        if (!_forward.ContainsKey(region) && !_backward.ContainsKey(region)) _order.Add(region);
        var t = where.GetValueOrDefault(region);
        where[region] = new Totals(t.CpuSeconds + delta.CpuSeconds, t.WallSeconds + delta.WallSeconds, t.PageFaults + delta.PageFaults);
    }

    /// <summary>The recorded regions, in first-seen order, as per-step averages.</summary>
    public IReadOnlyList<ProfileRow> Rows()
    {
        int n = Math.Max(_steps, 1);
        double total = _forward.Values.Sum(t => t.CpuSeconds) + _backward.Values.Sum(t => t.CpuSeconds);
        return _order.Select(r =>
        {
            var f = _forward.GetValueOrDefault(r);
            var b = _backward.GetValueOrDefault(r);
            return new ProfileRow
            {
                Region = r,
                ForwardCpuMs = 1000 * f.CpuSeconds / n,
                BackwardCpuMs = 1000 * b.CpuSeconds / n,
                TotalCpuMs = 1000 * (f.CpuSeconds + b.CpuSeconds) / n,
                TotalWallMs = 1000 * (f.WallSeconds + b.WallSeconds) / n,
                PageFaults = (f.PageFaults + b.PageFaults) / n,
                Share = total > 0 ? (f.CpuSeconds + b.CpuSeconds) / total : 0,
            };
        }).ToList();
    }

    /// <summary>The rows as a Markdown table (per step, CPU milliseconds of the calling thread).</summary>
    public static string ToMarkdown(IReadOnlyList<ProfileRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| region | forward ms | backward ms | total ms | share | minor page faults |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows.OrderByDescending(r => r.TotalCpuMs))
            sb.AppendLine($"| {r.Region} | {r.ForwardCpuMs:F1} | {r.BackwardCpuMs:F1} | {r.TotalCpuMs:F1} | {r.Share:P1} | {r.PageFaults:N0} |");
        sb.Append($"| **all** | {rows.Sum(r => r.ForwardCpuMs):F1} | {rows.Sum(r => r.BackwardCpuMs):F1} | {rows.Sum(r => r.TotalCpuMs):F1} | 100 % | {rows.Sum(r => r.PageFaults):N0} |");
        return sb.ToString();
    }

    private readonly record struct Totals(double CpuSeconds, double WallSeconds, long PageFaults);

    /// <summary>Thread CPU time, wall time and minor page faults at one instant.</summary>
    private readonly record struct Sample(double CpuSeconds, double WallSeconds, long PageFaults)
    {
        public static Sample operator -(Sample a, Sample b) => new(a.CpuSeconds - b.CpuSeconds, a.WallSeconds - b.WallSeconds, a.PageFaults - b.PageFaults);

        public static Sample Now() => new(ThreadClock.CpuSeconds(), Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency, ThreadClock.MinorPageFaults());
    }

    /// <summary>An identity autograd node whose backward tells the profiler that its region's backward is done.</summary>
    internal sealed class RegionMarker : torch.autograd.SingleTensorFunction<RegionMarker>
    {
        /// <summary>What a marker reports: the profiler, its region and the region before it.</summary>
        internal sealed record Info(StepProfiler Profiler, string Region, string? Previous);

        public override string Name => nameof(RegionMarker);

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("info", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            var info = (Info)ctx.get_data("info");
            info.Profiler.Fired(info.Region, info.Previous);
            return [grad_output, null!];
        }
    }
}

/// <summary>One region of the profile, per step.</summary>
internal sealed record ProfileRow
{
    public required string Region { get; init; }
    public double ForwardCpuMs { get; init; }
    public double BackwardCpuMs { get; init; }
    public double TotalCpuMs { get; init; }
    public double TotalWallMs { get; init; }
    public long PageFaults { get; init; }
    public double Share { get; init; }
}

/// <summary>The calling thread's CPU clock and page-fault counter (Linux; zeros elsewhere).</summary>
internal static class ThreadClock
{
    private const int ClockThreadCpuTime = 3;   // CLOCK_THREAD_CPUTIME_ID
    private const int RusageThread = 1;         // RUSAGE_THREAD

    public static double CpuSeconds()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        clock_gettime(ClockThreadCpuTime, out var ts);
        return ts.Seconds + ts.Nanoseconds * 1e-9;
    }

    public static long MinorPageFaults()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        getrusage(RusageThread, out var u);
        return u.MinorFaults;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxRss, SharedRss, UnsharedData, UnsharedStack;
        public long MinorFaults, MajorFaults;
        public long Swaps, BlockInputs, BlockOutputs, MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    [DllImport("libc", SetLastError = false)]
    private static extern int clock_gettime(int clockId, out TimeSpec ts);

    [DllImport("libc", SetLastError = false)]
    private static extern int getrusage(int who, out RUsage usage);
}
