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
/// <item>Saliency: the <em>inferno</em> colormap, 0 → (0, 0, 3) near black, 1 → (252, 254, 164) pale yellow;
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
        return Paint(classMap, width, height, static (v, i) => LabelColor(v[i]));
    }

    /// <summary>A saliency map as an inferno heat map.</summary>
    /// <param name="saliency">One probability per pixel, row-major (<c>width × height</c> values), expected in [0, 1].</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Saliency(ReadOnlySpan<float> saliency, int width, int height)
    {
        CheckLength(saliency.Length, width, height, 1, nameof(saliency));
        return Paint(saliency, width, height, static (v, i) => SaliencyColor(v[i]));
    }

    /// <summary>A depth (or any dense regression) map as an inferno picture, scaled to the image's own range: the nearest
    /// value dark, the farthest bright (a constant map is dark; a non-finite value gets <see cref="IgnoreColor"/>).</summary>
    /// <param name="depth">One value per pixel, row-major (<c>width × height</c> values).</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <returns>The picture.</returns>
    public static SKBitmap Depth(ReadOnlySpan<float> depth, int width, int height)
    {
        CheckLength(depth.Length, width, height, 1, nameof(depth));
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (var v in depth)
            if (float.IsFinite(v)) { min = Math.Min(min, v); max = Math.Max(max, v); }
        float scale = max > min ? 1f / (max - min) : 0f;
        return Paint(depth, width, height, (v, i) => float.IsFinite(v[i]) ? SaliencyColor((v[i] - min) * scale) : IgnoreColor);
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
        return Paint(normals, width, height, (v, i) => NormalColor(v[i], v[plane + i], v[2 * plane + i]));
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
        // GetBGRPixels gives 3 bytes a pixel whatever the image's pixel format (MLImage.Pixels is BGRA or RGBA, 4 bytes).
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

    private delegate SKColor ColorAt<T>(ReadOnlySpan<T> values, int pixel);

    /// <summary>A new bitmap whose pixel <c>i</c> (row-major) gets <paramref name="colorAt"/>(values, i).</summary>
    private static SKBitmap Paint<T>(ReadOnlySpan<T> values, int width, int height, ColorAt<T> colorAt)
    {
        var bitmap = NewBitmap(width, height);
        var pixels = PixelSpan(bitmap);
        int stride = bitmap.RowBytes;
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * stride, width * 4);
            for (int x = 0; x < width; x++) Put(row, x, colorAt(values, y * width + x));
        }
        bitmap.NotifyPixelsChanged();
        return bitmap;
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
        var bytes = InfernoBytes;
        var table = new SKColor[256];
        for (int i = 0; i < 256; i++) table[i] = new SKColor(bytes[3 * i], bytes[3 * i + 1], bytes[3 * i + 2]);
        return table;
    }

    /// <summary>
    /// matplotlib's 256-entry <em>inferno</em> colormap (Nathaniel J. Smith, Stefan van der Walt, Eric Firing; CC0), as the
    /// 8-bit values: entry i is <c>inferno.colors[i]</c> with each component scaled by 255 and truncated, as matplotlib does for
    /// <c>bytes=True</c>; R, G, B per entry.
    /// </summary>
    private static ReadOnlySpan<byte> InfernoBytes =>
    [
        0,0,3, 0,0,4, 0,0,6, 1,0,7, 1,1,9, 1,1,11, 2,1,14, 2,2,16,
        3,2,18, 4,3,20, 4,3,22, 5,4,24, 6,4,27, 7,5,29, 8,6,31, 9,6,33,
        10,7,35, 11,7,38, 13,8,40, 14,8,42, 15,9,45, 16,9,47, 18,10,50, 19,10,52,
        20,11,54, 22,11,57, 23,11,59, 25,11,62, 26,11,64, 28,12,67, 29,12,69, 31,12,71,
        32,12,74, 34,11,76, 36,11,78, 38,11,80, 39,11,82, 41,11,84, 43,10,86, 45,10,88,
        46,10,90, 48,10,92, 50,9,93, 52,9,95, 53,9,96, 55,9,97, 57,9,98, 59,9,100,
        60,9,101, 62,9,102, 64,9,102, 65,9,103, 67,10,104, 69,10,105, 70,10,105, 72,11,106,
        74,11,106, 75,12,107, 77,12,107, 79,13,108, 80,13,108, 82,14,108, 83,14,109, 85,15,109,
        87,15,109, 88,16,109, 90,17,109, 91,17,110, 93,18,110, 95,18,110, 96,19,110, 98,20,110,
        99,20,110, 101,21,110, 102,21,110, 104,22,110, 106,23,110, 107,23,110, 109,24,110, 110,24,110,
        112,25,110, 114,25,109, 115,26,109, 117,27,109, 118,27,109, 120,28,109, 122,28,109, 123,29,108,
        125,29,108, 126,30,108, 128,31,107, 129,31,107, 131,32,107, 133,32,106, 134,33,106, 136,33,106,
        137,34,105, 139,34,105, 141,35,105, 142,36,104, 144,36,104, 145,37,103, 147,37,103, 149,38,102,
        150,38,102, 152,39,101, 153,40,100, 155,40,100, 156,41,99, 158,41,99, 160,42,98, 161,43,97,
        163,43,97, 164,44,96, 166,44,95, 167,45,95, 169,46,94, 171,46,93, 172,47,92, 174,48,91,
        175,49,91, 177,49,90, 178,50,89, 180,51,88, 181,51,87, 183,52,86, 184,53,86, 186,54,85,
        187,55,84, 189,55,83, 190,56,82, 191,57,81, 193,58,80, 194,59,79, 196,60,78, 197,61,77,
        199,62,76, 200,62,75, 201,63,74, 203,64,73, 204,65,72, 205,66,71, 207,68,70, 208,69,68,
        209,70,67, 210,71,66, 212,72,65, 213,73,64, 214,74,63, 215,75,62, 217,77,61, 218,78,59,
        219,79,58, 220,80,57, 221,82,56, 222,83,55, 223,84,54, 224,86,52, 226,87,51, 227,88,50,
        228,90,49, 229,91,48, 230,92,46, 230,94,45, 231,95,44, 232,97,43, 233,98,42, 234,100,40,
        235,101,39, 236,103,38, 237,104,37, 237,106,35, 238,108,34, 239,109,33, 240,111,31, 240,112,30,
        241,114,29, 242,116,28, 242,117,26, 243,119,25, 243,121,24, 244,122,22, 245,124,21, 245,126,20,
        246,128,18, 246,129,17, 247,131,16, 247,133,14, 248,135,13, 248,136,12, 248,138,11, 249,140,9,
        249,142,8, 249,144,8, 250,145,7, 250,147,6, 250,149,6, 250,151,6, 251,153,6, 251,155,6,
        251,157,6, 251,158,7, 251,160,7, 251,162,8, 251,164,10, 251,166,11, 251,168,13, 251,170,14,
        251,172,16, 251,174,18, 251,176,20, 251,177,22, 251,179,24, 251,181,26, 251,183,28, 251,185,30,
        250,187,33, 250,189,35, 250,191,37, 250,193,40, 249,195,42, 249,197,44, 249,199,47, 248,201,49,
        248,203,52, 248,205,55, 247,207,58, 247,209,60, 246,211,63, 246,213,66, 245,215,69, 245,217,72,
        244,219,75, 244,220,79, 243,222,82, 243,224,86, 243,226,89, 242,228,93, 242,230,96, 241,232,100,
        241,233,104, 241,235,108, 241,237,112, 241,238,116, 241,240,121, 241,242,125, 242,243,129, 242,244,133,
        243,246,137, 244,247,141, 245,248,145, 246,250,149, 247,251,153, 249,252,157, 250,253,160, 252,254,164
    ];
}
