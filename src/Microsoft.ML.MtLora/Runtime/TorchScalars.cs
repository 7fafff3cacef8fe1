using TorchSharp;

namespace Microsoft.ML.MtLora;

/// <summary>
/// Long-lived TorchSharp <see cref="Scalar"/>s for the constants the library passes to torch operations.
/// </summary>
/// <remarks>
/// <para>Why this exists: in TorchSharp 0.107 an implicit conversion such as <c>t.ge(0)</c> creates a temporary
/// <see cref="Scalar"/> whose native value is freed by its finalizer. The managed object is unreachable as soon as its handle
/// has been read, so a garbage collection triggered by another thread (a data-loader worker, a test) while the native call
/// runs can finalise it and free the value the call is still reading ("Unknown scalar type", or a wrong value). Scalars are
/// not tracked by dispose scopes.</para>
/// <para>The rule, enforced at build time by <c>BannedSymbols.txt</c> (Microsoft.CodeAnalysis.BannedApiAnalyzers, RS0030): no
/// implicit <c>Scalar</c> conversion anywhere in the library. A constant comes from here: these objects are referenced by
/// static fields for the life of the process, so they are never finalised, and sharing them between threads is safe because
/// libtorch only reads a <c>c10::Scalar</c>. A value computed at run time is converted explicitly and disposed after the call
/// (<c>using var s = value.ToScalar();</c>), which keeps it alive for the whole call.</para>
/// </remarks>
internal static class TorchScalars
{
    /// <summary>Integer 0.</summary>
    public static readonly Scalar Zero = 0.ToScalar();

    /// <summary>Integer 1.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary>Integer 255 (<see cref="DenseTasks.IgnoreLabel"/>, and the top of the 8-bit pixel range).</summary>
    public static readonly Scalar Ignore = ((int)DenseTasks.IgnoreLabel).ToScalar();

    /// <summary>Single-precision 0.</summary>
    public static readonly Scalar ZeroF = 0f.ToScalar();

    /// <summary>Single-precision 1.</summary>
    public static readonly Scalar OneF = 1f.ToScalar();

    /// <summary>Single-precision −1.</summary>
    public static readonly Scalar MinusOneF = (-1f).ToScalar();

    /// <summary>Single-precision 255.</summary>
    public static readonly Scalar IgnoreF = ((float)DenseTasks.IgnoreLabel).ToScalar();

    /// <summary>Double-precision 0.5 (the saliency binarisation threshold).</summary>
    public static readonly Scalar Half = 0.5.ToScalar();
}
