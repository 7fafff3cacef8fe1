using System.Globalization;
using Microsoft.ML.MtLora.Data.Formats;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data.Folder;

/// <summary>
/// Finds and decodes the label files of <see cref="DenseTaskFolderDataView"/>, by the task's kind (the formats and conversions
/// its remarks list). Every error is an <see cref="InvalidDataException"/> or <see cref="FileNotFoundException"/> whose one-line
/// message names the file, the task and what was expected.
/// </summary>
internal static class DenseTaskFolderLabels
{
    private const int PngGray = 0, PngRgb = 2, PngPalette = 3;

    // PascalSampleDecoder's normals convention: n = 2v/255 − 1.
    private static readonly float[] NormalsLookup = Enumerable.Range(0, 256).Select(v => (float)(2.0 * v / 255.0 - 1.0)).ToArray();

    /// <summary>The label file extensions a kind reads, for messages: <c>png</c> (segmentation) or <c>png|npy</c>.</summary>
    public static string Extensions(DenseTaskKind kind) => kind == DenseTaskKind.Segmentation ? "png" : "png|npy";

    /// <summary>The label file of <paramref name="id"/> in <paramref name="folder"/>: <c>&lt;id&gt;.png</c> or (not for a
    /// segmentation) <c>&lt;id&gt;.npy</c>; exactly one must exist.</summary>
    public static string Find(string folder, string id, DenseTaskDescriptor task)
    {
        string png = Path.Combine(folder, id + ".png"), npy = Path.Combine(folder, id + ".npy");
        bool hasPng = File.Exists(png), hasNpy = task.Kind != DenseTaskKind.Segmentation && File.Exists(npy);
        if (hasPng && hasNpy)
            throw new InvalidDataException($"Task '{task.Name}': image '{id}' has both '{png}' and '{npy}'; expected one label file.");
        if (hasPng) return png;
        if (hasNpy) return npy;
        string expected = task.Kind == DenseTaskKind.Segmentation ? $"'{png}'" : $"'{png}' or '{npy}'";
        throw new FileNotFoundException($"Task '{task.Name}': the label of image '{id}' is missing; expected {expected}.", png);
    }

