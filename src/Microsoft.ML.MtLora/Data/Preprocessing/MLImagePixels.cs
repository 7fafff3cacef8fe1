using System.Reflection;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Reads the pixels of an <see cref="MLImage"/> whatever SkiaSharp version the application binds.
/// </summary>
/// <remarks>
/// <c>MLImage.Pixels</c> (ML.NET 5.0.1) calls <c>SKBitmap.GetPixelSpan()</c> with SkiaSharp 2.88's signature
/// (<c>ReadOnlySpan&lt;byte&gt;</c>); SkiaSharp 3.x returns <c>Span&lt;byte&gt;</c>, so with SkiaSharp 3 the property throws
/// <see cref="MissingMethodException"/>. When that happens the bitmap is read through its pixel pointer instead.
/// </remarks>
internal static class MLImagePixels
{
    private static readonly FieldInfo? BitmapField =
        typeof(MLImage).GetField("_image", BindingFlags.Instance | BindingFlags.NonPublic) is { } f && f.FieldType == typeof(SKBitmap) ? f : null;

    private static volatile bool _pixelsPropertyBroken;

    /// <summary>Whether the image's bytes are B, G, R, A (true) or R, G, B, A (false).</summary>
    /// <exception cref="NotSupportedException">Another pixel format.</exception>
    public static bool IsBgra(MLImage image) => image.PixelFormat switch
    {
        MLPixelFormat.Bgra32 => true,
        MLPixelFormat.Rgba32 => false,
        _ => throw new NotSupportedException($"MLImage pixel format {image.PixelFormat} is not supported; expected Bgra32 or Rgba32."),
    };

    /// <summary>Copies the 4-byte-per-pixel data (BGRA or RGBA, see <see cref="MLImage.PixelFormat"/>) into <paramref name="destination"/>.</summary>
    public static void CopyTo(MLImage image, Span<byte> destination)
    {
        int rowBytes = image.Width * 4;
        if (destination.Length != (long)rowBytes * image.Height)
            throw new ArgumentException($"The destination holds {destination.Length} bytes; a {image.Width}x{image.Height} image needs {(long)rowBytes * image.Height}.", nameof(destination));
        if (!_pixelsPropertyBroken)
        {
            try
            {
                CopyFromProperty(image, destination);
                return;
            }
            catch (MissingMethodException) when (BitmapField is not null)
            {
                _pixelsPropertyBroken = true;
            }
        }
        var bitmap = BitmapField!.GetValue(image) as SKBitmap
            ?? throw new InvalidOperationException("The MLImage holds no bitmap (disposed?).");
        if (bitmap.BytesPerPixel != 4)
            throw new NotSupportedException($"MLImage bitmap has {bitmap.BytesPerPixel} bytes per pixel; expected 4.");
        unsafe
        {
            byte* src = (byte*)bitmap.GetPixels().ToPointer();
            for (int y = 0; y < image.Height; y++)
                new ReadOnlySpan<byte>(src + (long)y * bitmap.RowBytes, rowBytes).CopyTo(destination.Slice(y * rowBytes, rowBytes));
        }
    }

    // Separate method: the MissingMethodException is raised when this method is compiled, not when CopyTo is.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void CopyFromProperty(MLImage image, Span<byte> destination)
    {
        var pixels = image.Pixels;
        if (pixels.Length != destination.Length)
            throw new NotSupportedException($"MLImage holds {pixels.Length} bytes for {image.Width}x{image.Height} pixels; expected {destination.Length} (4 bytes per pixel, no row padding).");
        pixels.CopyTo(destination);
    }
}
