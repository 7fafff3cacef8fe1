using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace MtLora.Cli.Commands;

/// <summary>
/// Reads one image for <c>predict</c>, with bounded memory and no silent damage: a truncated or corrupt file (JPEG, PNG,
/// BMP) is an error naming the cause, never a partly black image; an image above <see cref="MaxPixels"/> is read
/// downscaled where the format allows it without decoding the whole (JPEG by the decoder at 1/2, 1/4 or 1/8; JPEG and BMP
/// line by line with an area average) and refused otherwise (PNG: SkiaSharp decodes it only whole); an image above
/// <see cref="MaxSourcePixels"/> is refused before it is decoded.
/// </summary>
/// <remarks>
/// The network sees every image at its own input size (448 px for Swin-T); the outputs are drawn at the size the image is
/// read at, so reading a very large image downscaled loses nothing the network could give. Memory per image is about
/// 130 bytes per pixel read (the upsampled task outputs), so at most about 2 GB at the limit.
/// </remarks>
internal static class PredictImageReader
{
    /// <summary>The largest image predicted at its own size: 4096 × 4096 pixels (16.8 MP).</summary>
    public const long MaxPixels = 4096L * 4096;

    /// <summary>The largest image read at all: 16384 × 16384 pixels (268 MP); decoding a larger one would take long even line by line.</summary>
    public const long MaxSourcePixels = 16384L * 16384;

    /// <summary>Reads an image file as an RGBA <see cref="MLImage"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="note">Set when the image was read downscaled: from what size to what.</param>
    /// <returns>The image (dispose it).</returns>
    /// <exception cref="InvalidDataException">The file cannot be read, is not a complete image, or is too large; the message says why.</exception>
    public static MLImage Read(string path, out string? note)
    {
        note = null;
        try
        {
            using (File.OpenRead(path)) { } // a missing or unreadable file gets the system's reason, which SKCodec does not give
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot open the file ({OutputPaths.Cause(e)})");
        }
        using var codec = SKCodec.Create(path, out var opened)
            ?? throw new InvalidDataException($"not an image that can be decoded (SkiaSharp: {opened}); expected a JPEG, PNG or BMP file");
        int width = codec.Info.Width, height = codec.Info.Height;
        long pixels = (long)width * height;
        if (pixels > MaxSourcePixels)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"the image is {width}x{height} ({pixels / 1e6:0} MP), above the largest predict reads ({MaxSourcePixels / 1e6:0} MP, e.g. 16384x16384); shrink it first"));
        if (pixels <= MaxPixels) return Decode(codec, new SKSizeI(width, height));

        // Too large to read whole: the smallest integer factor that brings it within the limit.
        int factor = (int)Math.Ceiling(Math.Sqrt((double)pixels / MaxPixels));
        while ((long)Ceil(width, factor) * Ceil(height, factor) > MaxPixels) factor++;
        var scaled = codec.GetScaledDimensions(1f / factor); // JPEG: the decoder's own 1/2, 1/4, 1/8 (the nearest it offers)
        MLImage image = (long)scaled.Width * scaled.Height <= MaxPixels && scaled.Width < width
            ? Decode(codec, scaled)
            : DecodeAveraged(codec, factor);
        note = string.Create(CultureInfo.InvariantCulture,
            $"the image is {width}x{height} ({pixels / 1e6:0.0} MP), above predict's {MaxPixels / 1e6:0.0} MP: read and predicted at {image.Width}x{image.Height}");
        return image;
    }

    private static int Ceil(int size, int factor) => (size + factor - 1) / factor;

    /// <summary>Decodes the whole image at <paramref name="size"/> (its own, or a size the codec can scale to).</summary>
    private static MLImage Decode(SKCodec codec, SKSizeI size)
    {
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var result = codec.GetPixels(info, out byte[] pixels);
        if (result != SKCodecResult.Success) throw Damaged(result);
        return MLImage.CreateFromPixels(size.Width, size.Height, MLPixelFormat.Rgba32, pixels);
    }

    /// <summary>
    /// Decodes line by line and averages each <paramref name="factor"/> × <paramref name="factor"/> block (fewer at the
    /// right and bottom edges): memory is one source row and one row of sums, whatever the source size.
    /// </summary>
    private static MLImage DecodeAveraged(SKCodec codec, int factor)
    {
        int width = codec.Info.Width, height = codec.Info.Height;
        int outWidth = Ceil(width, factor), outHeight = Ceil(height, factor);
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var start = codec.StartScanlineDecode(info);
        if (start != SKCodecResult.Success || codec.ScanlineOrder is not (SKCodecScanlineOrder.TopDown or SKCodecScanlineOrder.BottomUp))
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"the image is {width}x{height} ({(long)width * height / 1e6:0.0} MP), above the {MaxPixels / 1e6:0.0} MP predict reads whole (e.g. 4096x4096), and a {codec.EncodedFormat} file cannot be read downscaled (JPEG and BMP can); shrink it first"));

        var row = new byte[width * 4];
        var sums = new long[outWidth * 4];
        var output = new byte[(long)outWidth * outHeight * 4];
        int currentOut = -1, rowsInBlock = 0;
        var handle = GCHandle.Alloc(row, GCHandleType.Pinned);
        try
        {
            for (int i = 0; i < height; i++)
            {
                if (codec.GetScanlines(handle.AddrOfPinnedObject(), 1, row.Length) != 1) throw Damaged(SKCodecResult.IncompleteInput);
                int y = codec.GetOutputScanline(i); // rows arrive bottom-up in some BMPs
                int outY = y / factor;
                if (outY != currentOut)
                {
                    if (currentOut >= 0) Emit(sums, rowsInBlock, currentOut);
                    currentOut = outY;
                    rowsInBlock = 0;
                }
                rowsInBlock++;
                for (int x = 0; x < width; x++)
                {
                    int o = x / factor * 4, s = x * 4;
                    sums[o] += row[s];
                    sums[o + 1] += row[s + 1];
                    sums[o + 2] += row[s + 2];
                    sums[o + 3] += row[s + 3];
                }
            }
            Emit(sums, rowsInBlock, currentOut);
        }
        finally
        {
            handle.Free();
        }
        return MLImage.CreateFromPixels(outWidth, outHeight, MLPixelFormat.Rgba32, output);

        void Emit(long[] blockSums, int rows, int outY)
        {
            for (int ox = 0; ox < outWidth; ox++)
            {
                int columns = Math.Min(factor, width - ox * factor);
                long count = (long)columns * rows;
                for (int c = 0; c < 4; c++)
                {
                    int k = ox * 4 + c;
                    output[((long)outY * outWidth + ox) * 4 + c] = (byte)((blockSums[k] + count / 2) / count);
                    blockSums[k] = 0;
                }
            }
        }
    }

    private static InvalidDataException Damaged(SKCodecResult result) =>
        new($"the file is truncated or damaged (SkiaSharp: {result}); expected a complete image");
}
