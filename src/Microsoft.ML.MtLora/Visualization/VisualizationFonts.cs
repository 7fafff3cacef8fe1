using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// Finds a typeface that can draw text: a common sans-serif family, else SkiaSharp's default typeface. SkiaSharp's Linux
/// "NoDependencies" build has no fontconfig, so both can be empty; then the first loadable font file from the usual font folders
/// is used, and when there is none, text is skipped (null).
/// </summary>
internal static class VisualizationFonts
{
    private static readonly Lazy<SKTypeface?> Resolved = new(Resolve);

    private static readonly string[] FontFolders =
        ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts", @"C:\Windows\Fonts"];

    /// <summary>A typeface with glyphs, or null when the machine has no usable font.</summary>
    public static SKTypeface? Typeface => Resolved.Value;

    private static SKTypeface? Resolve()
    {
        // A sans-serif face reads best in small legends; SkiaSharp's default face is often a serif one.
        foreach (var family in new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Segoe UI", "Arial", "Helvetica" })
        {
            var match = SKFontManager.Default.MatchFamily(family);
            if (HasGlyphs(match) && match.FamilyName.Equals(family, StringComparison.OrdinalIgnoreCase)) return match;
        }
        if (HasGlyphs(SKTypeface.Default)) return SKTypeface.Default;
        foreach (var folder in FontFolders)
        {
            if (!Directory.Exists(folder)) continue;
            IEnumerable<string> files;
            try
            {
                files = Directory.EnumerateFiles(folder, "*.ttf", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            // Prefer a regular sans face; otherwise any file that loads.
            foreach (var file in files.OrderBy(f => Path.GetFileName(f).Contains("Sans", StringComparison.OrdinalIgnoreCase) && !Path.GetFileName(f).Contains('-') ? 0 : 1))
            {
                var typeface = SKTypeface.FromFile(file);
                if (HasGlyphs(typeface)) return typeface;
                typeface?.Dispose();
            }
        }
        return null;
    }

    private static bool HasGlyphs(SKTypeface? typeface) => typeface is not null && typeface.GlyphCount > 0;
}