    /// <summary>Decodes one label file to the task's column layout (Byte or Single, planar, W·H per channel).</summary>
    public static Array Read(DenseTaskDescriptor task, string path, string imagePath, int width, int height, float depthPngScale)
    {
        bool npy = path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase);
        return task.Kind switch
        {
            DenseTaskKind.Segmentation => ReadSegmentation(task, path, imagePath, width, height),
            DenseTaskKind.BinaryMap => npy ? ReadBinaryNpy(task, path, imagePath, width, height) : ReadBinaryPng(task, path, imagePath, width, height),
            DenseTaskKind.Depth => npy ? ReadDepthNpy(task, path, imagePath, width, height) : ReadDepthPng(task, path, imagePath, width, height, depthPngScale),
            _ => npy ? ReadNormalsNpy(task, path, imagePath, width, height) : ReadNormalsPng(task, path, imagePath, width, height),
        };
    }

    private static InvalidDataException Bad(DenseTaskDescriptor task, string path, string message) =>
        new($"'{path}' (task '{task.Name}'): {message}");

    private static string At(int i, int width) => string.Create(CultureInfo.InvariantCulture, $"pixel (x {i % width}, y {i / width})");

    private static void CheckSize(DenseTaskDescriptor task, string path, string imagePath, int w, int h, int width, int height)
    {
        if (w != width || h != height)
            throw Bad(task, path, $"the label is {w}×{h} but its image '{imagePath}' is {width}×{height}; expected the image's size.");
    }

    private static (int BitDepth, int ColorType) PngFormat(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var (w, h, bitDepth, colorType) = IndexedPng.ReadHeader(path);
        CheckSize(task, path, imagePath, w, h, width, height);
        return (bitDepth, colorType);
    }

    private static byte[] ReadSegmentation(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var (bitDepth, colorType) = PngFormat(task, path, imagePath, width, height);
        if (!(colorType == PngPalette || (colorType == PngGray && bitDepth == 8)))
            throw Bad(task, path, $"found a {IndexedPng.Describe(bitDepth, colorType)} PNG; a segmentation label is a palette (indexed) or 8-bit grayscale PNG of class ids.");
        var png = IndexedPng.Read(path);
        int classes = task.OutputChannels;
        var map = png.Pixels;
        for (int i = 0; i < map.Length; i++)
        {
            if (map[i] >= classes && map[i] != DenseTasks.IgnoreLabel)
                throw Bad(task, path, $"{At(i, width)} holds {map[i]}; expected a class id 0..{classes - 1} or 255 (ignore).");
        }
        return map;
    }

    private static byte[] ReadBinaryPng(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var (bitDepth, colorType) = PngFormat(task, path, imagePath, width, height);
        if (colorType != PngGray || bitDepth != 8)
            throw Bad(task, path, $"found a {IndexedPng.Describe(bitDepth, colorType)} PNG; a binary map label is an 8-bit grayscale PNG (0/1 or 0/255).");
        var map = IndexedPng.Read(path).Pixels;
        if (Array.TrueForAll(map, v => v <= 1)) return map;
        for (int i = 0; i < map.Length; i++) map[i] = map[i] > 127 ? (byte)1 : (byte)0; // v/255 > 0.5, PascalSampleDecoder.ReadSaliency
        return map;
    }

    private static NpyArray ReadNpy(DenseTaskDescriptor task, string path, string imagePath, int width, int height, int channels, bool floatOnly)
    {
        var a = NpyFile.Read(path);
        if (floatOnly && a.ElementType == NpyElementType.UInt8)
            throw Bad(task, path, $"dtype uint8; expected float32 or float64 ({(channels == 3 ? "normal vectors" : "metres")}).");
        var s = a.Shape;
        bool ok = s.Count >= 2 && s[0] == height && s[1] == width && (s.Count == 2 ? channels == 1 : s.Count == 3 && s[2] == channels);
        if (!ok)
        {
            string expected = channels == 1 ? $"({height}, {width}) or ({height}, {width}, 1)" : $"({height}, {width}, {channels})";
            throw Bad(task, path, $"shape ({string.Join(", ", s)}); expected {expected} to match its image '{imagePath}'.");
        }
        return a;
    }

    private static byte[] ReadBinaryNpy(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var a = ReadNpy(task, path, imagePath, width, height, 1, floatOnly: false);
        var map = new byte[a.Values.Length];
        for (int i = 0; i < map.Length; i++)
        {
            float v = a.Values[i];
            if (!(v >= 0 && v <= 1)) throw Bad(task, path, $"{At(i, width)} holds {v.ToString(CultureInfo.InvariantCulture)}; expected a value in 0..1.");
            map[i] = v >= 0.5f ? (byte)1 : (byte)0; // as NyudLayout.ReadEdge
        }
        return map;
    }

    private static float[] ReadDepthPng(DenseTaskDescriptor task, string path, string imagePath, int width, int height, float scale)
    {
        var (bitDepth, colorType) = PngFormat(task, path, imagePath, width, height);
        if (colorType != PngGray || bitDepth != 16)
            throw Bad(task, path, $"found a {IndexedPng.Describe(bitDepth, colorType)} PNG; a depth label PNG is 16-bit grayscale (value × DepthPngScale = metres, 0 = hole), or use a float .npy in metres.");
        var (_, _, values) = IndexedPng.ReadGray16(path);
        var depth = new float[values.Length];
        for (int i = 0; i < depth.Length; i++) depth[i] = values[i] * scale;
        return depth;
    }

    private static float[] ReadDepthNpy(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var a = ReadNpy(task, path, imagePath, width, height, 1, floatOnly: true);
        int bad = Array.FindIndex(a.Values, v => !(v >= 0) || float.IsInfinity(v));
        if (bad >= 0)
            throw Bad(task, path, $"{At(bad, width)} holds depth {a.Values[bad].ToString(CultureInfo.InvariantCulture)}; expected a finite value ≥ 0 (metres, 0 = hole).");
        return a.Values;
    }

    private static float[] ReadNormalsPng(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var (bitDepth, colorType) = PngFormat(task, path, imagePath, width, height);
        if (colorType != PngRgb || bitDepth != 8)
            throw Bad(task, path, $"found a {IndexedPng.Describe(bitDepth, colorType)} PNG; a normals label PNG is 8-bit RGB (n = 2v/255 − 1, black = invalid).");
        if ((long)width * height > ImageLimits.MaxPixels) throw Bad(task, path, ImageLimits.TooLarge(width, height));
        using var codec = SKCodec.Create(path, out var created)
            ?? throw Bad(task, path, $"cannot decode the PNG ({created}); expected an 8-bit RGB PNG.");
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[info.BytesSize];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba) result = codec.GetPixels(info, (IntPtr)p);
        }
        if (result != SKCodecResult.Success) throw Bad(task, path, $"cannot decode the PNG ({result}); expected a complete 8-bit RGB PNG.");
        int n = width * height;
        var planar = new float[3 * n];
        for (int i = 0; i < n; i++)
        {
            byte r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
            bool invalid = r == 0 && g == 0 && b == 0;
            planar[i] = invalid ? DenseTasks.IgnoreLabel : NormalsLookup[r];
            planar[n + i] = invalid ? DenseTasks.IgnoreLabel : NormalsLookup[g];
            planar[2 * n + i] = invalid ? DenseTasks.IgnoreLabel : NormalsLookup[b];
        }
        return planar;
    }

    private static float[] ReadNormalsNpy(DenseTaskDescriptor task, string path, string imagePath, int width, int height)
    {
        var a = ReadNpy(task, path, imagePath, width, height, 3, floatOnly: true);
        int n = width * height;
        var planar = new float[3 * n];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                float v = a.Values[3 * i + c];
                if (!float.IsFinite(v)) throw Bad(task, path, $"{At(i, width)} holds a non-finite normal; expected finite values (255 in all three = invalid).");
                planar[c * n + i] = v;
            }
        }
        return planar;
    }
}
