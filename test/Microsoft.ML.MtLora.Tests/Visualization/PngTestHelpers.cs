using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Visualization;

/// <summary>Decodes written PNGs back to pixels, so tests check what a user would see.</summary>
internal static class PngTestHelpers
{
    public static SKBitmap Decode(string path)
    {
        using var stream = File.OpenRead(path);
        return Decode(stream);
    }

    public static SKBitmap Decode(byte[] png)
    {
        using var stream = new MemoryStream(png);
        return Decode(stream);
    }

    private static SKBitmap Decode(Stream stream)
    {
        using var codec = SKCodec.Create(stream) ?? throw new InvalidDataException("Not a decodable image.");
        Assert.Equal(SKEncodedImageFormat.Png, codec.EncodedFormat);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var bitmap = new SKBitmap(info);
        Assert.Equal(SKCodecResult.Success, codec.GetPixels(info, bitmap.GetPixels()));
        return bitmap;
    }

    public static (byte R, byte G, byte B) Rgb(SKBitmap bitmap, int x, int y)
    {
        var c = bitmap.GetPixel(x, y);
        return (c.Red, c.Green, c.Blue);
    }

    public static (byte R, byte G, byte B) Rgb(SKColor c) => (c.Red, c.Green, c.Blue);

    /// <summary>How many pixels have exactly the colour.</summary>
    public static int Count(SKBitmap bitmap, (byte R, byte G, byte B) color)
    {
        var bytes = bitmap.Bytes; // Rgba8888, as Decode makes it
        int n = 0;
        for (int i = 0; i + 3 < bytes.Length; i += 4)
            if (bytes[i] == color.R && bytes[i + 1] == color.G && bytes[i + 2] == color.B) n++;
        return n;
    }

    /// <summary>The variance of the grey level over all pixels (0 for a blank picture).</summary>
    public static double GreyVariance(SKBitmap bitmap)
    {
        var bytes = bitmap.Bytes;
        double sum = 0, sumSq = 0;
        int n = bytes.Length / 4;
        for (int i = 0; i < n; i++)
        {
            double g = (bytes[4 * i] + bytes[4 * i + 1] + bytes[4 * i + 2]) / 3.0;
            sum += g;
            sumSq += g * g;
        }
        double mean = sum / n;
        return sumSq / n - mean * mean;
    }
}
