using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// Names the parts of a forward pass for a step profiler (the per-module timing mode of eng/benchmarks, <c>--mode profile</c>).
/// The modules call <see cref="Enter(string, Tensor)"/> where a part begins; with no recorder installed (always, outside the
/// profiler) it returns its argument and costs one field read.
/// </summary>
/// <remarks>
/// Regions are flat: entering one ends the previous one. The recorder attributes the time between two calls to the region
/// entered first, and may wrap the tensor (an identity autograd node) to attribute the backward pass the same way: on the
/// CPU the autograd engine runs the nodes in the reverse order of their creation, so the backward of a region runs between
/// the backward of the marker after it and the backward of its own marker.
/// </remarks>
internal static class ProfileRegions
{
    /// <summary>The installed recorder, or null. Set by a profiler on the thread that runs the network, never while another
    /// thread runs one.</summary>
    internal static IProfileRecorder? Recorder { get; set; }

    /// <summary>The region now running, or null without a recorder.</summary>
    public static string? Current => Recorder?.Current;

    /// <summary>Starts region <paramref name="region"/> at the tensor it begins with.</summary>
    /// <param name="region">The region's name (e.g. <c>attention.core</c>).</param>
    /// <param name="x">The tensor the region starts from; returned unchanged without a recorder.</param>
    /// <returns><paramref name="x"/>, or what the recorder returns in its place (the same values).</returns>
    public static Tensor Enter(string region, Tensor x) => Recorder is { } r ? r.Enter(region, x) : x;

    /// <summary>Starts a phase outside the network (e.g. <c>optimizer.step</c>), with no tensor to mark.</summary>
    public static void Phase(string phase) => Recorder?.Phase(phase);

    /// <summary>The forward pass is over and <c>backward()</c> starts.</summary>
    public static void BeginBackward() => Recorder?.BeginBackward();

    /// <summary><c>backward()</c> returned; <paramref name="next"/> is the phase that follows.</summary>
    public static void EndBackward(string next) => Recorder?.EndBackward(next);
}

/// <summary>What a step profiler implements (see <see cref="ProfileRegions"/>).</summary>
internal interface IProfileRecorder
{
    /// <summary>The region now running.</summary>
    string? Current { get; }

    /// <summary>Ends the running region and starts <paramref name="region"/>; returns <paramref name="x"/> or an identity of it.</summary>
    Tensor Enter(string region, Tensor x);

    /// <summary>Ends the running region and starts <paramref name="phase"/>.</summary>
    void Phase(string phase);

    /// <summary>Ends the forward pass before <c>backward()</c>.</summary>
    void BeginBackward();

    /// <summary>After <c>backward()</c>: the rest of the backward pass is charged, <paramref name="next"/> starts.</summary>
    void EndBackward(string next);
}
