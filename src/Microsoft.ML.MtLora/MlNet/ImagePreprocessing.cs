using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

/// <summary>
/// The reference's evaluation preprocessing of an image (data/mtl_ds.py, validation pipeline): <c>FixedResize</c> to
/// S×S ignoring the aspect ratio with OpenCV's bicubic interpolation (the data pipeline's implementation),
/// the cast to 8 bits (clamped first: the reference's unclamped cast wraps cubic overshoot, a negligible deviation),
/// then <c>ToTensor</c> (÷255) and <c>Normalize(mean, std)</c>. Saved with the model so that a loaded model
/// preprocesses exactly as the trained one did.
/// </summary>
internal sealed class ImagePreprocessing
{
    /// <summary>The only interpolation written so far; stored so that a later format can add others.</summary>
    public const string Bicubic = "bicubic";

    public ImagePreprocessing(int size, float[] mean, float[] std, string interpolation = Bicubic)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, "The network input size must be positive.");
        if (mean.Length != 3 || std.Length != 3) throw new ArgumentException("Mean and std need 3 values (R, G, B).");
        if (std.Any(s => !(s > 0))) throw new ArgumentException("Every std value must be positive.", nameof(std));
        if (interpolation != Bicubic) throw new ArgumentException($"Interpolation '{interpolation}' is not supported (only '{Bicubic}').", nameof(interpolation));
        Size = size;
        Mean = mean;
        Std = std;
        Interpolation = interpolation;
    }

    /// <summary>The square network input size S.</summary>
    public int Size { get; }

    /// <summary>Per-channel mean (RGB), on the 0..1 scale.</summary>
    public float[] Mean { get; }

    /// <summary>Per-channel standard deviation (RGB), on the 0..1 scale.</summary>
    public float[] Std { get; }

    /// <summary>The resize interpolation (<c>bicubic</c>).</summary>
    public string Interpolation { get; }

    /// <summary>The paper's setting at a given size: bicubic, ImageNet mean and std.</summary>
    public static ImagePreprocessing Reference(int size) => new(size, (float[])DenseTransforms.Mean.Clone(), (float[])DenseTransforms.Std.Clone());

    /// <summary>Turns one image into the normalised network input (3, S, S), float32 on the CPU.</summary>
    /// <remarks>The same steps as the training pipeline's evaluation path (<see cref="DenseImagePreprocessing.ToEvalTensor"/>),
    /// with this model's saved mean and std.</remarks>
    public Tensor ToTensor(MLImage image)
    {
        var planar = new float[3 * Size * Size];
        Normalize(image, planar, new TransformScratch());
        return DenseImagePreprocessing.ImageTensor(planar, Size);                           // (3, S, S)
    }

    /// <summary>
    /// The same pre-processing into a (3, S, S) planar buffer, in managed code (no TorchSharp), so that loader workers can
    /// run it off the thread that makes the tensors (see <see cref="DenseBatchReader"/> for why that matters).
    /// </summary>
    internal void Normalize(MLImage image, Span<float> destination, TransformScratch scratch) =>
        DenseImagePreprocessing.Normalize(image, Transform, destination, scratch);

    /// <summary>The managed pre-processing with this model's size, mean and std.</summary>
    internal SampleTransform Transform => _transform ??= new SampleTransform(Size, AugmentationGeometry.SinglePass, Mean, Std);

    private SampleTransform? _transform;
}
