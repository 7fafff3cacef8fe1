using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Data.Nyud;

/// <summary>
/// A lazy <see cref="IDataView"/> over one split of a NYUD_MT root, created by <c>mlContext.Data.LoadNyud(root, split)</c>: one
/// row per id of <c>gt_sets/&lt;split&gt;.txt</c>, in file order. Only the split list is read, and the five files of every id
/// checked to exist, when the view is created; each getter decodes its own column for the current row.
/// </summary>
/// <remarks>
/// <para>Columns, every map at the image's resolution, row-major (row y, column x at <c>y·Width + x</c>):</para>
/// <list type="table">
/// <item><term><c>ImagePath</c></term><description>Text: the full path of <c>images/&lt;id&gt;.jpg</c> (for
/// <c>mlContext.Transforms.LoadImages</c>).</description></item>
/// <item><term><c>Image</c></term><description><see cref="ImageDataViewType"/>: the image decoded by
/// <see cref="MLImage.CreateFromFile(string)"/>; each getter call decodes a new image, which the caller owns.</description></item>
/// <item><term><c>Id</c></term><description>Text: the sample id.</description></item>
/// <item><term><c>Height</c>, <c>Width</c></term><description>Int32: the image size (from the file header).</description></item>
/// <item><term>one label column per task of <see cref="DenseTaskDescriptor.Nyud"/></term><description>named by its
/// <see cref="DenseTaskDescriptor.LabelColumnName"/>, a vector of its <see cref="DenseTaskDescriptor.LabelItemType"/> with
/// <see cref="DenseTaskDescriptor.LabelChannels"/>·Height·Width values, decoded by <see cref="NyudLayout"/>:
/// <c>SemsegLabel</c> (Byte: 0..39, 255 = unlabelled), <c>DepthLabel</c> (Single: metres, 0 where the sensor gave nothing),
/// <c>NormalsLabel</c> (Single, planar x, y, z planes) and <c>EdgeLabel</c> (Byte: 1 edge, 0 not).</description></item>
/// </list>
/// <para>A label whose size differs from its image's, or that holds a value the reference's loader would not (a class above
/// 40, a negative or NaN depth, an edge value outside 0..1), fails the getter with an <see cref="InvalidDataException"/>
/// naming the file. <c>MtLoraEstimator.Fit</c> trains these tasks from this view (with
/// <see cref="Preprocessing.AugmentationDraws.Nyud"/> for the reference's NYUD augmentation) and
/// <c>ml.MultiTask().Evaluate(model, view)</c> scores them (see the README, "NYUD-v2").</para>
/// </remarks>
public sealed class NyudDataView : IDataView
{
    private readonly string[] _ids;
    private readonly DenseFileRows _rows;

    internal NyudDataView(string root, string split)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrEmpty(split);
        Root = Path.GetFullPath(root);
        if (!Directory.Exists(Root)) throw new DirectoryNotFoundException($"NYUD_MT root '{Root}' does not exist.");
        Split = split;
        _ids = NyudLayout.ReadSplit(Root, split).ToArray();
        _rows = new DenseFileRows(_ids, _ids.Select(id => NyudLayout.ImagePath(Root, id)).ToArray(), Tasks, ReadLabel);
    }

    /// <summary>The dataset root (full path).</summary>
    public string Root { get; }

    /// <summary>The split (<c>train</c>, <c>val</c>).</summary>
    public string Split { get; }

    /// <summary>The tasks whose label columns the view has: <see cref="DenseTaskDescriptor.Nyud"/> (semseg, depth, normals, edge).</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks => DenseTaskDescriptor.Nyud;

    /// <summary>The ids of the rows, in row order.</summary>
    public IReadOnlyList<string> Ids => _ids;

    /// <inheritdoc/>
    public DataViewSchema Schema => _rows.Schema;

    /// <summary>True: cursors can visit the rows in a random order drawn from the <see cref="Random"/> they are given.</summary>
    public bool CanShuffle => true;

    /// <summary>The number of rows.</summary>
    /// <returns>The count of ids in the split list.</returns>
    public long? GetRowCount() => _ids.Length;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        _rows.GetRowCursor(columnsNeeded, rand);

    /// <summary>One cursor (the view decodes on the caller's thread; ML.NET accepts fewer cursors than asked for).</summary>
    /// <param name="columnsNeeded">The columns to read.</param>
    /// <param name="n">The number of cursors asked for.</param>
    /// <param name="rand">The shuffling generator, or null for file order.</param>
    /// <returns>An array of one cursor.</returns>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private Array ReadLabel(int t, int row, int width, int height) => Tasks[t].Kind switch
    {
        DenseTaskKind.Segmentation => NyudLayout.ReadSemseg(Root, _ids[row], width, height),
        DenseTaskKind.Depth => NyudLayout.ReadDepth(Root, _ids[row], width, height),
        DenseTaskKind.SurfaceNormals => NyudLayout.ReadNormals(Root, _ids[row], width, height),
        _ => NyudLayout.ReadEdge(Root, _ids[row], width, height),
    };
}
