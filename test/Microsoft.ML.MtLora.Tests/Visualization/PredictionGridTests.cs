using Microsoft.ML.MtLora.Visualization;
using SkiaSharp;
using static Microsoft.ML.MtLora.Tests.Visualization.PngTestHelpers;

namespace Microsoft.ML.MtLora.Tests.Visualization;

public class PredictionGridTests
{
    private const int W = 8, H = 6;

    /// <summary>All four tasks plus the input, predictions and semseg/normals ground truth, with known pixels.</summary>
    private static PredictionPanels FullPanels()
    {
        var p = new PredictionPanels(W, H)
        {
            Image = new byte[W * H * 3],
            SemanticSegmentation = new byte[W * H],
            HumanParts = new byte[W * H],
            Saliency = new float[W * H],
            SurfaceNormals = new float[3 * W * H],
            SemanticSegmentationLabel = new byte[W * H],
            SurfaceNormalsLabel = new float[3 * W * H],
        };
        for (int i = 0; i < W * H; i++)
        {
            p.Image[3 * i] = 200; p.Image[3 * i + 1] = 100; p.Image[3 * i + 2] = 50;
            p.Saliency[i] = 1f;
            p.SurfaceNormals[2 * W * H + i] = 1f;          // +z everywhere
            p.SurfaceNormalsLabel[i] = 1f;                 // +x everywhere
        }
        p.SemanticSegmentation[2 * W + 3] = 15;  // (3, 2) person
        p.SemanticSegmentation[5 * W + 7] = 7;   // (7, 5) car
        p.HumanParts[0] = 1;                     // (0, 0) head
        p.SemanticSegmentationLabel[0] = 255;    // (0, 0) ignore
        p.SemanticSegmentationLabel[1] = 12;     // (1, 0) dog
        p.Saliency[0] = 0f;                      // (0, 0) low
        return p;
    }

    [Fact]
    public void LayoutSizeFollowsTheDocumentedFormula()
    {
        var layout = PredictionGrid.ComputeLayout(FullPanels());
        int s = (160 + W - 1) / W;  // smallest scale giving a panel at least 160 px wide
        Assert.Equal(s, layout.Scale);
        int cellW = W * s, cellH = H * s;
        Assert.Equal(8 + 5 * (cellW + 8), layout.Width);
        // Row 1: semseg legend has 3 lines (0, 7, 15). Row 2: semseg GT legend has 3 lines (0, 12, 255).
        int row = 20 + cellH + 4 + 3 * 16;
        Assert.Equal(8 + row + 8 + row + 8, layout.Height);
        Assert.Equal(["Input", "Semseg", "Human parts", "Saliency", "Normals", "Semseg (GT)", "Normals (GT)"], layout.Panels.Select(p => p.Title));
        Assert.Equal(SKRectI.Create(8 + 4 * (cellW + 8), 8 + row + 8 + 20, cellW, cellH), layout.Panels.Single(p => p.Title == "Normals (GT)").Bounds);
    }

