using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>Encodes bitmaps as PNG and writes them atomically (to a temporary name in the same folder, then moved into place).</summary>
public static class PngFile
{
    /// <summary>Encodes a bitmap as PNG.</summary>
    /// <param name="bitmap">The bitmap.</param>
    /// <returns>The PNG file bytes.</returns>
    public static byte[] Encode(SKBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {bitmap.Width} × {bitmap.Height} {bitmap.ColorType} bitmap as PNG.");
        return data.ToArray();
    }

    /// <summary>Writes a bitmap to a PNG file, creating the folder when needed; the file appears complete or not at all.</summary>
    /// <param name="bitmap">The bitmap.</param>
    /// <param name="path">The file to write (replaced when it exists).</param>
    public static void Save(SKBitmap bitmap, string path)
    {
        var png = Encode(bitmap);
        AtomicFile.Write(path, s => s.Write(png));
    }
}
