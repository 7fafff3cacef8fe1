using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// Turns one task's dense map (plain arrays, row-major, <c>width × height</c>) into an RGB picture of the same size.
/// Each returned <see cref="SKBitmap"/> is <see cref="SKColorType.Rgba8888"/>, opaque, and owned by the caller (dispose it);
/// save it with <see cref="PngFile.Save(SKBitmap, string)"/>.
/// </summary>
/// <remarks>
/// Colour conventions:
/// <list type="bullet">
/// <item>Class maps (semantic segmentation, human parts): the <see cref="VocPalette"/> colour of the label
/// (human parts use the VOC entries 0..6); the ignore label 255 is drawn <see cref="IgnoreColor"/> (white), so it stands out from
/// background (black).</item>
/// <item>Saliency: the <em>inferno</em> colormap, 0 → (0, 0, 4) near black, 1 → (252, 255, 164) pale yellow;
/// values are clamped to [0, 1]; NaN is drawn <see cref="IgnoreColor"/>.</item>
/// <item>Surface normals: (R, G, B) = round((n + 1) / 2 · 255) of (x, y, z), components clamped to [-1, 1], so (0, 0, 1) → (128, 128, 255);
/// a pixel with a non-finite component is drawn <see cref="IgnoreColor"/>.</item>
/// </list>
/// </remarks>
public static class ColorMaps
{
    private static readonly SKColor[] InfernoTable = BuildInferno();

    /// <summary>The colour of ignored pixels (label 255, NaN saliency, non-finite normals): white.</summary>
    public static SKColor IgnoreColor { get; } = SKColors.White;

    /// <summary>An RGB image from interleaved bytes.</summary>
    /// <param name="rgb">The pixels, row-major, 3 bytes (R, G, B) each: <c>width × height × 3</c> values.</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Image(ReadOnlySpan<byte> rgb, int width, int height)
    {
        CheckLength(rgb.Length, width, height, 3, nameof(rgb));
        var bitmap = NewBitmap(width, height);
        var pixels = PixelSpan(bitmap);
        int stride = bitmap.RowBytes;
        {
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, width * 4);
                var src = rgb.Slice(y * width * 3, width * 3);
                for (int x = 0; x < width; x++)
                {
                    row[4 * x] = src[3 * x];
                    row[4 * x + 1] = src[3 * x + 1];
                    row[4 * x + 2] = src[3 * x + 2];
                    row[4 * x + 3] = 255;
                }
            }
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>A semantic segmentation class map in the VOC palette.</summary>
    /// <param name="classMap">One label per pixel, row-major (<c>width × height</c> values); 255 = ignore.</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap SemanticSegmentation(ReadOnlySpan<byte> classMap, int width, int height) => Labels(classMap, width, height);

    /// <summary>A human-parts class map in the VOC palette (entries 0..6).</summary>
    /// <param name="classMap">One label per pixel, row-major (<c>width × height</c> values); 255 = ignore.</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap HumanParts(ReadOnlySpan<byte> classMap, int width, int height) => Labels(classMap, width, height);

