namespace Microsoft.ML.MtLora.Data.Folder;

/// <summary>Options of <c>mlContext.Data.LoadDenseTaskFolder</c>: where the images, label folders and split lists are, and how
/// 16-bit depth PNGs convert to metres.</summary>
public sealed class DenseTaskFolderOptions
{
    /// <summary>The folder of the images under the root, <c>&lt;id&gt;.jpg</c>, <c>.jpeg</c> or <c>.png</c>. Default <c>images</c>.</summary>
    public string ImagesFolder { get; set; } = "images";

    /// <summary>The folder of the split lists under the root, <c>&lt;split&gt;.txt</c> with one id per line (as NYUD_MT's
    /// <c>gt_sets</c>). Default <c>splits</c>.</summary>
    public string SplitsFolder { get; set; } = "splits";

    /// <summary>The label folder of a task under the root, by task name; a task not listed uses its name
    /// (<c>Segmentation("defects", 5)</c> reads <c>defects/&lt;id&gt;.png</c>). Default: empty.</summary>
    public IDictionary<string, string> LabelFolders { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Metres per unit of a 16-bit grayscale depth PNG: depth = value × scale, 0 stays 0 (a hole). Default 0.001
    /// (millimetres, as Kinect/RealSense depth PNGs and NYU-v2's raw depth store them). <c>.npy</c> depths are read as metres.</summary>
    public float DepthPngScale { get; set; } = 0.001f;
}