    [Fact]
    public void SavedGridShowsEachMapPixelAtItsPlace()
    {
        var panels = FullPanels();
        var layout = PredictionGrid.ComputeLayout(panels);
        using var dir = Fixture.TempDir();
        var path = dir.File("grid.png");
        PredictionGrid.Save(path, panels);
        using var png = Decode(path);
        Assert.Equal((layout.Width, layout.Height), (png.Width, png.Height));
        int s = layout.Scale;

        // The centre of map pixel (x, y) in a panel.
        (byte, byte, byte) At(string title, int x, int y)
        {
            var b = layout.Panels.Single(p => p.Title == title).Bounds;
            return Rgb(png, b.Left + x * s + s / 2, b.Top + y * s + s / 2);
        }

        Assert.Equal(((byte)200, (byte)100, (byte)50), At("Input", 4, 4));
        Assert.Equal(((byte)192, (byte)128, (byte)128), At("Semseg", 3, 2));
        Assert.Equal(((byte)128, (byte)128, (byte)128), At("Semseg", 7, 5));
        Assert.Equal(((byte)0, (byte)0, (byte)0), At("Semseg", 0, 0));
        Assert.Equal(((byte)128, (byte)0, (byte)0), At("Human parts", 0, 0));
        Assert.Equal(Rgb(ColorMaps.SaliencyColor(0f)), At("Saliency", 0, 0));
        Assert.Equal(Rgb(ColorMaps.SaliencyColor(1f)), At("Saliency", 5, 3));
        Assert.Equal(((byte)128, (byte)128, (byte)255), At("Normals", 2, 2));
        Assert.Equal(((byte)255, (byte)255, (byte)255), At("Semseg (GT)", 0, 0));
        Assert.Equal(((byte)64, (byte)0, (byte)128), At("Semseg (GT)", 1, 0));
        Assert.Equal(((byte)255, (byte)128, (byte)128), At("Normals (GT)", 6, 1));
        // Every pixel of a magnified block has the exact colour (nearest neighbour, no blending at the block edge).
        var person = layout.Panels.Single(p => p.Title == "Semseg").Bounds;
        Assert.Equal(((byte)192, (byte)128, (byte)128), Rgb(png, person.Left + 3 * s, person.Top + 2 * s));
        Assert.Equal(((byte)192, (byte)128, (byte)128), Rgb(png, person.Left + 4 * s - 1, person.Top + 3 * s - 1));
        Assert.Equal(((byte)0, (byte)0, (byte)0), Rgb(png, person.Left + 4 * s, person.Top + 3 * s - 1));
    }

    [Fact]
    public void LegendsListExactlyTheLabelsPresentWithTheirColours()
    {
        var panels = FullPanels();
        var layout = PredictionGrid.ComputeLayout(panels);
        var semseg = layout.Panels.Single(p => p.Title == "Semseg");
        Assert.Equal([0, 7, 15], semseg.Legend.Select(e => e.Label));
        Assert.Equal(["background", "car", "person"], semseg.Legend.Select(e => e.Name));
        var parts = layout.Panels.Single(p => p.Title == "Human parts");
        Assert.Equal(["background", "head"], parts.Legend.Select(e => e.Name));
        var gt = layout.Panels.Single(p => p.Title == "Semseg (GT)");
        Assert.Equal(["background", "dog", "ignore"], gt.Legend.Select(e => e.Name));
        Assert.Empty(layout.Panels.Single(p => p.Title == "Normals").Legend);

        using var png = Decode(PredictionGrid.RenderPng(panels));
        foreach (var entry in semseg.Legend.Concat(parts.Legend).Concat(gt.Legend))
        {
            Assert.True(entry.Swatch.Top >= semseg.Bounds.Bottom || entry.Swatch.Top >= gt.Bounds.Bottom);
            var centre = Rgb(png, entry.Swatch.MidX, entry.Swatch.MidY);
            Assert.Equal(Rgb(entry.Color), centre);
            Assert.Equal(Rgb(ColorMaps.LabelColor((byte)entry.Label)), centre);
        }
    }

    [Fact]
    public void TitlesAreDrawnWhenAFontIsAvailable()
    {
        bool fontsInstalled = OperatingSystem.IsLinux() && Directory.Exists("/usr/share/fonts") &&
                              Directory.EnumerateFiles("/usr/share/fonts", "*.ttf", SearchOption.AllDirectories).Any();
        if (fontsInstalled) Assert.NotNull(VisualizationFonts.Typeface);

        var panels = new PredictionPanels(W, H) { Saliency = new float[W * H] };
        var layout = PredictionGrid.ComputeLayout(panels);
        using var png = Decode(PredictionGrid.RenderPng(panels));
        var b = layout.Panels[0].Bounds;
        int dark = 0;
        for (int y = b.Top - PredictionGrid.TitleHeight; y < b.Top; y++)
            for (int x = b.Left; x < b.Right; x++)
                if (Rgb(png, x, y).R < 128) dark++;
        if (VisualizationFonts.Typeface is not null) Assert.InRange(dark, 10, b.Width * PredictionGrid.TitleHeight / 2);
        else Assert.Equal(0, dark);
    }

