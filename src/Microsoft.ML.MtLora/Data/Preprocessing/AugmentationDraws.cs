using System.Globalization;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// How the training augmentation draws each sample's rotation and scale (the horizontal flip is always drawn with probability
/// 0.5, as the reference's <c>RandomHorizontalFlip</c>): each either uniform in a range or one value of a list, as the
/// reference's <c>data/custom_transforms.py::ScaleNRotate</c> does with a tuple or a list. <see cref="PascalContext"/> (the
/// default) and <see cref="Nyud"/> are the reference's two datasets (<c>data/mtl_ds.py::get_transformations</c>).
/// </summary>
/// <remarks>
/// The draws of a sample are a pure function of (seed, epoch, sample index), so a resumed or re-run epoch augments every
/// sample as an uninterrupted one. Which values are drawn follows the reference; the random numbers themselves are this
/// library's (SplitMix64), not numpy's.
/// </remarks>
public sealed class AugmentationDraws
{
    private readonly double[]? _angles, _scales;

    private AugmentationDraws(string name, double minAngle, double maxAngle, double[]? angles, double minScale, double maxScale, double[]? scales)
    {
        Name = name;
        (MinAngleDegrees, MaxAngleDegrees, _angles) = (minAngle, maxAngle, angles);
        (MinScale, MaxScale, _scales) = (minScale, maxScale, scales);
    }

    /// <summary>
    /// PASCAL-Context's draws (the default): rotation uniform in [−20°, 20°], scale uniform in [0.75, 1.25]
    /// (reference: <c>ScaleNRotate(rots=(-20, 20), scales=(.75, 1.25))</c>).
    /// </summary>
    public static AugmentationDraws PascalContext { get; } = new("pascal", -20, 20, null, 0.75, 1.25, null);

    /// <summary>
    /// NYUD-v2's draws: no rotation, scale 1.0, 1.2 or 1.5 with probability 1/3 each (reference:
    /// <c>ScaleNRotate(rots=[0], scales=[1.0, 1.2, 1.5])</c>, whose <c>numpy.random.randint(0, len)</c> picks each list entry
    /// with equal probability).
    /// </summary>
    public static AugmentationDraws Nyud { get; } = new("nyud", 0, 0, [0], 1.0, 1.5, [1.0, 1.2, 1.5]);

    /// <summary>Rotation and scale each uniform in a closed range (a range of one value draws that value).</summary>
    /// <param name="minAngleDegrees">The smallest rotation in degrees (positive is counter-clockwise), ≥ −180.</param>
    /// <param name="maxAngleDegrees">The largest rotation, ≥ <paramref name="minAngleDegrees"/> and ≤ 180.</param>
    /// <param name="minScale">The smallest scale, &gt; 0.</param>
    /// <param name="maxScale">The largest scale, ≥ <paramref name="minScale"/> and ≤ 10.</param>
    /// <returns>The draws.</returns>
    /// <exception cref="ArgumentException">A bound is not finite, out of range, or a minimum exceeds its maximum.</exception>
    public static AugmentationDraws Uniform(double minAngleDegrees, double maxAngleDegrees, double minScale, double maxScale)
    {
        CheckAngle(minAngleDegrees, nameof(minAngleDegrees));
        CheckAngle(maxAngleDegrees, nameof(maxAngleDegrees));
        if (minAngleDegrees > maxAngleDegrees)
            throw new ArgumentException($"The rotation range [{minAngleDegrees}, {maxAngleDegrees}] is empty: the minimum exceeds the maximum.", nameof(minAngleDegrees));
        CheckScale(minScale, nameof(minScale));
        CheckScale(maxScale, nameof(maxScale));
        if (minScale > maxScale)
            throw new ArgumentException($"The scale range [{minScale}, {maxScale}] is empty: the minimum exceeds the maximum.", nameof(minScale));
        return new AugmentationDraws("custom", minAngleDegrees, maxAngleDegrees, null, minScale, maxScale, null);
    }

