namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>What the PASCAL-Context loader does when a label map's size differs from its image's.</summary>
public enum LabelSizeMismatchHandling
{
    /// <summary>
    /// Resize the label to the image size, as the reference does: nearest neighbour (OpenCV rules) for class maps,
    /// bicubic for normals. The default.
    /// </summary>
    ResizeToImage,

    /// <summary>Treat the sample as bad input: an error naming the file and both sizes (or a skipped sample, see <see cref="PascalContextOptions.SkipBadSamples"/>).</summary>
    Error,
}

/// <summary>How the PASCAL-Context loader provides each sample's image.</summary>
public enum PascalImageColumn
{
    /// <summary>An <c>Image</c> column holding the decoded image (<c>MLImage</c>). The default. ML.NET cannot store an image
    /// column in a model.zip's input schema, so a model saved with this view's schema loads without it.</summary>
    DecodedImage,

    /// <summary>
    /// An <c>ImagePath</c> text column holding the image file's full path, and no <c>Image</c> column: decode it inside the
    /// pipeline with <c>mlContext.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")</c>, so that
    /// a saved model.zip takes file paths as its input and stores its complete input schema. The loader checks that the
    /// file exists (and <see cref="PascalContextOptions.SkipBadSamples"/> leaves out a sample whose file is missing); decoding
    /// errors come from <c>LoadImages</c>.
    /// </summary>
    FilePath,
}

/// <summary>Options of <c>mlContext.Data.LoadPascalContext</c>.</summary>
public sealed class PascalContextOptions
{
    /// <summary>
    /// When true, samples whose files are missing, unreadable, truncated or inconsistent are left out instead of failing
    /// the whole read; <see cref="PascalContextDataView.SkippedSamples"/> lists each one with the reason. Missing files are
    /// found when the view is created; decoding errors when a cursor reaches the sample (the cursor then decodes the
    /// requested columns as it moves, so it can skip the row). With skipping on, <see cref="PascalContextDataView.GetRowCount"/>
    /// returns null, since decoding failures are only known after a pass. Default false: the first bad sample throws.
    /// </summary>
    public bool SkipBadSamples { get; set; }

    /// <summary>What to do when a label's size differs from the image's. Default <see cref="LabelSizeMismatchHandling.ResizeToImage"/> (the reference's behaviour).</summary>
    public LabelSizeMismatchHandling LabelSizeMismatch { get; set; } = LabelSizeMismatchHandling.ResizeToImage;

    /// <summary>
    /// Use <c>ImageSets/Parts/&lt;split&gt;.txt</c> (JSON: id → category ids of the annotated objects) to decide which
    /// images have human parts, when it exists and lists exactly the split's ids, as the reference does. When false, or when
    /// the file is missing or stale, the same facts are derived from each <c>human_parts/&lt;id&gt;.mat</c> in memory (a person
    /// object with a non-empty mask); nothing is ever written into the dataset folder. Default true.
    /// </summary>
    public bool UsePartsIndexFile { get; set; } = true;

    /// <summary>
    /// When only the human-parts task is requested, keep only the images with annotated persons, as the reference does
    /// (so that every sample of a batch has a target). This reads the parts index (or every <c>.mat</c> file) when the view
    /// is created. Default true.
    /// </summary>
    public bool HumanPartsOnlyKeepsAnnotatedImages { get; set; } = true;

    /// <summary>
    /// Whether the view has the decoded <c>Image</c> column or an <c>ImagePath</c> column with the file's full path (see
    /// <see cref="PascalImageColumn"/>). Default <see cref="PascalImageColumn.DecodedImage"/>.
    /// </summary>
    public PascalImageColumn ImageColumn { get; set; } = PascalImageColumn.DecodedImage;
}
