using System.Globalization;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// The largest image the readers decode. A few bytes of header can claim any size, and decoders allocate the whole
/// image before they find that the data is missing, so a hostile or damaged file could otherwise ask for gigabytes.
/// </summary>
internal static class ImageLimits
{
    /// <summary>
    /// 178,956,970 pixels: the size at which PIL (which the reference reads its images with) refuses an image as a
    /// decompression bomb (<c>2 × Image.MAX_IMAGE_PIXELS</c>). PASCAL images are about 0.19 megapixels.
    /// </summary>
    public const long MaxPixels = 178_956_970;

    /// <summary>The message for an image over <see cref="MaxPixels"/>.</summary>
    public static string TooLarge(long width, long height) => string.Create(CultureInfo.InvariantCulture,
        $"the header says {width}x{height} = {width * height:N0} pixels, more than the {MaxPixels:N0}-pixel limit (PIL's decompression-bomb limit); the file is damaged or not a dataset image.");
}
