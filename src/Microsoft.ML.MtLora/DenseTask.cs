namespace Microsoft.ML.MtLora;

/// <summary>The dense prediction tasks of PASCAL-Context multi-task learning (PASCAL_MT): shorthand for the four built-in
/// <see cref="DenseTaskDescriptor"/>s (<see cref="DenseTasks.ToDescriptor"/>; a value converts implicitly wherever a descriptor
/// is expected). Other tasks (NYUD-v2, your own) exist only as descriptors.</summary>
public enum DenseTask
{
    /// <summary>Semantic segmentation: 21 classes (background + 20 VOC classes). Reference name <c>semseg</c>.</summary>
    SemanticSegmentation,

    /// <summary>Human parts: 7 classes (background, head, torso, upper arm, lower arm, upper leg, lower leg). Reference name <c>human_parts</c>.</summary>
    HumanParts,

    /// <summary>Saliency: one logit per pixel. Reference name <c>sal</c>.</summary>
    Saliency,

    /// <summary>Surface normals: an unnormalised 3-vector per pixel. Reference name <c>normals</c>.</summary>
    SurfaceNormals,
}

/// <summary>Facts about each <see cref="DenseTask"/>: reference names, output channels, default loss weights, column names.</summary>
public static class DenseTasks
{
    /// <summary>The label value that marks a pixel to ignore (class maps; every channel of an invalid normal).</summary>
    public const byte IgnoreLabel = 255;

    /// <summary>All tasks, in the reference's order (semseg, human_parts, sal, normals).</summary>
    public static IReadOnlyList<DenseTask> All { get; } =
        [DenseTask.SemanticSegmentation, DenseTask.HumanParts, DenseTask.Saliency, DenseTask.SurfaceNormals];

    /// <summary>The PASCAL-Context built-in <see cref="DenseTaskDescriptor"/> of the task (the enum is shorthand for these four).</summary>
    /// <param name="task">The task.</param>
    /// <returns><see cref="DenseTaskDescriptor.PascalSemanticSegmentation"/>, <see cref="DenseTaskDescriptor.PascalHumanParts"/>,
    /// <see cref="DenseTaskDescriptor.PascalSaliency"/> or <see cref="DenseTaskDescriptor.PascalSurfaceNormals"/>.</returns>
    public static DenseTaskDescriptor ToDescriptor(this DenseTask task) =>
        (uint)task < 4u ? DenseTaskDescriptor.Pascal[(int)task] : throw new ArgumentOutOfRangeException(nameof(task), task, null);

    /// <summary>
    /// The enum value of a descriptor with a PASCAL built-in's definition, for the parts that read PASCAL's label layouts
    /// (the PASCAL loader and the batch pipeline's label slots).
    /// </summary>
    /// <param name="task">The descriptor.</param>
    /// <returns>The <see cref="DenseTask"/> whose descriptor has the same definition.</returns>
    /// <exception cref="NotSupportedException">The task is not one of the four PASCAL tasks; the message names it.</exception>
    public static DenseTask ToPascalTask(this DenseTaskDescriptor task)
    {
        ArgumentNullException.ThrowIfNull(task);
        for (int i = 0; i < All.Count; i++)
            if (DenseTaskDescriptor.Pascal[i].SameDefinition(task)) return All[i];
        throw new NotSupportedException(
            $"Task '{task.Name}' ({task.Kind}, {task.OutputChannels} channel(s)) has no PASCAL label layout: the batch pipeline reads the four PASCAL tasks' labels (semseg, human_parts, sal, normals) only.");
    }

    /// <summary>The reference implementation's name of a task (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>), used in configs and state-dict keys.</summary>
    public static string ReferenceName(this DenseTask task) => task.ToDescriptor().Name;

    /// <summary>The descriptor's <see cref="DenseTaskDescriptor.Name"/> (kept so that code written for the enum compiles unchanged).</summary>
    /// <param name="task">The descriptor.</param>
    /// <returns>The name.</returns>
    public static string ReferenceName(this DenseTaskDescriptor task) => (task ?? throw new ArgumentNullException(nameof(task))).Name;

