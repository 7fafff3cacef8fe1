namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// A single-channel 8-bit image: palette indices or gray values, one byte per pixel, rows top to bottom.
/// This is what a label map is (semantic classes, part ids, saliency), as opposed to a colour image.
/// </summary>
public sealed class IndexedImage
{
    /// <summary>Wraps a row-major pixel buffer (no copy).</summary>
    /// <param name="width">Width in pixels, at least 1.</param>
    /// <param name="height">Height in pixels, at least 1.</param>
    /// <param name="pixels">Row-major pixels, exactly <paramref name="width"/> × <paramref name="height"/> bytes.</param>
    public IndexedImage(int width, int height, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "The width must be at least 1.");
        if (height <= 0) throw new ArgumentOutOfRangeException(nameof(height), height, "The height must be at least 1.");
        if ((long)width * height != pixels.Length)
            throw new ArgumentException($"The pixel buffer holds {pixels.Length} bytes; a {width}x{height} image needs {(long)width * height}.", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>Pixels, row-major (index <c>y * Width + x</c>), one byte each.</summary>
    public byte[] Pixels { get; }

    /// <summary>The pixel at column <paramref name="x"/>, row <paramref name="y"/>.</summary>
    public byte this[int x, int y] => Pixels[y * Width + x];
}
