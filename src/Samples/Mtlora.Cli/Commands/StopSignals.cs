using System.Runtime.InteropServices;

namespace MtLora.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM for a verb that must stop cleanly: the first signal cancels <see cref="Token"/>, so the
/// verb ends its current step or image, writes what it must (a checkpoint, the log) and exits with 128 + the signal
/// (130, 143); a second signal ends the process at once.
/// </summary>
/// <remarks>
/// System.CommandLine's own handling is turned off in <see cref="Program.Main"/>: it cancels the token too, but ends the
/// process two seconds later whether or not the verb has finished, which cuts a training step or a checkpoint write short.
/// </remarks>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly PosixSignalRegistration[] _registrations;
    private readonly TextWriter _stderr;
    private readonly string _verb;
    private readonly string _whatStops;
    private int _signals;
    private PosixSignal _first;

    private StopSignals(TextWriter stderr, string verb, string whatStops, CancellationToken outer)
    {
        _stderr = stderr;
        _verb = verb;
        _whatStops = whatStops;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = OperatingSystem.IsWindows() || OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()
            ? [PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal)]
            : [];
    }

    /// <summary>Starts listening until disposed.</summary>
    /// <param name="stderr">Where the verb reports that it is stopping.</param>
    /// <param name="verb">The verb, for the message.</param>
    /// <param name="whatStops">What the verb finishes before it stops, e.g. "the current step".</param>
    /// <param name="outer">A token that also stops the verb (the invocation's).</param>
    public static StopSignals Listen(TextWriter stderr, string verb, string whatStops, CancellationToken outer) => new(stderr, verb, whatStops, outer);

    /// <summary>Cancelled by the first signal (or by the outer token).</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>The exit code for a stopped run: 130 after SIGINT (and a cancellation that came from the caller), 143 after SIGTERM.</summary>
    public int ExitCode => _first == PosixSignal.SIGTERM ? 143 : 130;

    /// <summary>How the run was stopped, for messages.</summary>
    public string Cause => _signals == 0 ? "cancelled" : _first == PosixSignal.SIGTERM ? "stopped by SIGTERM" : "stopped by Ctrl+C";

    private void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signals) > 1) return; // the second one terminates the process (default action)
        _first = context.Signal;
        context.Cancel = true;
        _stderr.WriteLine($"mtlora {_verb}: stopping after {_whatStops} (press Ctrl+C again to quit at once)");
        _cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