    /// <summary>Parses a task name: the reference names (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>) or the enum names, case-insensitive.</summary>
    /// <param name="name">The name.</param>
    /// <returns>The task.</returns>
    /// <exception cref="ArgumentException">The name is not a known task; the message lists the known ones.</exception>
    public static DenseTask Parse(string name)
    {
        if (TryParse(name, out var task)) return task;
        throw new ArgumentException($"Unknown task '{name}'. Known tasks: semseg, human_parts, sal, normals.", nameof(name));
    }

    /// <summary>Parses a task name without throwing.</summary>
    /// <param name="name">The name.</param>
    /// <param name="task">The task, when known.</param>
    /// <returns>Whether the name is known.</returns>
    public static bool TryParse(string? name, out DenseTask task)
    {
        foreach (var t in All)
        {
            if (string.Equals(name, t.ReferenceName(), StringComparison.OrdinalIgnoreCase) ||
                string.Equals(name, t.ToString(), StringComparison.OrdinalIgnoreCase))
            {
                task = t;
                return true;
            }
        }
        task = default;
        return false;
    }

    /// <summary>Channels of the network's raw output for the task: 21, 7, 1, 3.</summary>
    public static int OutputChannels(this DenseTask task) => task.ToDescriptor().OutputChannels;

    /// <summary>Whether the task predicts a class per pixel (semseg, human parts).</summary>
    public static bool IsClassification(this DenseTask task) => task.ToDescriptor().IsClassification;

    /// <summary>The reference's loss weight: semseg 1, human parts 2, saliency 5, normals 10.</summary>
    public static float DefaultLossWeight(this DenseTask task) => task.ToDescriptor().DefaultLossWeight;

    /// <summary>
    /// The label column the PASCAL-Context loader produces for the task (<c>SemsegLabel</c>, <c>HumanPartsLabel</c>,
    /// <c>SaliencyLabel</c>, <c>NormalsLabel</c>).
    /// </summary>
    public static string LabelColumnName(this DenseTask task) => task.ToDescriptor().LabelColumnName;

    /// <summary>
    /// The main prediction column of the MTLoRA transformer for the task: the class map (<c>SemsegPredictedLabel</c>,
    /// <c>HumanPartsPredictedLabel</c>), the saliency probability map (<c>SaliencyProbability</c>) or the unit normals
    /// (<c>NormalsPredicted</c>).
    /// </summary>
    public static string PredictionColumnName(this DenseTask task) => task.ToDescriptor().PredictionColumnName;

    /// <summary>The per-class score column of a classification task (<c>SemsegScore</c>, <c>HumanPartsScore</c>); null for the others.</summary>
    public static string? ScoreColumnName(this DenseTask task) => task.ToDescriptor().ScoreColumnName;
}

/// <summary>Column names shared by the PASCAL-Context loader, the MTLoRA estimator/transformer and the evaluator.</summary>
public static class MtLoraColumnNames
{
    /// <summary>The decoded image (<c>MLImage</c>), <c>Image</c>.</summary>
    public const string Image = "Image";

    /// <summary>The image file's full path (text), <c>ImagePath</c>: what <c>LoadPascalContext</c> gives instead of the image
    /// with <c>PascalContextOptions.ImageColumn = PascalImageColumn.FilePath</c>, for <c>mlContext.Transforms.LoadImages</c>.</summary>
    public const string ImagePath = "ImagePath";

    /// <summary>The sample id (text, e.g. <c>2008_000002</c>), <c>Id</c>.</summary>
    public const string Id = "Id";

    /// <summary>The image height in pixels (Int32), <c>Height</c>: the spatial size of every label and prediction map of the row.</summary>
    public const string Height = "Height";

    /// <summary>The image width in pixels (Int32), <c>Width</c>.</summary>
    public const string Width = "Width";
}
