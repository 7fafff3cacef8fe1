using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Pascal;

namespace Microsoft.ML;

/// <summary>Loading the PASCAL-Context multi-task dataset (PASCAL_MT) into ML.NET: <c>mlContext.Data.LoadPascalContext(...)</c>.</summary>
public static class PascalContextCatalog
{
    /// <summary>
    /// Opens one split of a PASCAL_MT root as a lazy <see cref="IDataView"/> with the columns <c>Image</c>, <c>Id</c>,
    /// <c>Height</c>, <c>Width</c> and one label column per task (see <see cref="PascalContextDataView"/> for shapes and the
    /// ignore convention). Only the split file is read, and file existence checked, when the view is created.
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The PASCAL_MT folder (holding JPEGImages/, ImageSets/, semseg/, human_parts/, normals_distill/, sal_distill/, pascal-context/).</param>
    /// <param name="split">The split: <c>train</c> or <c>val</c> (any name with a file ImageSets/Context/&lt;split&gt;.txt).</param>
    /// <param name="tasks">The tasks whose labels to load; null for all four.</param>
    /// <param name="options">Loader options; null for the defaults.</param>
    /// <returns>The view.</returns>
    /// <exception cref="DirectoryNotFoundException">The root does not exist.</exception>
    /// <exception cref="FileNotFoundException">The split file, or a file a sample needs, is missing (unless <see cref="PascalContextOptions.SkipBadSamples"/>).</exception>
    public static PascalContextDataView LoadPascalContext(this DataOperationsCatalog catalog, string root, string split,
        IEnumerable<DenseTask>? tasks = null, PascalContextOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new PascalContextDataView(root, split, tasks, options);
    }

    /// <summary>
    /// Opens one split of a PASCAL_MT root, with the tasks given by their reference names, comma-separated
    /// (e.g. <c>"semseg,normals,sal,human_parts"</c>).
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The PASCAL_MT folder.</param>
    /// <param name="split">The split: <c>train</c> or <c>val</c>.</param>
    /// <param name="tasks">Comma-separated task names: <c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>.</param>
    /// <param name="options">Loader options; null for the defaults.</param>
    /// <returns>The view.</returns>
    /// <exception cref="ArgumentException">A task name is unknown.</exception>
    public static PascalContextDataView LoadPascalContext(this DataOperationsCatalog catalog, string root, string split,
        string tasks, PascalContextOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(tasks);
        var parsed = tasks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(DenseTasks.Parse).ToArray();
        return new PascalContextDataView(root, split, parsed, options);
    }
}
