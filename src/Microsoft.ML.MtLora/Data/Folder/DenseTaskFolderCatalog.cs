using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Folder;

namespace Microsoft.ML;

/// <summary>Loading your own dense-task dataset from a folder into ML.NET: <c>mlContext.Data.LoadDenseTaskFolder(root, tasks)</c>.</summary>
public static class DenseTaskFolderCatalog
{
    /// <summary>
    /// Opens a folder of images and per-task label files as a lazy <see cref="IDataView"/> with the columns <c>ImagePath</c>,
    /// <c>Image</c>, <c>Id</c>, <c>Height</c>, <c>Width</c> and one label column per task, named by its
    /// <see cref="DenseTaskDescriptor.LabelColumnName"/> and typed by its <see cref="DenseTaskDescriptor.LabelItemType"/>, which
    /// <c>MtLoraEstimator.Fit</c> and <c>Evaluate</c> read as they are. Layout: <c>images/&lt;id&gt;.jpg|.png</c>, one folder of
    /// label files per task (<c>&lt;task name&gt;/&lt;id&gt;.png|.npy</c>), and optional split lists
    /// <c>splits/&lt;split&gt;.txt</c>; see <see cref="DenseTaskFolderDataView"/> for the label formats. The ids are listed, and
    /// every file checked to exist, when the view is created; each label is decoded when a cursor reads it.
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The dataset folder.</param>
    /// <param name="tasks">The tasks whose labels to load (each name once).</param>
    /// <param name="split">The split to read, <c>&lt;SplitsFolder&gt;/&lt;split&gt;.txt</c>; null (the default) for every image
    /// of the images folder, sorted by id (ordinal).</param>
    /// <param name="options">Folder names and the depth PNG scale; null for the defaults.</param>
    /// <returns>The view.</returns>
    /// <exception cref="ArgumentException">No task, a task name given twice, or two tasks with the same label column.</exception>
    /// <exception cref="DirectoryNotFoundException">The root, the images folder or a task's label folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The split list, a listed image or a label file of an image is missing.</exception>
    /// <exception cref="InvalidDataException">The images folder or the split list holds no image, or an id is listed twice.</exception>
    public static DenseTaskFolderDataView LoadDenseTaskFolder(this DataOperationsCatalog catalog, string root,
        IEnumerable<DenseTaskDescriptor> tasks, string? split = null, DenseTaskFolderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new DenseTaskFolderDataView(root, tasks, split, options);
    }
}
