using System.Text.RegularExpressions;
using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora;

/// <summary>The kinds of dense prediction task a <see cref="DenseTaskDescriptor"/> can describe.</summary>
public enum DenseTaskKind
{
    /// <summary>Multi-class segmentation: K logits per pixel, a Byte class map label (an ignore label excluded), mIoU.
    /// Loss: log-softmax + NLL over the valid pixels (reference <c>mtl_loss_schemes.py::SoftMaxwithLoss</c>).</summary>
    Segmentation,

    /// <summary>Binary dense map (saliency, edges): one logit per pixel, a Byte 0/1 label. Loss: the reference's balanced
    /// BCE with logits (<c>mtl_loss_schemes.py::BalancedCrossEntropyLoss</c>), with the negatives' share of the batch as the
    /// positive weight, or a fixed <see cref="DenseTaskDescriptor.PositiveWeight"/> (edges: 0.95).</summary>
    BinaryMap,

    /// <summary>Surface normals: 3 outputs per pixel, normalised; a Single 3·H·W planar label with 255 on invalid pixels.
    /// Loss: L1 on the normalised prediction over the valid elements (<c>mtl_loss_schemes.py::NormalsLoss</c>).
    /// Metric: mean angular error in degrees.</summary>
    SurfaceNormals,

    /// <summary>Depth / dense regression: 1 output per pixel, a Single H·W label (metres for depth) with an ignore value.
    /// Loss: L1 over the valid pixels (<c>mtl_loss_schemes.py::DepthLoss</c>). Metric: RMSE and log-RMSE
    /// (<c>evaluation/eval_depth.py::DepthMeter</c>).</summary>
    Depth,
}

/// <summary>How a task's label (or prediction) map is resampled when the image is resized.</summary>
public enum DenseResize
{
    /// <summary>Nearest neighbour (class maps, binary maps, depth: the reference's <c>cv2.INTER_NEAREST</c>).</summary>
    Nearest,

    /// <summary>Bicubic, then each vector renormalised to unit length (surface normals: the reference's <c>cv2.INTER_CUBIC</c>).</summary>
    BicubicRenormalize,

    /// <summary>Bilinear, <c>align_corners=False</c> (the network's logits, upsampled to the image size).</summary>
    Bilinear,
}

/// <summary>
/// Everything the library needs to know about one dense prediction task: its name, kind, output channels, loss and default
/// weight, ignore value, label and output columns, metric and resampling. A value: two descriptors are equal when their
/// <see cref="Name"/>s are equal (ordinal), so a descriptor keys dictionaries, module names (<c>decoders.{Name}</c>) and
/// checkpoints by its name.
/// </summary>
/// <remarks>
/// <para>Built-ins: the four PASCAL-Context tasks (<see cref="PascalSemanticSegmentation"/>, <see cref="PascalHumanParts"/>,
/// <see cref="PascalSaliency"/>, <see cref="PascalSurfaceNormals"/>, also reachable as <see cref="DenseTask"/> values, which
/// convert implicitly) and the NYUD-v2 tasks (<see cref="NyudSemanticSegmentation"/>, <see cref="NyudDepth"/>,
/// <see cref="NyudSurfaceNormals"/>, <see cref="NyudEdge"/>), with the reference's names, channels and weights
/// (docs/mtlora-reference.md §4, §5). Your own: <see cref="Segmentation"/>, <see cref="BinaryMap"/>,
/// <see cref="SurfaceNormals"/>, <see cref="Depth"/>.</para>
/// <para>The PASCAL and NYUD tasks share names (<c>semseg</c>, <c>normals</c>) as in the reference, so they are equal as keys;
/// a model trains one task list, and a name appears in it once.</para>
/// </remarks>
public sealed partial class DenseTaskDescriptor : IEquatable<DenseTaskDescriptor>, IComparable<DenseTaskDescriptor>, IComparable
{
    /// <summary>The ignore value of the reference's label maps: 255 (class maps, every channel of an invalid normal, depth).</summary>
    public const byte DefaultIgnoreLabel = 255;

