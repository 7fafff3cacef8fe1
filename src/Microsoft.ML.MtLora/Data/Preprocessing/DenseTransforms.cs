namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>The random draws of one training sample's augmentation (reference: RandomHorizontalFlip, then ScaleNRotate).</summary>
/// <param name="Flip">Mirror horizontally (probability 0.5).</param>
/// <param name="AngleDegrees">Rotation angle; positive is counter-clockwise (PASCAL: uniform in [−20°, 20°]; see <see cref="AugmentationDraws"/>).</param>
/// <param name="Scale">Scale (PASCAL: uniform in [0.75, 1.25]; NYUD: 1.0, 1.2 or 1.5).</param>
internal readonly record struct AugmentationDraw(bool Flip, double AngleDegrees, double Scale)
{
    /// <summary>No augmentation: no flip, angle 0, scale 1.</summary>
    public static AugmentationDraw Identity => new(false, 0, 1);

    /// <summary>Whether the draw rotates or scales (the reference skips nothing, but an identity warp changes nothing).</summary>
    public bool Warps => AngleDegrees != 0 || Scale != 1;

    /// <summary>
    /// PASCAL-Context's draws for one sample (<see cref="AugmentationDraws.PascalContext"/>), a pure function of
    /// (seed, epoch, sample index) so that a resumed or skipped epoch augments every sample exactly as an uninterrupted one,
    /// whichever worker thread processes it.
    /// </summary>
    public static AugmentationDraw For(int seed, int epoch, long sampleIndex) => AugmentationDraws.PascalContext.Draw(seed, epoch, sampleIndex);
}

/// <summary>A small, well-mixed, platform-independent generator (SplitMix64), so orders and draws never depend on the runtime's <see cref="Random"/>.</summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Mixes several values into one seed.</summary>
    public static ulong Combine(params ReadOnlySpan<ulong> values)
    {
        ulong h = 0x243F6A8885A308D3UL;
        foreach (var v in values)
        {
            var m = new SplitMix64(h ^ v);
            h = m.NextUInt64();
        }
        return h;
    }

    /// <summary>A 31-bit seed for <see cref="Random"/> (e.g. the shuffle of an ML.NET cursor).</summary>
    public static int ToInt32Seed(ulong value) => (int)(value & 0x7FFF_FFFF);
}

/// <summary>The reference's image normalisation constants (data/mtl_ds.py, Normalize).</summary>
internal static class DenseTransforms
{
    /// <summary>ImageNet mean (RGB) used by the reference's Normalize.</summary>
    public static readonly float[] Mean = [0.485f, 0.456f, 0.406f];

    /// <summary>ImageNet standard deviation (RGB) used by the reference's Normalize.</summary>
    public static readonly float[] Std = [0.229f, 0.224f, 0.225f];
}
