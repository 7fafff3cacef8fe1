using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// Draws one image's dense predictions (and optionally its ground truth) side by side in a titled grid with legends.
/// </summary>
/// <remarks>
/// <para>Columns, left to right: the input image (when set), then semantic segmentation, human parts, saliency and normals — each
/// task present when its prediction or its label is set. Rows: predictions (when any is set), then ground truth (when any label is set);
/// the input image sits in the first row. A cell with nothing to show stays blank.</para>
/// <para>Sizes, in pixels: every map is magnified <c>s</c> times (<see cref="PredictionGridOptions.Scale"/>), so a cell is
/// <c>Width·s × Height·s</c>. The picture is <c>8 + columns × (Width·s + 8)</c> wide; each row is a 20-pixel title band, the map,
/// and a legend band of <c>16 × lines + 4</c> pixels (none when no panel of the row has a legend), rows separated and framed by 8-pixel
/// margins. A class-map legend has one line per label present (a 12 × 12 swatch and the class name); saliency has one line (its colour bar
/// from 0 to 1); the input and normals have none. <see cref="ComputeLayout"/> returns every rectangle.</para>
/// <para>Colours follow <see cref="ColorMaps"/>. Text uses SkiaSharp's default typeface, or the first readable font file found in the
/// usual font folders; when no font is available at all the titles and legend names are left out and everything else is drawn.</para>
/// </remarks>
public static class PredictionGrid
{
    internal const int Margin = 8;
    internal const int TitleHeight = 20;
    internal const int LegendLineHeight = 16;
    internal const int LegendPadding = 4;
    internal const int SwatchSize = 12;
    private const float FontSize = 13f;

    /// <summary>Computes where every panel, title and legend goes.</summary>
    /// <param name="panels">The maps.</param>
    /// <param name="options">Layout options (defaults when null).</param>
    /// <returns>The layout.</returns>
    public static PredictionGridLayout ComputeLayout(PredictionPanels panels, PredictionGridOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(panels);
        options ??= new PredictionGridOptions();
        options.Validate();
        panels.Validate();

        int scale = options.Scale > 0 ? options.Scale : Math.Max(1, (options.MinimumPanelWidth + panels.Width - 1) / panels.Width);
        int cellW = panels.Width * scale, cellH = panels.Height * scale;
        var tasks = DenseTasks.All.Where(t => panels.Has(t, false) || panels.Has(t, true)).ToList();
        var rows = new List<bool>();
        if (DenseTasks.All.Any(t => panels.Has(t, false)) || !DenseTasks.All.Any(t => panels.Has(t, true))) rows.Add(false);
        if (DenseTasks.All.Any(t => panels.Has(t, true))) rows.Add(true);
        int columns = (panels.HasImage ? 1 : 0) + tasks.Count;

        var placed = new List<PredictionGridPanel>();
        int y = Margin;
        for (int r = 0; r < rows.Count; r++)
        {
            bool gt = rows[r];
            int top = y + TitleHeight;
            int legendTop = top + cellH + LegendPadding;
            int column = 0, maxLines = 0;
            if (panels.HasImage)
            {
                if (r == 0) placed.Add(new PredictionGridPanel("Input", null, false, Cell(column, top), []));
                column++;
            }
            foreach (var task in tasks)
            {
                var bounds = Cell(column++, top);
                if (!panels.Has(task, gt)) continue;
                IReadOnlyList<LegendEntry> legend = [];
                int lines = 0;
                if (options.ShowLegends && panels.ClassMap(task, gt) is { } map)
                {
                    legend = Legend(map, ClassNames.For(task), bounds.Left, legendTop);
                    lines = legend.Count;
                }
                else if (options.ShowLegends && task == DenseTask.Saliency) lines = 1;
                maxLines = Math.Max(maxLines, lines);
                placed.Add(new PredictionGridPanel(Title(task, gt), task, gt, bounds, legend));
            }
            int legendHeight = maxLines == 0 ? 0 : LegendPadding + maxLines * LegendLineHeight;
            y = top + cellH + legendHeight + Margin;
        }
        return new PredictionGridLayout(Margin + columns * (cellW + Margin), y, scale, placed);

        SKRectI Cell(int column, int top) => SKRectI.Create(Margin + column * (cellW + Margin), top, cellW, cellH);
    }

    /// <summary>Renders the grid.</summary>
    /// <param name="panels">The maps.</param>
    /// <param name="options">Layout options (defaults when null).</param>
    /// <returns>The picture (<see cref="SKColorType.Rgba8888"/>, opaque, white background), owned by the caller.</returns>
    public static SKBitmap Render(PredictionPanels panels, PredictionGridOptions? options = null) =>
        Render(panels, options, VisualizationFonts.Typeface);

