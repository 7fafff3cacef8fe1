using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// What <see cref="PredictionGrid"/> draws for one image: the input and any subset of the four tasks' predictions and
/// ground-truth labels, all as plain row-major arrays of one <see cref="Width"/> × <see cref="Height"/>.
/// </summary>
/// <remarks>
/// Array layouts (the same as <see cref="ColorMaps"/>): class maps one byte per pixel (255 = ignore); saliency one float per pixel
/// in [0, 1] (a probability, not a logit); normals channel-major (CHW: all x, then all y, then all z) unit vectors; the input
/// image 3 bytes (R, G, B) per pixel. Set either <see cref="Image"/> or <see cref="ImageBitmap"/>, not both.
/// </remarks>
public sealed class PredictionPanels
{
    /// <summary>Creates an empty set of panels for maps of the given size.</summary>
    /// <param name="width">The width of every map, in pixels.</param>
    /// <param name="height">The height of every map, in pixels.</param>
    public PredictionPanels(int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"The map size must be positive; got {width} × {height}.");
        Width = width;
        Height = height;
    }

    /// <summary>The width of every map, in pixels.</summary>
    public int Width { get; }

    /// <summary>The height of every map, in pixels.</summary>
    public int Height { get; }

    /// <summary>The input image as RGB bytes, <c>Width × Height × 3</c>, row-major.</summary>
    public byte[]? Image { get; set; }

    /// <summary>The input image as a bitmap of any size; it is stretched to <c>Width × Height</c> (the size the network saw). Not disposed by the grid.</summary>
    public SKBitmap? ImageBitmap { get; set; }

    /// <summary>Predicted semantic segmentation labels (0..20), <c>Width × Height</c>.</summary>
    public byte[]? SemanticSegmentation { get; set; }

    /// <summary>Predicted human-parts labels (0..6), <c>Width × Height</c>.</summary>
    public byte[]? HumanParts { get; set; }

    /// <summary>Predicted saliency probabilities in [0, 1], <c>Width × Height</c>.</summary>
    public float[]? Saliency { get; set; }

    /// <summary>Predicted unit normals, CHW, <c>3 × Width × Height</c>.</summary>
    public float[]? SurfaceNormals { get; set; }

    /// <summary>Ground-truth semantic segmentation labels (255 = ignore), <c>Width × Height</c>.</summary>
    public byte[]? SemanticSegmentationLabel { get; set; }

    /// <summary>Ground-truth human-parts labels (255 = ignore), <c>Width × Height</c>.</summary>
    public byte[]? HumanPartsLabel { get; set; }

    /// <summary>Ground-truth saliency in [0, 1], <c>Width × Height</c>.</summary>
    public float[]? SaliencyLabel { get; set; }

    /// <summary>Ground-truth unit normals, CHW, <c>3 × Width × Height</c>.</summary>
    public float[]? SurfaceNormalsLabel { get; set; }

    /// <summary>Whether the input image is set (as bytes or as a bitmap).</summary>
    internal bool HasImage => Image is not null || ImageBitmap is not null;

    /// <summary>Whether a prediction (<paramref name="groundTruth"/> false) or a label (true) of the task is set.</summary>
    internal bool Has(DenseTask task, bool groundTruth) => task switch
    {
        DenseTask.SemanticSegmentation => (groundTruth ? SemanticSegmentationLabel : SemanticSegmentation) is not null,
        DenseTask.HumanParts => (groundTruth ? HumanPartsLabel : HumanParts) is not null,
        DenseTask.Saliency => (groundTruth ? SaliencyLabel : Saliency) is not null,
        DenseTask.SurfaceNormals => (groundTruth ? SurfaceNormalsLabel : SurfaceNormals) is not null,
        _ => false,
    };

    /// <summary>The class map of a classification task's prediction or label, when set.</summary>
    internal byte[]? ClassMap(DenseTask task, bool groundTruth) => task switch
    {
        DenseTask.SemanticSegmentation => groundTruth ? SemanticSegmentationLabel : SemanticSegmentation,
        DenseTask.HumanParts => groundTruth ? HumanPartsLabel : HumanParts,
        _ => null,
    };

    /// <summary>Checks every array set against the size; the message names the property at fault.</summary>
    internal void Validate()
    {
        if (Image is not null && ImageBitmap is not null)
            throw new ArgumentException("PredictionPanels: set either Image or ImageBitmap, not both.");
        Check(Image, 3, nameof(Image));
        Check(SemanticSegmentation, 1, nameof(SemanticSegmentation));
        Check(HumanParts, 1, nameof(HumanParts));
        Check(Saliency, 1, nameof(Saliency));
        Check(SurfaceNormals, 3, nameof(SurfaceNormals));
        Check(SemanticSegmentationLabel, 1, nameof(SemanticSegmentationLabel));
        Check(HumanPartsLabel, 1, nameof(HumanPartsLabel));
        Check(SaliencyLabel, 1, nameof(SaliencyLabel));
        Check(SurfaceNormalsLabel, 3, nameof(SurfaceNormalsLabel));
        if (!HasImage && !DenseTasks.All.Any(t => Has(t, false) || Has(t, true)))
            throw new ArgumentException("PredictionPanels: nothing to draw; set the image, a prediction or a label.");
    }

    private void Check(Array? values, int perPixel, string name)
    {
        if (values is null) return;
        long expected = (long)Width * Height * perPixel;
        if (values.Length != expected)
            throw new ArgumentException($"PredictionPanels.{name} has {values.Length} values; expected {expected} ({(perPixel == 1 ? "" : perPixel + " × ")}Width {Width} × Height {Height}).");
    }
}