    /// <summary>Rotation one of <paramref name="anglesDegrees"/> and scale one of <paramref name="scales"/>, each entry with equal probability, independently.</summary>
    /// <param name="anglesDegrees">The rotations in degrees, each in [−180, 180]; at least one (a value listed twice is twice as likely).</param>
    /// <param name="scales">The scales, each in (0, 10]; at least one.</param>
    /// <returns>The draws.</returns>
    /// <exception cref="ArgumentException">A list is empty or holds a value out of range.</exception>
    public static AugmentationDraws Choice(IEnumerable<double> anglesDegrees, IEnumerable<double> scales)
    {
        ArgumentNullException.ThrowIfNull(anglesDegrees);
        ArgumentNullException.ThrowIfNull(scales);
        double[] angles = anglesDegrees.ToArray(), scaleList = scales.ToArray();
        if (angles.Length == 0) throw new ArgumentException("No rotation given; list at least one angle (0 for none).", nameof(anglesDegrees));
        if (scaleList.Length == 0) throw new ArgumentException("No scale given; list at least one scale (1 for none).", nameof(scales));
        foreach (var a in angles) CheckAngle(a, nameof(anglesDegrees));
        foreach (var s in scaleList) CheckScale(s, nameof(scales));
        return new AugmentationDraws("custom", angles.Min(), angles.Max(), angles, scaleList.Min(), scaleList.Max(), scaleList);
    }