    /// <summary>Any label map in the VOC palette, 255 drawn <see cref="IgnoreColor"/>.</summary>
    /// <param name="classMap">One label per pixel, row-major (<c>width × height</c> values).</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Labels(ReadOnlySpan<byte> classMap, int width, int height)
    {
        CheckLength(classMap.Length, width, height, 1, nameof(classMap));
        var bitmap = NewBitmap(width, height);
        var pixels = PixelSpan(bitmap);
        int stride = bitmap.RowBytes;
        {
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, width * 4);
                for (int x = 0; x < width; x++) Put(row, x, LabelColor(classMap[y * width + x]));
            }
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>A saliency map as an inferno heat map.</summary>
    /// <param name="saliency">One probability per pixel, row-major (<c>width × height</c> values), expected in [0, 1].</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Saliency(ReadOnlySpan<float> saliency, int width, int height)
    {
        CheckLength(saliency.Length, width, height, 1, nameof(saliency));
        var bitmap = NewBitmap(width, height);
        var pixels = PixelSpan(bitmap);
        int stride = bitmap.RowBytes;
        {
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, width * 4);
                for (int x = 0; x < width; x++) Put(row, x, SaliencyColor(saliency[y * width + x]));
            }
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>A surface-normal map as RGB.</summary>
    /// <param name="normals">Channel-major (CHW) vectors: all x, then all y, then all z (<c>3 × width × height</c> values), expected unit length.</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Normals(ReadOnlySpan<float> normals, int width, int height)
    {
        CheckLength(normals.Length, width, height, 3, nameof(normals));
        int plane = width * height;
        var bitmap = NewBitmap(width, height);
        var pixels = PixelSpan(bitmap);
        int stride = bitmap.RowBytes;
        {
            for (int y = 0; y < height; y++)
            {
                var row = pixels.Slice(y * stride, width * 4);
                for (int x = 0; x < width; x++)
                {
                    int i = y * width + x;
                    Put(row, x, NormalColor(normals[i], normals[plane + i], normals[2 * plane + i]));
                }
            }
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
    }

    /// <summary>The colour of a class label: its VOC palette colour, or <see cref="IgnoreColor"/> for 255.</summary>
    /// <param name="label">The label.</param>
    /// <returns>The colour.</returns>
    public static SKColor LabelColor(byte label) => label == DenseTasks.IgnoreLabel ? IgnoreColor : VocPalette.GetColor(label);

    /// <summary>The inferno colour of a saliency value (clamped to [0, 1]; NaN → <see cref="IgnoreColor"/>).</summary>
    /// <param name="value">The saliency.</param>
    /// <returns>The colour: entry round(value · 255) of the 256-entry inferno table.</returns>
    public static SKColor SaliencyColor(float value)
    {
        if (float.IsNaN(value)) return IgnoreColor;
        return InfernoTable[(int)MathF.Round(Math.Clamp(value, 0f, 1f) * 255f)];
    }

    /// <summary>The colour of a normal vector: round((n + 1) / 2 · 255) per component, R = x, G = y, B = z.</summary>
    /// <param name="x">The x component.</param>
    /// <param name="y">The y component.</param>
    /// <param name="z">The z component.</param>
    /// <returns>The colour; <see cref="IgnoreColor"/> when a component is not finite.</returns>
    public static SKColor NormalColor(float x, float y, float z)
    {
        if (!float.IsFinite(x) || !float.IsFinite(y) || !float.IsFinite(z)) return IgnoreColor;
        return new SKColor(Channel(x), Channel(y), Channel(z));

        static byte Channel(float v) => (byte)MathF.Round((Math.Clamp(v, -1f, 1f) + 1f) * 127.5f);
    }

    /// <summary>The RGB bytes (row-major, 3 per pixel) of a bitmap, whatever its colour type.</summary>
    /// <param name="bitmap">The bitmap.</param>
    /// <returns><c>width × height × 3</c> bytes.</returns>
    public static byte[] ToRgb(SKBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        bool convert = bitmap.ColorType != SKColorType.Rgba8888;
        using var rgba = convert
            ? bitmap.Copy(SKColorType.Rgba8888) ?? throw new ArgumentException($"Cannot convert a {bitmap.ColorType} bitmap to RGB.", nameof(bitmap))
            : null;
        var source = rgba ?? bitmap;
        var rgb = new byte[source.Width * source.Height * 3];
        var pixels = source.GetPixelSpan();
        for (int y = 0; y < source.Height; y++)
        {
            var row = pixels.Slice(y * source.RowBytes, source.Width * 4);
            for (int x = 0; x < source.Width; x++)
            {
                int o = (y * source.Width + x) * 3;
                rgb[o] = row[4 * x];
                rgb[o + 1] = row[4 * x + 1];
                rgb[o + 2] = row[4 * x + 2];
            }
        }
        return rgb;
    }

    /// <summary>The RGB bytes (row-major, 3 per pixel) of an ML.NET image.</summary>
    /// <param name="image">The image.</param>
    /// <returns><c>width × height × 3</c> bytes.</returns>
    public static byte[] ToRgb(MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        // MLImage.Pixels was compiled against SkiaSharp 2.88's GetPixelSpan and fails with SkiaSharp 3
        // (MissingMethodException); GetBGRPixels goes through a member both versions have.
        var rgb = image.GetBGRPixels;
        int n = image.Width * image.Height;
        if (rgb.Length != n * 3) throw new ArgumentException($"The image gave {rgb.Length} BGR bytes; expected {n * 3} (3 per pixel).", nameof(image));
        for (int i = 0; i < n; i++) (rgb[3 * i], rgb[3 * i + 2]) = (rgb[3 * i + 2], rgb[3 * i]);
        return rgb;
    }

    internal static void CheckLength(int length, int width, int height, int perPixel, string name)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"The size must be positive; got {width} × {height}.");
        long expected = (long)width * height * perPixel;
        if (length != expected)
            throw new ArgumentException($"'{name}' has {length} values; expected {expected} ({(perPixel == 1 ? "" : perPixel + " × ")}width {width} × height {height}).", name);
    }

    internal static SKBitmap NewBitmap(int width, int height) =>
        new(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));

    /// <summary>The writable pixel memory of a bitmap made by <see cref="NewBitmap"/>; call NotifyPixelsChanged after writing.</summary>
    internal static unsafe Span<byte> PixelSpan(SKBitmap bitmap) => new((void*)bitmap.GetPixels(), bitmap.ByteCount);

    private static void Put(Span<byte> row, int x, SKColor color)
    {
        row[4 * x] = color.Red;
        row[4 * x + 1] = color.Green;
        row[4 * x + 2] = color.Blue;
        row[4 * x + 3] = 255;
    }

    private static SKColor[] BuildInferno()
    {
        // ScottPlot ships matplotlib's 256-entry inferno table; sample it at its own entries.
        var inferno = new ScottPlot.Colormaps.Inferno();
        var table = new SKColor[256];
        for (int i = 0; i < 256; i++)
        {
            var c = inferno.GetColor(i / 255.0);
            table[i] = new SKColor(c.R, c.G, c.B);
        }
        return table;
    }
}