    private DenseTaskDescriptor(string name, DenseTaskKind kind, int outputChannels, float lossWeight, string columnStem,
        float? positiveWeight, float? ignoreValue)
    {
        Name = name;
        Kind = kind;
        OutputChannels = outputChannels;
        DefaultLossWeight = lossWeight;
        ColumnStem = columnStem;
        PositiveWeight = positiveWeight;
        IgnoreValue = ignoreValue;
    }

    /// <summary>The task's name: the reference's (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>,
    /// <c>depth</c>, <c>edge</c>) or yours. It names the task's modules and state-dict keys; it is the descriptor's identity.</summary>
    public string Name { get; }

    /// <summary>What the task predicts, and so its loss, label type and metric.</summary>
    public DenseTaskKind Kind { get; }

    /// <summary>Channels of the network's raw output: K for a K-class segmentation, 1 for a binary map or depth, 3 for normals.</summary>
    public int OutputChannels { get; }

    /// <summary>The loss weight used when the options give none (reference <c>main.py</c>: semseg 1, human_parts 2, sal 5,
    /// normals 10, edge 50, depth 1).</summary>
    public float DefaultLossWeight { get; }

    /// <summary>The stem of the task's column names: <c>Semseg</c> gives <c>SemsegLabel</c>, <c>SemsegPredictedLabel</c>, <c>SemsegScore</c>.</summary>
    public string ColumnStem { get; }

    /// <summary>For a <see cref="DenseTaskKind.BinaryMap"/>: the fixed weight of the positive pixels in the balanced BCE
    /// (edges: 0.95, <c>mtl_loss_schemes.py::get_loss</c>); null: the negatives' share of the batch (saliency). Null for the other kinds.</summary>
    public float? PositiveWeight { get; }

    /// <summary>The label value that marks a pixel to ignore: 255 for class maps, normals and depth (the reference's masks are
    /// <c>label != 255</c>); null for a binary map (every pixel counts).</summary>
    public float? IgnoreValue { get; }

    /// <summary>Whether the task predicts a class per pixel.</summary>
    public bool IsClassification => Kind == DenseTaskKind.Segmentation;

    /// <summary>Channels of the label: 3 for normals, 1 otherwise.</summary>
    public int LabelChannels => Kind == DenseTaskKind.SurfaceNormals ? 3 : 1;

    /// <summary>The item type of the label column: Byte for class maps and binary maps, Single for normals and depth.</summary>
    public PrimitiveDataViewType LabelItemType =>
        Kind is DenseTaskKind.Segmentation or DenseTaskKind.BinaryMap ? NumberDataViewType.Byte : NumberDataViewType.Single;

    /// <summary>The label column a loader produces and the estimator reads by default (<c>{ColumnStem}Label</c>): a vector of
    /// <see cref="LabelItemType"/> with <see cref="LabelChannels"/>·Height·Width values, planar.</summary>
    public string LabelColumnName => ColumnStem + "Label";

    /// <summary>The transformer's main prediction column: the class map (<c>{Stem}PredictedLabel</c>, Byte), the binary map's
    /// probability (<c>{Stem}Probability</c>, Single), the unit normals (<c>{Stem}Predicted</c>, Single 3·H·W) or the depth
    /// (<c>{Stem}Predicted</c>, Single).</summary>
    public string PredictionColumnName => Kind switch
    {
        DenseTaskKind.Segmentation => ColumnStem + "PredictedLabel",
        DenseTaskKind.BinaryMap => ColumnStem + "Probability",
        _ => ColumnStem + "Predicted",
    };

    /// <summary>The item type of <see cref="PredictionColumnName"/>: Byte for a class map, Single otherwise.</summary>
    public PrimitiveDataViewType PredictionItemType =>
        Kind == DenseTaskKind.Segmentation ? NumberDataViewType.Byte : NumberDataViewType.Single;

    /// <summary>Channels of <see cref="PredictionColumnName"/>: 3 for normals, 1 otherwise.</summary>
    public int PredictionChannels => LabelChannels;