    /// <summary>Renders with the given typeface; null draws no text (what happens on a machine without fonts).</summary>
    internal static SKBitmap Render(PredictionPanels panels, PredictionGridOptions? options, SKTypeface? typeface)
    {
        var layout = ComputeLayout(panels, options);
        var bitmap = ColorMaps.NewBitmap(layout.Width, layout.Height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = typeface is null ? null : new SKFont(typeface, FontSize);
        using var textPaint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        // Maps are magnified with nearest neighbour (crisp label edges); a photograph of another size is resampled smoothly.
        using var nearest = new SKPaint { FilterQuality = SKFilterQuality.None };
        using var smooth = new SKPaint { FilterQuality = SKFilterQuality.High };

        foreach (var panel in layout.Panels)
        {
            using (var map = PanelBitmap(panels, panel))
            using (var image = SKImage.FromBitmap(map))
            {
                bool resample = panel.Task is null && panels.ImageBitmap is not null &&
                                (map.Width != panels.Width || map.Height != panels.Height);
                canvas.DrawImage(image, panel.Bounds, resample ? smooth : nearest);
            }
            DrawText(canvas, panel.Title, panel.Bounds.Left, panel.Bounds.Top - 6, panel.Bounds.Width, font, textPaint);

            foreach (var entry in panel.Legend)
            {
                using (var swatch = new SKPaint { Color = entry.Color })
                    canvas.DrawRect(entry.Swatch, swatch);
                using (var border = new SKPaint { Color = SKColors.Gray, Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
                    canvas.DrawRect(SKRect.Create(entry.Swatch.Left - 0.5f, entry.Swatch.Top - 0.5f, entry.Swatch.Width + 1, entry.Swatch.Height + 1), border);
                DrawText(canvas, entry.Name, entry.Swatch.Right + 5, entry.Swatch.Bottom - 1, panel.Bounds.Width - SwatchSize - 5, font, textPaint);
            }
            if (panel.Task == DenseTask.Saliency && (options?.ShowLegends ?? true))
                DrawColorBar(canvas, panel.Bounds, font, textPaint);
        }
        return bitmap;
    }

    /// <summary>Renders the grid and encodes it as PNG.</summary>
    /// <param name="panels">The maps.</param>
    /// <param name="options">Layout options (defaults when null).</param>
    /// <returns>The PNG file bytes.</returns>
    public static byte[] RenderPng(PredictionPanels panels, PredictionGridOptions? options = null)
    {
        using var bitmap = Render(panels, options);
        return PngFile.Encode(bitmap);
    }

    /// <summary>Renders the grid into a PNG file (written to a temporary name, then moved into place).</summary>
    /// <param name="path">The file to write; its folder is created when missing.</param>
    /// <param name="panels">The maps.</param>
    /// <param name="options">Layout options (defaults when null).</param>
    public static void Save(string path, PredictionPanels panels, PredictionGridOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var png = RenderPng(panels, options);
        AtomicFile.Write(path, s => s.Write(png));
    }

    private static string Title(DenseTask task, bool groundTruth)
    {
        var name = task switch
        {
            DenseTask.SemanticSegmentation => "Semseg",
            DenseTask.HumanParts => "Human parts",
            DenseTask.Saliency => "Saliency",
            _ => "Normals",
        };
        return groundTruth ? name + " (GT)" : name;
    }

    private static List<LegendEntry> Legend(byte[] map, IReadOnlyList<string> names, int left, int top)
    {
        Span<bool> present = stackalloc bool[256];
        foreach (var label in map) present[label] = true;
        var entries = new List<LegendEntry>();
        for (int label = 0; label < 256; label++)
        {
            if (!present[label]) continue;
            int lineTop = top + entries.Count * LegendLineHeight;
            var swatch = SKRectI.Create(left + 1, lineTop + (LegendLineHeight - SwatchSize) / 2, SwatchSize, SwatchSize);
            entries.Add(new LegendEntry(label, ClassNames.Display(names, label), ColorMaps.LabelColor((byte)label), swatch));
        }
        return entries;
    }

    private static SKBitmap PanelBitmap(PredictionPanels p, PredictionGridPanel panel)
    {
        if (panel.Task is not { } task)
            return p.Image is not null ? ColorMaps.Image(p.Image, p.Width, p.Height) : p.ImageBitmap!.Copy();
        bool gt = panel.IsGroundTruth;
        return task switch
        {
            DenseTask.SemanticSegmentation or DenseTask.HumanParts => ColorMaps.Labels(p.ClassMap(task, gt)!, p.Width, p.Height),
            DenseTask.Saliency => ColorMaps.Saliency((gt ? p.SaliencyLabel : p.Saliency)!, p.Width, p.Height),
            _ => ColorMaps.Normals((gt ? p.SurfaceNormalsLabel : p.SurfaceNormals)!, p.Width, p.Height),
        };
    }

    private static void DrawColorBar(SKCanvas canvas, SKRectI bounds, SKFont? font, SKPaint textPaint)
    {
        // One line under the map: "0", a horizontal inferno gradient, "1".
        const int labelWidth = 12;
        int top = bounds.Bottom + LegendPadding + (LegendLineHeight - SwatchSize) / 2;
        int left = bounds.Left + labelWidth, right = bounds.Right - labelWidth;
        if (right <= left) return;
        using var paint = new SKPaint();
        for (int x = left; x < right; x++)
        {
            paint.Color = ColorMaps.SaliencyColor((float)(x - left) / Math.Max(1, right - left - 1));
            canvas.DrawRect(SKRect.Create(x, top, 1, SwatchSize), paint);
        }
        DrawText(canvas, "0", bounds.Left, top + SwatchSize - 1, labelWidth, font, textPaint);
        DrawText(canvas, "1", right + 3, top + SwatchSize - 1, labelWidth, font, textPaint);
    }

    private static void DrawText(SKCanvas canvas, string text, float x, float baseline, float maxWidth, SKFont? font, SKPaint paint)
    {
        if (font is null || maxWidth <= 0) return;
        canvas.Save();
        canvas.ClipRect(SKRect.Create(x, baseline - FontSize - 4, maxWidth, FontSize + 8));
        canvas.DrawText(text, x, baseline, font, paint); // left-aligned at x
        canvas.Restore();
    }
}