    /// <summary>
    /// Parses a preset name, <c>pascal</c> or <c>nyud</c>, or <c>rotation=…,scale=…</c> where each value is a range
    /// <c>min..max</c> (uniform) or a list <c>a|b|c</c> (one entry, equal probability), e.g. <c>rotation=-20..20,scale=0.75..1.25</c>
    /// or <c>rotation=0,scale=1|1.2|1.5</c> (invariant-culture numbers, degrees for the rotation).
    /// </summary>
    /// <param name="text">The text.</param>
    /// <returns>The draws.</returns>
    /// <exception cref="FormatException">The text is not of that form, or a value is out of range; the message says what is expected.</exception>
    public static AugmentationDraws Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        if (trimmed.Equals("pascal", StringComparison.OrdinalIgnoreCase)) return PascalContext;
        if (trimmed.Equals("nyud", StringComparison.OrdinalIgnoreCase)) return Nyud;
        const string Expected = "expected pascal, nyud, or rotation=MIN..MAX|A|B...,scale=MIN..MAX|A|B... (e.g. rotation=0,scale=1|1.2|1.5)";
        (double[]? List, double Min, double Max)? rotation = null, scale = null;
        foreach (var part in trimmed.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            var key = eq > 0 ? part[..eq].Trim().ToLowerInvariant() : "";
            if (key is not ("rotation" or "scale")) throw new FormatException($"'{part}' is not rotation=... or scale=...; {Expected}.");
            var value = ParseValues(part[(eq + 1)..].Trim(), part, Expected);
            if (key == "rotation") rotation = rotation is null ? value : throw new FormatException($"rotation is given twice in '{text}'.");
            else scale = scale is null ? value : throw new FormatException($"scale is given twice in '{text}'.");
        }
        if (rotation is not { } r || scale is not { } s) throw new FormatException($"'{text}' needs both rotation and scale; {Expected}.");
        try
        {
            if (r.List is null && s.List is null) return Uniform(r.Min, r.Max, s.Min, s.Max);
            if (r.List is not null && s.List is not null) return Choice(r.List, s.List);
            // Mixed: a range for one, a list for the other; checked as the ranges they span.
            _ = Uniform(r.Min, r.Max, s.Min, s.Max);
            return new AugmentationDraws("custom", r.Min, r.Max, r.List, s.Min, s.Max, s.List);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"'{text}': {e.Message.Split(" (Parameter")[0]}");
        }
    }

    private static (double[]? List, double Min, double Max) ParseValues(string value, string part, string expected)
    {
        static bool Number(string s, out double v) => double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out v);
        int dots = value.IndexOf("..", StringComparison.Ordinal);
        if (dots > 0)
        {
            if (!Number(value[..dots], out double min) || !Number(value[(dots + 2)..], out double max))
                throw new FormatException($"'{part}': the range is not MIN..MAX with two numbers; {expected}.");
            return (null, min, max);
        }
        var items = value.Split('|', StringSplitOptions.TrimEntries);
        var list = new double[items.Length];
        for (int i = 0; i < items.Length; i++)
            if (!Number(items[i], out list[i])) throw new FormatException($"'{part}': '{items[i]}' is not a number; {expected}.");
        return (list, list.Min(), list.Max());
    }

    private static void CheckAngle(double value, string name)
    {
        if (!(value >= -180 && value <= 180)) throw new ArgumentException($"The rotation {value} is not an angle in [-180, 180] degrees.", name);
    }

    private static void CheckScale(double value, string name)
    {
        if (!(value > 0 && value <= 10)) throw new ArgumentException($"The scale {value} is not in (0, 10].", name);
    }

    /// <summary><c>pascal</c>, <c>nyud</c> or <c>custom</c>: which preset this is.</summary>
    public string Name { get; }

    /// <summary>The smallest rotation that can be drawn, in degrees.</summary>
    public double MinAngleDegrees { get; }

    /// <summary>The largest rotation that can be drawn, in degrees.</summary>
    public double MaxAngleDegrees { get; }

    /// <summary>The smallest scale that can be drawn.</summary>
    public double MinScale { get; }

    /// <summary>The largest scale that can be drawn.</summary>
    public double MaxScale { get; }

    /// <summary>The rotations drawn from with equal probability; null when the rotation is uniform in [<see cref="MinAngleDegrees"/>, <see cref="MaxAngleDegrees"/>].</summary>
    public IReadOnlyList<double>? AnglesDegrees => _angles;

    /// <summary>The scales drawn from with equal probability; null when the scale is uniform in [<see cref="MinScale"/>, <see cref="MaxScale"/>].</summary>
    public IReadOnlyList<double>? Scales => _scales;

    /// <summary>The draws in the form <see cref="Parse"/> reads (a preset by its name).</summary>
    /// <returns>The text.</returns>
    public override string ToString() => Name != "custom" ? Name
        : $"rotation={Describe(_angles, MinAngleDegrees, MaxAngleDegrees)},scale={Describe(_scales, MinScale, MaxScale)}";

    /// <summary>The draws written out, e.g. <c>rotation=-20..20,scale=0.75..1.25</c>, presets included.</summary>
    /// <returns>The text.</returns>
    public string Describe() => $"rotation={Describe(_angles, MinAngleDegrees, MaxAngleDegrees)},scale={Describe(_scales, MinScale, MaxScale)}";

    private static string Describe(double[]? list, double min, double max) => list is not null
        ? string.Join("|", list.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))
        : string.Create(CultureInfo.InvariantCulture, $"{min:R}..{max:R}");

    /// <summary>The draws of one sample, a pure function of (seed, epoch, sample index), whichever worker thread computes them.</summary>
    internal AugmentationDraw Draw(int seed, int epoch, long sampleIndex)
    {
        var rng = new SplitMix64(SplitMix64.Combine(0x5EED_A06u, (ulong)(uint)seed, (ulong)(uint)epoch, (ulong)sampleIndex));
        bool flip = rng.NextDouble() < 0.5;
        double angle = Value(ref rng, _angles, MinAngleDegrees, MaxAngleDegrees);
        double scale = Value(ref rng, _scales, MinScale, MaxScale);
        return new AugmentationDraw(flip, angle, scale);
    }

    /// <summary>
    /// One entry of <paramref name="list"/> (reference: <c>list[numpy.random.randint(0, len(list))]</c>), else uniform in
    /// [min, max] as the reference's <c>(max − min)·U − (max − min)/2</c> around the range's centre: for PASCAL exactly its
    /// <c>40·U − 20</c> and <c>0.5·U − 0.25 + 1</c>, bit for bit (the centre 0 adds nothing).
    /// </summary>
    private static double Value(ref SplitMix64 rng, double[]? list, double min, double max)
    {
        double u = rng.NextDouble();
        if (list is not null) return list[Math.Min((int)(u * list.Length), list.Length - 1)];
        double width = max - min;
        return width * u - width / 2 + (min + max) / 2;
    }
}