    /// <summary>The per-class softmax column of a segmentation (<c>{Stem}Score</c>, Single K·H·W); null for the other kinds.</summary>
    public string? ScoreColumnName => Kind == DenseTaskKind.Segmentation ? ColumnStem + "Score" : null;

    /// <summary>How the label map follows a resize of the image: nearest for class maps, binary maps and depth (the
    /// reference's <c>cv2.INTER_NEAREST</c>), bicubic + renormalise for normals.</summary>
    public DenseResize LabelResize => Kind == DenseTaskKind.SurfaceNormals ? DenseResize.BicubicRenormalize : DenseResize.Nearest;

    /// <summary>How the network's output reaches the image size: bilinear (<c>align_corners=False</c>, reference §4) for every kind.</summary>
    public DenseResize PredictionResize => DenseResize.Bilinear;

    /// <summary>The task's main metric, in the units Δm uses: <c>mIoU</c> (×100) for a segmentation and for saliency, the
    /// mean angle in degrees for normals, <c>rmse</c> for depth, and for an edge map <c>edge_f@0.5</c>: the name reserved for a
    /// pixel-wise F-measure at a fixed 0.5 threshold with no boundary tolerance (×100), deliberately not called ODS-F, which is
    /// what the reference's external MATLAB benchmark reports (matching within a distance tolerance); <see cref="Evaluation.EdgeMeter"/> computes it.</summary>
    public string MetricName => Kind switch
    {
        DenseTaskKind.Segmentation => "mIoU",
        DenseTaskKind.BinaryMap when PositiveWeight is null => "mIoU",
        DenseTaskKind.BinaryMap => "edge_f@0.5",
        DenseTaskKind.SurfaceNormals => "mean",
        _ => "rmse",
    };

    /// <summary>Whether a larger <see cref="MetricName"/> is better (false for normals' angle and depth's RMSE); the sign in Δm.</summary>
    public bool HigherIsBetter => Kind is DenseTaskKind.Segmentation or DenseTaskKind.BinaryMap;

    /// <summary>The PASCAL-Context semantic segmentation: 21 classes, weight 1, columns <c>Semseg*</c>.</summary>
    public static DenseTaskDescriptor PascalSemanticSegmentation { get; } = new("semseg", DenseTaskKind.Segmentation, 21, 1f, "Semseg", null, DefaultIgnoreLabel);

    /// <summary>The PASCAL-Context human parts: 7 classes, weight 2, columns <c>HumanParts*</c>.</summary>
    public static DenseTaskDescriptor PascalHumanParts { get; } = new("human_parts", DenseTaskKind.Segmentation, 7, 2f, "HumanParts", null, DefaultIgnoreLabel);

    /// <summary>The PASCAL-Context saliency: a binary map with batch-balanced BCE, weight 5, columns <c>Saliency*</c>.</summary>
    public static DenseTaskDescriptor PascalSaliency { get; } = new("sal", DenseTaskKind.BinaryMap, 1, 5f, "Saliency", null, null);

    /// <summary>The PASCAL-Context surface normals: weight 10, columns <c>Normals*</c>.</summary>
    public static DenseTaskDescriptor PascalSurfaceNormals { get; } = new("normals", DenseTaskKind.SurfaceNormals, 3, 10f, "Normals", null, DefaultIgnoreLabel);

    /// <summary>NYUD-v2 semantic segmentation: 40 classes (the file's 1..40 become 0..39, 0 becomes the ignore label; reference
    /// <c>data/mtl_ds.py::NYUD_MT._load_semseg</c>), weight 1, columns <c>Semseg*</c>.</summary>
    public static DenseTaskDescriptor NyudSemanticSegmentation { get; } = new("semseg", DenseTaskKind.Segmentation, 40, 1f, "Semseg", null, DefaultIgnoreLabel);

