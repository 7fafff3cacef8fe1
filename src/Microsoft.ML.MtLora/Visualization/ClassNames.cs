namespace Microsoft.ML.MtLora.Visualization;

/// <summary>The class names of the classification tasks of PASCAL-Context multi-task learning, indexed by label.</summary>
public static class ClassNames
{
    /// <summary>The 21 semantic segmentation classes: background and the 20 PASCAL VOC classes, in label order.</summary>
    public static IReadOnlyList<string> SemanticSegmentation { get; } =
    [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
        "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ];

    /// <summary>The 7 human-parts classes, in label order.</summary>
    public static IReadOnlyList<string> HumanParts { get; } =
        ["background", "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg"];

    /// <summary>The class names of a classification task.</summary>
    /// <param name="task"><see cref="DenseTask.SemanticSegmentation"/> or <see cref="DenseTask.HumanParts"/>.</param>
    /// <returns>The names, indexed by label.</returns>
    /// <exception cref="ArgumentException">The task does not predict classes.</exception>
    public static IReadOnlyList<string> For(DenseTask task) => task switch
    {
        DenseTask.SemanticSegmentation => SemanticSegmentation,
        DenseTask.HumanParts => HumanParts,
        _ => throw new ArgumentException($"Task '{task.ReferenceName()}' has no classes; only semseg and human_parts do.", nameof(task)),
    };

    /// <summary>The class names of a segmentation task: PASCAL's for its two built-ins, <c>class 0</c>.. <c>class K−1</c> otherwise.</summary>
    /// <param name="task">A task of kind <see cref="DenseTaskKind.Segmentation"/>.</param>
    /// <returns>The names, indexed by label.</returns>
    /// <exception cref="ArgumentException">The task does not predict classes.</exception>
    public static IReadOnlyList<string> For(DenseTaskDescriptor task)
    {
        ArgumentNullException.ThrowIfNull(task);
        if (ReferenceEquals(task, DenseTaskDescriptor.PascalSemanticSegmentation)) return SemanticSegmentation;
        if (ReferenceEquals(task, DenseTaskDescriptor.PascalHumanParts)) return HumanParts;
        if (!task.IsClassification) throw new ArgumentException($"Task '{task.Name}' has no classes; it is a {task.Kind} task.", nameof(task));
        return Enumerable.Range(0, task.OutputChannels).Select(i => $"class {i}").ToArray();
    }

    /// <summary>The display name of a label: the class name, <c>ignore</c> for 255, or <c>label N</c> outside the task's classes.</summary>
    internal static string Display(IReadOnlyList<string> names, int label) =>
        label == DenseTasks.IgnoreLabel ? "ignore" : label < names.Count ? names[label] : $"label {label}";
}
