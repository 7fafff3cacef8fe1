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
        int n = 0;
        for (int y = 0; y < bitmap.Height; y++)
            for (int x = 0; x < bitmap.Width; x++)
                if (Rgb(bitmap, x, y) == color) n++;
        return n;
    }

    /// <summary>The variance of the grey level over all pixels (0 for a blank picture).</summary>
    public static double GreyVariance(SKBitmap bitmap)
    {
        double sum = 0, sumSq = 0;
        int n = bitmap.Width * bitmap.Height;
        for (int y = 0; y < bitmap.Height; y++)
        {
            for (int x = 0; x < bitmap.Width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                double g = (c.Red + c.Green + c.Blue) / 3.0;
                sum += g;
                sumSq += g * g;
            }
        }
        double mean = sum / n;
        return sumSq / n - mean * mean;
    }
}