    /// <summary>NYUD-v2 depth in metres: L1 over the pixels whose label is not 255 (<c>DepthLoss</c>), weight 1, columns <c>Depth*</c>.</summary>
    public static DenseTaskDescriptor NyudDepth { get; } = new("depth", DenseTaskKind.Depth, 1, 1f, "Depth", null, DefaultIgnoreLabel);

    /// <summary>NYUD-v2 surface normals: weight 10, columns <c>Normals*</c>.</summary>
    public static DenseTaskDescriptor NyudSurfaceNormals { get; } = new("normals", DenseTaskKind.SurfaceNormals, 3, 10f, "Normals", null, DefaultIgnoreLabel);

    /// <summary>NYUD-v2 edges: a binary map with the reference's fixed positive weight 0.95 (<c>get_loss</c>, <c>edge_w</c>),
    /// weight 50, columns <c>Edge*</c>.</summary>
    public static DenseTaskDescriptor NyudEdge { get; } = new("edge", DenseTaskKind.BinaryMap, 1, 50f, "Edge", 0.95f, null);

    /// <summary>The four PASCAL-Context tasks in the reference's order.</summary>
    public static IReadOnlyList<DenseTaskDescriptor> Pascal { get; } =
        [PascalSemanticSegmentation, PascalHumanParts, PascalSaliency, PascalSurfaceNormals];

    /// <summary>The four NYUD-v2 tasks in the reference's order (semseg, depth, normals, edge).</summary>
    public static IReadOnlyList<DenseTaskDescriptor> Nyud { get; } =
        [NyudSemanticSegmentation, NyudDepth, NyudSurfaceNormals, NyudEdge];

