using Microsoft.ML.MtLora.Data.Nyud;

namespace Microsoft.ML;

/// <summary>Loading the NYUD-v2 multi-task dataset (NYUD_MT) into ML.NET: <c>mlContext.Data.LoadNyud(root, split)</c>.</summary>
public static class NyudCatalog
{
    /// <summary>
    /// Opens one split of a NYUD_MT root as a lazy <see cref="IDataView"/> with the columns <c>ImagePath</c>, <c>Image</c>,
    /// <c>Id</c>, <c>Height</c>, <c>Width</c> and one label column per NYUD task (<c>SemsegLabel</c>, <c>DepthLabel</c>,
    /// <c>NormalsLabel</c>, <c>EdgeLabel</c>; see <see cref="NyudDataView"/>), decoded as the reference's
    /// <c>data/mtl_ds.py::NYUD_MT</c> does. Only the split list is read, and file existence checked, when the view is created.
    /// </summary>
    /// <param name="catalog">The data catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The NYUD_MT folder (holding images/, segmentation/, depth/, normals/, edge/, gt_sets/).</param>
    /// <param name="split">The split: <c>train</c> or <c>val</c> (any name with a file gt_sets/&lt;split&gt;.txt).</param>
    /// <returns>The view.</returns>
    /// <exception cref="DirectoryNotFoundException">The root does not exist.</exception>
    /// <exception cref="FileNotFoundException">The split list, or a file of a listed id, is missing; the message names it.</exception>
    public static NyudDataView LoadNyud(this DataOperationsCatalog catalog, string root, string split)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new NyudDataView(root, split);
    }
}
