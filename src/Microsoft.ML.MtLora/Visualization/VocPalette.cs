using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// The PASCAL VOC colour map: label <c>i</c> gets the colour built from the bits of <c>i</c>
/// (bit 0 → red, bit 1 → green, bit 2 → blue, filled from the most significant colour bit down),
/// the palette of the VOC ground-truth PNGs. Label 0 is black, 1 is (128, 0, 0), 2 is (0, 128, 0), 15 (person) is (192, 128, 128).
/// </summary>
public static class VocPalette
{
    private static readonly SKColor[] Colors = Build();

    /// <summary>The colour of a label (0..255).</summary>
    /// <param name="label">The label.</param>
    /// <returns>The opaque colour the VOC palette gives it.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The label is outside 0..255.</exception>
    public static SKColor GetColor(int label)
    {
        if ((uint)label > 255) throw new ArgumentOutOfRangeException(nameof(label), label, "A VOC palette label is in 0..255.");
        return Colors[label];
    }

    private static SKColor[] Build()
    {
        var colors = new SKColor[256];
        for (int i = 0; i < 256; i++)
        {
            int r = 0, g = 0, b = 0, c = i;
            for (int j = 0; j < 8; j++)
            {
                r |= ((c >> 0) & 1) << (7 - j);
                g |= ((c >> 1) & 1) << (7 - j);
                b |= ((c >> 2) & 1) << (7 - j);
                c >>= 3;
            }
            colors[i] = new SKColor((byte)r, (byte)g, (byte)b);
        }
        return colors;
    }
}