    /// <summary>Your own multi-class segmentation task.</summary>
    /// <param name="name">The task name (letters, digits and '_', starting with a letter; names its modules).</param>
    /// <param name="classes">The number of classes K (2..255); labels 0..K−1, 255 ignored.</param>
    /// <param name="lossWeight">The loss weight (default 1).</param>
    /// <param name="columnStem">The stem of its columns; default: the name in PascalCase (<c>defects</c> → <c>DefectsLabel</c>).</param>
    /// <returns>The descriptor.</returns>
    public static DenseTaskDescriptor Segmentation(string name, int classes, float lossWeight = 1f, string? columnStem = null)
    {
        if (classes < 2 || classes > 255)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, $"Task '{name}': a segmentation needs 2..255 classes (255 is the ignore label).");
        return Create(name, DenseTaskKind.Segmentation, classes, lossWeight, columnStem, null, DefaultIgnoreLabel);
    }

    /// <summary>Your own binary dense map (a saliency- or edge-like 0/1 mask).</summary>
    /// <param name="name">The task name.</param>
    /// <param name="lossWeight">The loss weight (default 1).</param>
    /// <param name="positiveWeight">A fixed weight of the positive pixels in the balanced BCE (0..1), or null for the negatives'
    /// share of the batch (the saliency rule).</param>
    /// <param name="columnStem">The stem of its columns; default: the name in PascalCase.</param>
    /// <returns>The descriptor.</returns>
    public static DenseTaskDescriptor BinaryMap(string name, float lossWeight = 1f, float? positiveWeight = null, string? columnStem = null)
    {
        if (positiveWeight is { } pw && !(pw > 0 && pw < 1))
            throw new ArgumentOutOfRangeException(nameof(positiveWeight), positiveWeight, $"Task '{name}': the positive weight must lie strictly between 0 and 1.");
        return Create(name, DenseTaskKind.BinaryMap, 1, lossWeight, columnStem, positiveWeight, null);
    }

    /// <summary>Your own surface-normals task (labels: unit vectors, planar 3·H·W, 255 on invalid pixels).</summary>
    /// <param name="name">The task name.</param>
    /// <param name="lossWeight">The loss weight (default 10, the reference's normals weight).</param>
    /// <param name="columnStem">The stem of its columns; default: the name in PascalCase.</param>
    /// <returns>The descriptor.</returns>
    public static DenseTaskDescriptor SurfaceNormals(string name, float lossWeight = 10f, string? columnStem = null) =>
        Create(name, DenseTaskKind.SurfaceNormals, 3, lossWeight, columnStem, null, DefaultIgnoreLabel);

    /// <summary>Your own depth / dense regression task (L1 over the pixels whose label is not <paramref name="ignoreValue"/>).</summary>
    /// <param name="name">The task name.</param>
    /// <param name="lossWeight">The loss weight (default 1).</param>
    /// <param name="ignoreValue">The label value of invalid pixels (default 255, as the reference's depth masks).</param>
    /// <param name="columnStem">The stem of its columns; default: the name in PascalCase.</param>
    /// <returns>The descriptor.</returns>
    public static DenseTaskDescriptor Depth(string name, float lossWeight = 1f, float ignoreValue = DefaultIgnoreLabel, string? columnStem = null)
    {
        if (!float.IsFinite(ignoreValue)) throw new ArgumentOutOfRangeException(nameof(ignoreValue), ignoreValue, $"Task '{name}': the ignore value must be finite.");
        return Create(name, DenseTaskKind.Depth, 1, lossWeight, columnStem, null, ignoreValue);
    }

    /// <summary>Rebuilds a descriptor from its persisted fields (model.zip, checkpoints), with the same checks as the factories.</summary>
    /// <param name="name">The name.</param>
    /// <param name="kind">The kind.</param>
    /// <param name="outputChannels">The output channels (checked against the kind).</param>
    /// <param name="lossWeight">The default loss weight.</param>
    /// <param name="columnStem">The column stem.</param>
    /// <param name="positiveWeight">The binary map's fixed positive weight, if any.</param>
    /// <param name="ignoreValue">The ignore value, if any.</param>
    /// <returns>The descriptor; a built-in's instance when all fields match one.</returns>
    public static DenseTaskDescriptor FromParts(string name, DenseTaskKind kind, int outputChannels, float lossWeight,
        string columnStem, float? positiveWeight, float? ignoreValue)
    {
        foreach (var b in Pascal.Concat(Nyud))
        {
            if (b.Name == name && b.Kind == kind && b.OutputChannels == outputChannels && b.DefaultLossWeight == lossWeight &&
                b.ColumnStem == columnStem && b.PositiveWeight == positiveWeight && b.IgnoreValue == ignoreValue)
                return b;
        }
        int expected = kind switch
        {
            DenseTaskKind.Segmentation => outputChannels,
            DenseTaskKind.SurfaceNormals => 3,
            _ => 1,
        };
        if (outputChannels != expected || outputChannels < 1 || (kind == DenseTaskKind.Segmentation && outputChannels is < 2 or > 255))
            throw new ArgumentException($"Task '{name}': a {kind} task cannot have {outputChannels} output channels.", nameof(outputChannels));
        return Create(name, kind, outputChannels, lossWeight, columnStem, positiveWeight, ignoreValue);
    }

    private static DenseTaskDescriptor Create(string name, DenseTaskKind kind, int channels, float lossWeight, string? columnStem,
        float? positiveWeight, float? ignoreValue)
    {
        if (name is null || !NamePattern().IsMatch(name))
            throw new ArgumentException($"Task name '{name}' is not valid: use letters, digits and '_', starting with a letter (it names modules and state-dict keys).", nameof(name));
        if (!float.IsFinite(lossWeight) || lossWeight < 0)
            throw new ArgumentOutOfRangeException(nameof(lossWeight), lossWeight, $"Task '{name}': the loss weight must be a finite number ≥ 0.");
        columnStem ??= DefaultStem(name);
        if (!StemPattern().IsMatch(columnStem))
            throw new ArgumentException($"Task '{name}': column stem '{columnStem}' is not valid: use letters and digits, starting with a letter.", nameof(columnStem));
        return new DenseTaskDescriptor(name, kind, channels, lossWeight, columnStem, positiveWeight, ignoreValue);
    }

    private static string DefaultStem(string name) =>
        string.Concat(name.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9]{0,63}$")]
    private static partial Regex StemPattern();

    /// <summary>The PASCAL built-in of a <see cref="DenseTask"/> value.</summary>
    /// <param name="task">The enum value.</param>
    public static implicit operator DenseTaskDescriptor(DenseTask task) => task.ToDescriptor();

    /// <summary>Equality by <see cref="Name"/> (ordinal).</summary>
    /// <param name="left">A descriptor or null.</param>
    /// <param name="right">A descriptor or null.</param>
    public static bool operator ==(DenseTaskDescriptor? left, DenseTaskDescriptor? right) =>
        left is null ? right is null : left.Equals(right);

    /// <summary>Inequality by <see cref="Name"/>.</summary>
    /// <param name="left">A descriptor or null.</param>
    /// <param name="right">A descriptor or null.</param>
    public static bool operator !=(DenseTaskDescriptor? left, DenseTaskDescriptor? right) => !(left == right);

    /// <inheritdoc/>
    public bool Equals(DenseTaskDescriptor? other) => other is not null && string.Equals(Name, other.Name, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is DenseTaskDescriptor d && Equals(d);

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Name);

    private static readonly string[] CanonicalOrder = ["semseg", "human_parts", "sal", "normals", "depth", "edge"];

    /// <summary>Orders tasks as the reference lists them (semseg, human_parts, sal, normals, depth, edge; the order of the
    /// <see cref="DenseTask"/> enum), then your own by name (ordinal); consistent with equality by name.</summary>
    /// <param name="other">The other descriptor.</param>
    /// <returns>Negative, zero or positive.</returns>
    public int CompareTo(DenseTaskDescriptor? other)
    {
        if (other is null) return 1;
        static int Rank(string n) { int i = Array.IndexOf(CanonicalOrder, n); return i < 0 ? CanonicalOrder.Length : i; }
        int byRank = Rank(Name).CompareTo(Rank(other.Name));
        return byRank != 0 ? byRank : string.CompareOrdinal(Name, other.Name);
    }

    /// <inheritdoc/>
    int IComparable.CompareTo(object? obj) => obj is null ? 1 : obj is DenseTaskDescriptor d ? CompareTo(d)
        : throw new ArgumentException($"Cannot compare a task descriptor with {obj.GetType().Name}.", nameof(obj));

    /// <summary>The <see cref="Name"/>.</summary>
    /// <returns>The name.</returns>
    public override string ToString() => Name;

    /// <summary>Whether every fact of the two descriptors agrees (not only the name): what a model.zip check needs.</summary>
    /// <param name="other">The other descriptor.</param>
    /// <returns>True when name, kind, channels, weight, column stem, positive weight and ignore value all agree.</returns>
    public bool SameDefinition(DenseTaskDescriptor other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Name == other.Name && Kind == other.Kind && OutputChannels == other.OutputChannels &&
            DefaultLossWeight == other.DefaultLossWeight && ColumnStem == other.ColumnStem &&
            PositiveWeight == other.PositiveWeight && IgnoreValue == other.IgnoreValue;
    }

    /// <summary>Checks a task list: not empty, no null, no name twice, no two tasks sharing a column stem.</summary>
    /// <param name="tasks">The tasks.</param>
    /// <param name="what">What the list is, for the message (an option name).</param>
    /// <exception cref="ArgumentException">The list breaks a rule; the message names the task.</exception>
    public static void Validate(IReadOnlyList<DenseTaskDescriptor>? tasks, string what)
    {
        if (tasks is null || tasks.Count == 0) throw new ArgumentException($"'{what}' must list at least one task.");
        var names = new HashSet<string>(StringComparer.Ordinal);
        var stems = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            if (t is null) throw new ArgumentException($"'{what}' holds a null task.");
            if (!names.Add(t.Name)) throw new ArgumentException($"'{what}' lists task '{t.Name}' twice.");
            if (!stems.Add(t.ColumnStem)) throw new ArgumentException($"'{what}': task '{t.Name}' uses column stem '{t.ColumnStem}' that another task uses too.");
        }
    }
}