    [Fact]
    public void WithoutAFontOnlyTheTextIsLeftOut()
    {
        var panels = FullPanels();
        var layout = PredictionGrid.ComputeLayout(panels);
        using var withText = PredictionGrid.Render(panels, null, VisualizationFonts.Typeface);
        using var withoutText = PredictionGrid.Render(panels, null, typeface: null);
        Assert.Equal((withText.Width, withText.Height), (withoutText.Width, withoutText.Height));
        foreach (var panel in layout.Panels)
        {
            // The maps and swatches are the same; the title band is blank.
            for (int y = panel.Bounds.Top; y < panel.Bounds.Bottom; y += 7)
                for (int x = panel.Bounds.Left; x < panel.Bounds.Right; x += 7)
                    Assert.Equal(withText.GetPixel(x, y), withoutText.GetPixel(x, y));
            foreach (var entry in panel.Legend)
                Assert.Equal(entry.Color, withoutText.GetPixel(entry.Swatch.MidX, entry.Swatch.MidY));
            for (int y = panel.Bounds.Top - PredictionGrid.TitleHeight; y < panel.Bounds.Top; y++)
                for (int x = panel.Bounds.Left; x < panel.Bounds.Right; x++)
                    Assert.Equal(SKColors.White, withoutText.GetPixel(x, y));
        }
    }

    [Fact]
    public void AnySubsetOfTasksWorks()
    {
        var panels = new PredictionPanels(W, H) { Saliency = new float[W * H] };
        var layout = PredictionGrid.ComputeLayout(panels, new PredictionGridOptions { Scale = 2, ShowLegends = false });
        Assert.Equal(2, layout.Scale);
        Assert.Equal((8 + W * 2 + 8, 8 + 20 + H * 2 + 8), (layout.Width, layout.Height));
        Assert.Single(layout.Panels);

        // Only a label: one ground-truth row; the missing prediction row is not drawn.
        var labelsOnly = new PredictionPanels(W, H) { HumanPartsLabel = new byte[W * H] };
        var gtLayout = PredictionGrid.ComputeLayout(labelsOnly);
        Assert.True(gtLayout.Panels.Single().IsGroundTruth);
        Assert.Equal(DenseTask.HumanParts, gtLayout.Panels.Single().Task);
    }

    [Fact]
    public void AnImageBitmapOfAnotherSizeIsStretchedToThePanel()
    {
        using var photo = new SKBitmap(new SKImageInfo(20, 10, SKColorType.Rgba8888, SKAlphaType.Opaque));
        photo.Erase(new SKColor(10, 200, 30));
        var panels = new PredictionPanels(W, H) { ImageBitmap = photo, SemanticSegmentation = new byte[W * H] };
        var layout = PredictionGrid.ComputeLayout(panels);
        using var png = Decode(PredictionGrid.RenderPng(panels));
        var b = layout.Panels[0].Bounds;
        Assert.Equal(((byte)10, (byte)200, (byte)30), Rgb(png, b.MidX, b.MidY));
        Assert.Equal(((byte)10, (byte)200, (byte)30), Rgb(png, b.Right - 1, b.Bottom - 1));
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(png, b.Right + 2, b.MidY));
    }

    [Fact]
    public void BadPanelsGetMessagesNamingTheProperty()
    {
        var wrong = new PredictionPanels(W, H) { SurfaceNormals = new float[W * H] };
        var e = Assert.Throws<ArgumentException>(() => PredictionGrid.ComputeLayout(wrong));
        Assert.Contains("SurfaceNormals", e.Message);
        Assert.Contains((3 * W * H).ToString(), e.Message);
        Assert.Throws<ArgumentException>(() => PredictionGrid.ComputeLayout(new PredictionPanels(W, H)));
        using var photo = new SKBitmap(2, 2);
        var both = new PredictionPanels(W, H) { Image = new byte[W * H * 3], ImageBitmap = photo };
        Assert.Contains("ImageBitmap", Assert.Throws<ArgumentException>(() => PredictionGrid.ComputeLayout(both)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PredictionPanels(0, 4));
    }

    [Fact]
    public void RenderingIsDeterministic()
    {
        Assert.Equal(PredictionGrid.RenderPng(FullPanels()), PredictionGrid.RenderPng(FullPanels()));
    }
}
