using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Visualization;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.MtLora.Tests.Data;

/// <summary>
/// Guards the SkiaSharp version: Microsoft.ML.ImageAnalytics 5.0.1 is compiled against SkiaSharp 2.88 and its image transforms
/// and <see cref="MLImage.Pixels"/> call SKBitmap.GetPixelSpan() with its 2.88 signature (SkiaSharp 3 changed the return type),
/// which fails only at run time with a MissingMethodException. These tests run ML.NET's own image pipeline in-process with the SkiaSharp this repository pins.
/// </summary>
public class MlNetImagePipelineTests
{
    private sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
    }

    private sealed class PixelRow
    {
        public float[] Pixels { get; set; } = [];
    }

    /// <summary>An RGB picture whose left half is <paramref name="left"/> and right half <paramref name="right"/>.</summary>
    private static string WritePng(string path, int width, int height, (byte R, byte G, byte B) left, (byte R, byte G, byte B) right)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var c = x < width / 2 ? left : right;
                int o = (y * width + x) * 3;
                (rgb[o], rgb[o + 1], rgb[o + 2]) = c;
            }
        }
        using var bitmap = ColorMaps.Image(rgb, width, height);
        PngFile.Save(bitmap, path);
        return path;
    }

    private static float[][] RunPipeline(string folder, string[] files, int width, int height)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(files.Select(f => new ImageRow { ImagePath = f }));
        var pipeline = ml.Transforms.LoadImages("Image", folder, nameof(ImageRow.ImagePath))
            .Append(ml.Transforms.ResizeImages("Image", width, height, resizing: ImageResizingEstimator.ResizingKind.Fill))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image")); // planar R, G, B planes, as floats 0..255
        var transformed = pipeline.Fit(data).Transform(data);
        return [.. ml.Data.CreateEnumerable<PixelRow>(transformed, reuseRowObject: false).Select(r => r.Pixels)];
    }

    [Fact]
    public void LoadResizeExtractGivesThePixelValues()
    {
        using var dir = Fixture.TempDir();
        WritePng(dir.File("solid.png"), 6, 4, (10, 200, 30), (10, 200, 30));
        WritePng(dir.File("halves.png"), 8, 8, (250, 0, 0), (0, 0, 250));

        var rows = RunPipeline(dir.Path, ["solid.png", "halves.png"], 3, 2);

        // A uniform picture keeps its colour exactly whatever the resampling filter.
        const int plane = 3 * 2;
        Assert.Equal(3 * plane, rows[0].Length);
        Assert.All(rows[0][..plane], v => Assert.Equal(10f, v));
        Assert.All(rows[0][plane..(2 * plane)], v => Assert.Equal(200f, v));
        Assert.All(rows[0][(2 * plane)..], v => Assert.Equal(30f, v));

        // Red left, blue right survive a 8×8 → 3×2 resize in the outer columns (the middle one may blend).
        var halves = rows[1];
        for (int y = 0; y < 2; y++)
        {
            int left = y * 3, right = y * 3 + 2;
            Assert.True(halves[left] > 200 && halves[2 * plane + left] < 50, $"row {y}: left pixel is not red");
            Assert.True(halves[2 * plane + right] > 200 && halves[right] < 50, $"row {y}: right pixel is not blue");
            Assert.True(halves[plane + left] < 50 && halves[plane + right] < 50, $"row {y}: green appeared");
        }
    }

    [Fact]
    public void MLImagePixelsReadsTheDecodedPicture()
    {
        using var dir = Fixture.TempDir();
        var path = WritePng(dir.File("halves.png"), 4, 2, (250, 20, 5), (7, 9, 240));
        using var image = MLImage.CreateFromFile(path);
        Assert.Equal((4, 2), (image.Width, image.Height));
        var pixels = image.Pixels;
        Assert.Equal(4 * 2 * 4, pixels.Length);
        (int r, int g, int b) = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => (2, 1, 0),
            MLPixelFormat.Rgba32 => (0, 1, 2),
            var other => throw new InvalidOperationException($"Unexpected pixel format {other}."),
        };
        // Pixel (0, 0) is the left colour, pixel (3, 1) the right one; both opaque.
        Assert.Equal((250, 20, 5, 255), (pixels[r], pixels[g], pixels[b], pixels[3]));
        int last = (1 * 4 + 3) * 4;
        Assert.Equal((7, 9, 240, 255), (pixels[last + r], pixels[last + g], pixels[last + b], pixels[last + 3]));
        Assert.Equal(ColorMaps.ToRgb(image)[..3], [250, 20, 5]);
    }
}
