namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>Where a task's labels live in a <see cref="SourceSample"/> and a batch.</summary>
internal enum LabelSlotKind
{
    /// <summary>A PASCAL class-map slot (<see cref="SourceSample.ClassMaps"/>; semseg 0, human parts 1, saliency 2): the PASCAL rules apply.</summary>
    Pascal,

    /// <summary><see cref="SourceSample.Normals"/>: bicubic, rotated with the image, renormalised.</summary>
    Normals,

    /// <summary><see cref="SourceSample.ExtraMaps"/>: a segmentation or binary map of another task, nearest.</summary>
    ExtraMap,

    /// <summary><see cref="SourceSample.DepthMaps"/>: a depth map, nearest.</summary>
    Depth,
}

/// <summary>A task's slot: its kind and its index among the slots of that kind.</summary>
internal readonly record struct LabelSlot(LabelSlotKind Kind, int Index);

/// <summary>
/// The per-reader assignment of label slots to tasks: tasks with a PASCAL built-in's definition keep the PASCAL slots (so their
/// batches are those of the PASCAL pipeline, bit for bit); the surface-normals task uses the normals slot; every other
/// segmentation/binary-map task gets an extra byte slot and every depth task a float slot.
/// </summary>
internal sealed class LabelLayout
{
    private readonly Dictionary<DenseTaskDescriptor, LabelSlot> _slots = [];

    private LabelLayout()
    {
    }

    /// <summary>Whether every task has a PASCAL built-in's definition (the PASCAL-Context fast path can read them).</summary>
    public bool AllPascal { get; private set; }

    /// <summary>The tasks in extra or depth slots, in the caller's order.</summary>
    public IReadOnlyList<(DenseTaskDescriptor Task, LabelSlot Slot)> Extras { get; private set; } = [];

    /// <summary>Whether any task is in an extra or depth slot.</summary>
    public bool HasExtras => Extras.Count > 0;

    /// <summary>Extra byte slots used.</summary>
    public int ExtraMapCount { get; private set; }

    /// <summary>Depth slots used.</summary>
    public int DepthCount { get; private set; }

    public LabelSlot this[DenseTaskDescriptor task] => _slots[task];

    /// <summary>The layout of a task list.</summary>
    /// <exception cref="ArgumentException">Two surface-normals tasks (the pipeline reads one); the message names them.</exception>
    public static LabelLayout For(IReadOnlyList<DenseTaskDescriptor> tasks)
    {
        var layout = new LabelLayout { AllPascal = true };
        var extras = new List<(DenseTaskDescriptor, LabelSlot)>();
        DenseTaskDescriptor? normals = null;
        foreach (var task in tasks)
        {
            bool pascal = DenseTaskDescriptor.Pascal.Any(p => p.SameDefinition(task));
            layout.AllPascal &= pascal;
            LabelSlot slot;
            if (task.Kind == DenseTaskKind.SurfaceNormals)
            {
                if (normals is not null)
                    throw new ArgumentException($"Tasks '{normals.Name}' and '{task.Name}' are both surface normals; the batch pipeline reads one surface-normals task.", nameof(tasks));
                normals = task;
                slot = new LabelSlot(LabelSlotKind.Normals, 0);
            }
            else if (pascal)
            {
                slot = new LabelSlot(LabelSlotKind.Pascal, SourceSample.Slot(task.ToPascalTask()));
            }
            else
            {
                slot = task.Kind == DenseTaskKind.Depth
                    ? new LabelSlot(LabelSlotKind.Depth, layout.DepthCount++)
                    : new LabelSlot(LabelSlotKind.ExtraMap, layout.ExtraMapCount++);
                extras.Add((task, slot));
            }
            layout._slots[task] = slot;
        }
        layout.Extras = extras;
        return layout;
    }
}
