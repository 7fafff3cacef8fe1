using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Turns images into the network's input as the reference's evaluation pipeline does: bicubic resize (OpenCV rules) to
/// S×S ignoring the aspect ratio, clamp and truncate to 0..255, scale to [0, 1], ImageNet mean/std normalisation.
/// </summary>
public static class DenseImagePreprocessing
{
    /// <summary>The reference's training and evaluation size (448).</summary>
    public const int DefaultImageSize = 448;

    /// <summary>
    /// The normalised (3, S, S) float32 CPU tensor of one image of any size, for inference (the transformer's input).
    /// </summary>
    /// <param name="image">The image (BGRA or RGBA, as <see cref="MLImage"/> stores it).</param>
    /// <param name="imageSize">S, the square input size (448 for the reference's models).</param>
    /// <returns>A new tensor the caller owns: (3, S, S), channels R, G, B.</returns>
    public static Tensor ToEvalTensor(MLImage image, int imageSize = DefaultImageSize)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfLessThan(imageSize, 1);
        TorchRuntime.Initialize();
        var planar = new float[3 * imageSize * imageSize];
        Normalize(image, new SampleTransform(imageSize, AugmentationGeometry.SinglePass), planar, new TransformScratch());
        return ImageTensor(planar, imageSize);
    }

    /// <summary>A (3, S, S) float32 tensor holding a copy of a planar image (torch.empty and a memory copy: no Scalar).</summary>
    internal static Tensor ImageTensor(ReadOnlySpan<float> planar, int size)
    {
        var result = torch.empty([3, size, size], ScalarType.Float32);
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(planar).CopyTo(result.bytes);
        return result;
    }

    /// <summary>
    /// The evaluation pre-processing of one image into a (3, S, S) planar buffer, in managed code (no TorchSharp, so loader
    /// workers may call it): the image's pixels, bicubic resize to S×S, uint8 cast and the transform's mean/std.
    /// </summary>
    /// <exception cref="NotSupportedException">The image's pixel format is not 32-bit BGRA or RGBA.</exception>
    internal static void Normalize(MLImage image, SampleTransform transform, Span<float> destination, TransformScratch scratch)
    {
        bool bgra = MLImagePixels.IsBgra(image);
        var pixels = scratch.N(4 * image.Width * image.Height);
        MLImagePixels.CopyTo(image, pixels);
        transform.ResizeAndNormalize(pixels, bgra, image.Width, image.Height, destination, scratch);
    }

    /// <summary>The image's pixels as a (3, H, W) float32 CPU tensor of RGB values 0..255 (one copy, no per-pixel managed loop).</summary>
    /// <param name="image">The image.</param>
    /// <returns>A new tensor the caller owns.</returns>
    /// <exception cref="NotSupportedException">The image's pixel format is not 32-bit BGRA or RGBA.</exception>
    public static Tensor ToRgbTensor(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        TorchRuntime.Initialize();
        int w = image.Width, h = image.Height;
        long[] channels = MLImagePixels.IsBgra(image) ? [2, 1, 0] : [0, 1, 2];
        using var scope = NewDisposeScope();
        var raw = torch.empty([h, w, 4], ScalarType.Byte);                                 // (H, W, 4)
        MLImagePixels.CopyTo(image, raw.bytes);
        var index = torch.tensor(channels, ScalarType.Int64);
        return raw.index_select(2, index).permute(2, 0, 1).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope(); // (3, H, W)
    }
}
