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
    public static void Save(SKBitmap bitmap, string path) => AtomicFile.WriteAllBytes(path, Encode(bitmap));
}

/// <summary>Writes files through a temporary sibling and a move, so readers never see a half-written file.</summary>
internal static class AtomicFile
{
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write)) stream.Write(bytes);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) =>
        WriteAllBytes(path, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text));
}
