using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Visualization;
using SkiaSharp;
using static Microsoft.ML.MtLora.Tests.Visualization.PngTestHelpers;

namespace Microsoft.ML.MtLora.Tests.Visualization;

public class ColorMapsTests
{
    [Theory]
    // The published PASCAL VOC palette (VOCdevkit's labelcolormap / the palette of the SegmentationClass PNGs).
    [InlineData(0, 0, 0, 0)]
    [InlineData(1, 128, 0, 0)]
    [InlineData(2, 0, 128, 0)]
    [InlineData(3, 128, 128, 0)]
    [InlineData(4, 0, 0, 128)]
    [InlineData(6, 0, 128, 128)]
    [InlineData(7, 128, 128, 128)]
    [InlineData(8, 64, 0, 0)]
    [InlineData(15, 192, 128, 128)]
    [InlineData(20, 0, 64, 128)]
    [InlineData(255, 224, 224, 192)]
    public void VocPaletteMatchesThePublishedColours(int label, int r, int g, int b)
    {
        Assert.Equal(((byte)r, (byte)g, (byte)b), Rgb(VocPalette.GetColor(label)));
    }

    [Fact]
    public void VocPaletteRejectsLabelsOutsideAByte()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => VocPalette.GetColor(256));
        Assert.Throws<ArgumentOutOfRangeException>(() => VocPalette.GetColor(-1));
    }

    [Fact]
    public void SemanticSegmentationPngHasTheVocColourOfEachPixel()
    {
        const int w = 5, h = 3;
        var map = new byte[w * h];
        map[0] = 15;          // (0, 0) person
        map[1 * w + 3] = 7;   // (3, 1) car
        map[2 * w + 4] = 255; // (4, 2) ignore
        using var dir = Fixture.TempDir();
        var path = dir.File("sub/semseg.png");
        using (var bitmap = ColorMaps.SemanticSegmentation(map, w, h)) PngFile.Save(bitmap, path);

        using var png = Decode(path);
        Assert.Equal((w, h), (png.Width, png.Height));
        Assert.Equal(((byte)192, (byte)128, (byte)128), Rgb(png, 0, 0));
        Assert.Equal(((byte)128, (byte)128, (byte)128), Rgb(png, 3, 1));
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(png, 4, 2));
        Assert.Equal(((byte)0, (byte)0, (byte)0), Rgb(png, 2, 2));
        Assert.Empty(Directory.GetFiles(dir.File("sub"), "*.tmp-*"));
    }

    [Fact]
    public void HumanPartsUseVocEntriesZeroToSix()
    {
        byte[] map = [0, 1, 2, 3, 4, 5, 6];
        using var png = Decode(PngFile.Encode(ColorMaps.HumanParts(map, 7, 1)));
        (byte, byte, byte)[] expected = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128)];
        for (int x = 0; x < 7; x++) Assert.Equal(expected[x], Rgb(png, x, 0));
    }

    [Fact]
    public void NormalsMapToHalfPlusHalfTimes255()
    {
        // CHW, 4 pixels: +z, +x, -x, -y.
        float[] normals =
        [
            0, 1, -1, 0,   // x
            0, 0, 0, -1,   // y
            1, 0, 0, 0,    // z
        ];
        using var png = Decode(PngFile.Encode(ColorMaps.Normals(normals, 4, 1)));
        Assert.Equal(((byte)128, (byte)128, (byte)255), Rgb(png, 0, 0));
        Assert.Equal(((byte)255, (byte)128, (byte)128), Rgb(png, 1, 0));
        Assert.Equal(((byte)0, (byte)128, (byte)128), Rgb(png, 2, 0));
        Assert.Equal(((byte)128, (byte)0, (byte)128), Rgb(png, 3, 0));
        Assert.Equal(Rgb(ColorMaps.IgnoreColor), Rgb(ColorMaps.NormalColor(float.NaN, 0, 1)));
    }

    [Fact]
    public void SaliencyEndsAreTheInfernoEnds()
    {
        // matplotlib's inferno: first entry (0.001462, 0.000466, 0.013866), last (0.988362, 0.998364, 0.644924).
        float[] sal = [0f, 1f, -3f, 7f, float.NaN, 0.5f];
        using var png = Decode(PngFile.Encode(ColorMaps.Saliency(sal, 6, 1)));
        var low = Rgb(png, 0, 0);
        var high = Rgb(png, 1, 0);
        Assert.InRange(low.R, 0, 1); Assert.InRange(low.G, 0, 1); Assert.InRange(low.B, 3, 4);
        Assert.InRange(high.R, 251, 252); Assert.InRange(high.G, 254, 255); Assert.InRange(high.B, 164, 165);
        Assert.Equal(low, Rgb(png, 2, 0));  // clamped below
        Assert.Equal(high, Rgb(png, 3, 0)); // clamped above
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(png, 4, 0));
        var mid = Rgb(png, 5, 0); // inferno(0.5) ≈ (188, 55, 84): a red-magenta.
        Assert.InRange(mid.R, 180, 196); Assert.InRange(mid.G, 48, 62); Assert.InRange(mid.B, 76, 92);
    }

    [Fact]
    public void ImageBytesAndBitmapsRoundTripAsRgb()
    {
        byte[] rgb = [10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220];
        using var bitmap = ColorMaps.Image(rgb, 2, 2);
        Assert.Equal(rgb, ColorMaps.ToRgb(bitmap));
        using var bgra = bitmap.Copy(SKColorType.Bgra8888);
        Assert.Equal(rgb, ColorMaps.ToRgb(bgra));

        using var gray = new SKBitmap(new SKImageInfo(2, 1, SKColorType.Gray8, SKAlphaType.Opaque));
        gray.SetPixel(0, 0, new SKColor(7, 7, 7));
        gray.SetPixel(1, 0, new SKColor(250, 250, 250));
        Assert.Equal(new byte[] { 7, 7, 7, 250, 250, 250 }, ColorMaps.ToRgb(gray));

        byte[] bgraPixels = [30, 20, 10, 255, 60, 50, 40, 255, 90, 80, 70, 255, 220, 210, 200, 255];
        using var mlImage = MLImage.CreateFromPixels(2, 2, MLPixelFormat.Bgra32, bgraPixels);
        Assert.Equal(rgb, ColorMaps.ToRgb(mlImage));
    }

    [Fact]
    public void WrongLengthsNameTheArgument()
    {
        var e = Assert.Throws<ArgumentException>(() => ColorMaps.Normals(new float[8], 2, 2));
        Assert.Equal("normals", e.ParamName);
        Assert.Contains("12", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ColorMaps.Labels([], 0, 3));
    }
}
