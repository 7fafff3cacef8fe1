using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Preprocessing;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>A sample of the PASCAL-Context dataset that cannot be read: names the sample id, the file and what was expected.</summary>
public sealed class PascalSampleException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="id">The sample id.</param>
    /// <param name="file">The file at fault (or null when the fault is not one file's).</param>
    /// <param name="message">What is wrong and what was expected.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public PascalSampleException(string id, string? file, string message, Exception? inner = null)
        : base($"PASCAL-Context sample '{id}'{(file is null ? "" : $", file '{file}'")}: {message}", inner)
    {
        SampleId = id;
        FilePath = file;
    }

    /// <summary>The sample id.</summary>
    public string SampleId { get; }

    /// <summary>The file at fault, when one file is.</summary>
    public string? FilePath { get; }
}

/// <summary>
/// Decodes one PASCAL-Context sample's image and labels with the reference's rules (data/mtl_ds.py), into managed arrays at
/// the image's resolution.
/// </summary>
/// <remarks>
/// Managed code and SkiaSharp only, no TorchSharp: the data-loader workers of <see cref="DenseBatchReader"/> decode samples
/// on their own threads, and TorchSharp 0.107 is not safe there (see the remarks of <see cref="DenseBatchReader"/>).
/// The instance is immutable, so one decoder serves every worker.
/// </remarks>
internal sealed class PascalSampleDecoder
{
    private readonly PascalContextLayout _layout;
    private readonly LabelSizeMismatchHandling _mismatch;
    private readonly ConcurrentDictionary<string, bool> _resizedLabels = new(StringComparer.Ordinal);

    /// <summary>2·v/255 − 1 for v = 0..255, computed in double as the reference does, then rounded to float.</summary>
    private static readonly float[] NormalsLookup = Enumerable.Range(0, 256).Select(v => (float)(2.0 * v / 255.0 - 1.0)).ToArray();

    public PascalSampleDecoder(PascalContextLayout layout, LabelSizeMismatchHandling mismatch)
    {
        _layout = layout;
        _mismatch = mismatch;
    }

    /// <summary>The label files (distinct paths) whose size differed from their image's and that were resized to it.</summary>
    public ICollection<string> ResizedLabelFiles => _resizedLabels.Keys;

    /// <summary>The image size from the file header, without decoding the pixels.</summary>
    public (int Width, int Height) ReadImageSize(string id)
    {
        var path = _layout.ImagePath(id);
        EnsureExists(id, path, "image");
        using var codec = OpenCodec(id, path, "a JPEG (or other SkiaSharp-readable) image");
        return (codec.Info.Width, codec.Info.Height);
    }

    /// <summary>Decodes the image (RGB, as the reference's <c>Image.open(...).convert('RGB')</c>) into an <see cref="MLImage"/>.</summary>
    public MLImage ReadImage(string id)
    {
        byte[] rgba = [];
        var (width, height) = DecodeImage(id, ref rgba);
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba.Length == 4 * width * height ? rgba : rgba[..(4 * width * height)]);
    }

    /// <summary>
    /// Decodes the image as RGBA bytes into <paramref name="rgba"/>, which is replaced by a larger array only when it is too
    /// small (a loader worker passes the same buffer for every sample). A grayscale JPEG comes out with R = G = B.
    /// </summary>
    public (int Width, int Height) DecodeImage(string id, ref byte[] rgba) =>
        DecodeRgba(id, _layout.ImagePath(id), "image", "a JPEG (or other SkiaSharp-readable) image", ref rgba);

    /// <summary>The semseg class map: palette indices (palette PNG) or gray values (grayscale PNG), 0..20 and 255 = ignore.</summary>
    public byte[] ReadSemseg(string id, int width, int height)
    {
        var path = _layout.SemsegPath(id);
        var map = ReadIndexed(id, path, "semseg label");
        CheckClassIds(id, path, map, DenseTask.SemanticSegmentation.OutputChannels());
        return FitClassMap(id, path, map.Pixels, map.Width, map.Height, width, height);
    }

    /// <summary>The saliency map binarised as the reference does: v/255 &gt; 0.5 → 1, else 0.</summary>
    public byte[] ReadSaliency(string id, int width, int height)
    {
        var path = _layout.SaliencyPath(id);
        var map = ReadIndexed(id, path, "saliency label");
        var binary = new byte[map.Pixels.Length];
        // v/255 > 0.5 ⇔ v > 127.5 ⇔ v ≥ 128 for integers.
        var src = map.Pixels;
        for (int i = 0; i < src.Length; i++) binary[i] = src[i] >= 128 ? (byte)1 : (byte)0;
        return FitClassMap(id, path, binary, map.Width, map.Height, width, height);
    }

    /// <summary>
    /// Whether the sample has an annotated person: a person object (class_ind 15) with a non-empty mask in
    /// <c>human_parts/&lt;id&gt;.mat</c> (the reference's <c>ImageSets/Parts</c> criterion with area threshold 0).
    /// </summary>
    public bool HasAnnotatedPerson(string id)
    {
        var path = _layout.HumanPartsPath(id);
        return HasAnnotatedPerson(id, path, ReadPartObjects(id, path));
    }

    private static bool HasAnnotatedPerson(string id, string path, MatStructArray? objects)
    {
        if (objects is null) return false;
        for (int k = 0; k < objects.Count; k++)
        {
            if (ObjectClass(id, path, objects, k) != PascalContextClasses.PersonClass) continue;
            var mask = Field(id, path, objects, k, "mask", 2);
            if (mask is MatNumericArray numeric && AnyNonZero(numeric)) return true;
        }
        return false;
    }

    /// <summary>
    /// The human-parts map (0 background, 1..6 parts) or null when the image has no person with parts (the reference then
    /// returns an all-zero map, which becomes all-ignore).
    /// </summary>
    /// <param name="id">The sample.</param>
    /// <param name="width">Image width.</param>
    /// <param name="height">Image height.</param>
    /// <param name="listedWithPerson">Whether the parts index lists a person for the image; null to derive it from the .mat file.</param>
    public byte[]? ReadHumanParts(string id, int width, int height, bool? listedWithPerson)
    {
        if (listedWithPerson == false) return null;
        var path = _layout.HumanPartsPath(id);
        var objects = ReadPartObjects(id, path);
        if (objects is null) return null;
        if (listedWithPerson is null && !HasAnnotatedPerson(id, path, objects)) return null;

        byte[]? target = null;
        int rows = 0, cols = 0;
        for (int k = 0; k < objects.Count; k++)
        {
            if (ObjectClass(id, path, objects, k) != PascalContextClasses.PersonClass) continue;
            var parts = Field(id, path, objects, k, "parts", 3);
            if (parts.Count == 0) continue;                 // a person without parts is ignored
            if (parts is not MatStructArray partArray)
                throw new PascalSampleException(id, path, $"object {k + 1}'s 'parts' is a {parts.GetType().Name}; expected a struct array with fields part_name and mask.");
            if (target is null)
            {
                var instance = Field(id, path, objects, k, "mask", 2) as MatNumericArray
                    ?? throw new PascalSampleException(id, path, $"object {k + 1}'s 'mask' is not a numeric array.");
                (rows, cols) = MaskShape(id, path, instance);
                target = new byte[rows * cols];
            }
            for (int p = 0; p < partArray.Count; p++)
            {
                var nameArray = Field(id, path, partArray, p, "part_name", 0);
                if (nameArray is not MatCharArray name)
                    throw new PascalSampleException(id, path, $"object {k + 1}, part {p + 1}: 'part_name' is not a string.");
                if (!PascalContextClasses.HumanPartIds.TryGetValue(name.Value, out var partId))
                    throw new PascalSampleException(id, path, $"object {k + 1}, part {p + 1}: unknown part name '{name.Value}'; expected one of {string.Join(", ", PascalContextClasses.HumanPartIds.Keys.Order())}.");
                var maskArray = Field(id, path, partArray, p, "mask", 1) as MatNumericArray
                    ?? throw new PascalSampleException(id, path, $"object {k + 1}, part '{name.Value}': 'mask' is not a numeric array.");
                var (mr, mc) = MaskShape(id, path, maskArray);
                if (mr != rows || mc != cols)
                    throw new PascalSampleException(id, path, $"object {k + 1}, part '{name.Value}': the mask is {mr}x{mc}; expected {rows}x{cols} like the first person's instance mask.");
                Paint(id, path, maskArray, target, rows, cols, partId);           // later parts overwrite earlier ones
            }
        }
        if (target is null) return null;
        return FitClassMap(id, path, target, cols, rows, width, height);
    }

    /// <summary>
    /// The normals, CHW (x, y, z planes) as n = 2v/255 − 1 from the RGB PNG (R → x, G → y, B → z), with the pixels whose
    /// <c>LabelMap</c> class has no valid normal set to 255 in all channels.
    /// </summary>
    public float[] ReadNormals(string id, int width, int height)
    {
        var sample = new SourceSample();
        DecodeNormals(id, width, height, sample, cache: null);
        return SampleTransform.ToPlanarWithIgnore(sample.Normals.AsSpan(0, 4 * width * height));
    }

    /// <summary>
    /// The normals at the image size as 4·W·H floats (x, y, z, 0) into <see cref="SourceSample.Normals"/> (grown when too
    /// small): n = 2v/255 − 1 from the RGB PNG, and the zero vector where the <c>LabelMap</c> class has no valid normal (the
    /// reference's form before AddIgnoreRegions). A PNG of another size is resized to the image bicubically without
    /// renormalisation, as the reference does at load time. The validity mask comes from <paramref name="cache"/> when it
    /// holds it (the LabelMap file is then not read).
    /// </summary>
    public void DecodeNormals(string id, int width, int height, SourceSample sample, LabelCache? cache)
    {
        var path = _layout.NormalsPath(id);
        var (nw, nh) = DecodeRgba(id, path, "normals label", "an RGB PNG", ref sample.Scratch);
        int count = nw * nh;
        if (cache is null) sample.ValidBuffer = ReadNormalsValidity(id, path, nw, nh);
        else cache.Get(id, LabelCache.NormalsValidity, count, ref sample.ValidBuffer, () => ReadNormalsValidity(id, path, nw, nh));

        bool resize = nh != height || nw != width;
        if (resize && _mismatch == LabelSizeMismatchHandling.Error)
            throw new PascalSampleException(id, path, $"the label is {nw}x{nh} (width x height) but the image is {width}x{height}; expected the same size (LabelSizeMismatch = Error).");
        float[] decoded;
        if (resize)
        {
            decoded = new float[4 * count];
        }
        else
        {
            TransformScratch.Grow(ref sample.Normals, 4 * count);
            decoded = sample.Normals;
        }
        var v = MemoryMarshal.Cast<float, Vector128<float>>(decoded.AsSpan(0, 4 * count));
        var rgba = sample.Scratch;
        var valid = sample.ValidBuffer;
        var lookup = NormalsLookup;
        for (int i = 0; i < count; i++)
        {
            int o = 4 * i;
            v[i] = valid[i] != 0
                ? Vector128.Create(lookup[rgba[o]], lookup[rgba[o + 1]], lookup[rgba[o + 2]], 0f)
                : Vector128<float>.Zero;                                                        // invalid → zero vector
        }
        if (resize)
        {
            TransformScratch.Grow(ref sample.Normals, 4 * width * height);
            _resizedLabels.TryAdd(path, true);
            CvGeometry.ResizeCubic(decoded.AsSpan(0, 4 * count), nw, nh, sample.Normals.AsSpan(0, 4 * width * height), width, height); // reference: cv2 bicubic, no renormalisation
        }
        sample.HasNormals = true;
    }

    /// <summary>
    /// Row-major 1/0 per pixel: whether its <c>LabelMap</c> class (pascal-context/trainval/&lt;id&gt;.mat) has valid normals;
    /// the map must have the normals PNG's size (<paramref name="rows"/> × <paramref name="cols"/>).
    /// </summary>
    private byte[] ReadNormalsValidity(string id, string normalsPath, int cols, int rows)
    {
        var labelsPath = _layout.ContextLabelsPath(id);
        EnsureExists(id, labelsPath, "PASCAL-Context LabelMap");
        MatNumericArray labelMap;
        try
        {
            var variables = MatFile.Read(labelsPath);
            if (!variables.TryGetValue("LabelMap", out var array) || array is not MatNumericArray numeric)
                throw new PascalSampleException(id, labelsPath, "no numeric variable 'LabelMap'; expected the PASCAL-Context class id of every pixel.");
            labelMap = numeric;
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException && e is not PascalSampleException)
        {
            throw new PascalSampleException(id, labelsPath, "cannot read the MAT file (" + WithoutFile(e.Message, labelsPath) + ")", e);
        }
        if (!labelMap.Is2D(out int r, out int c) || r != rows || c != cols)
            throw new PascalSampleException(id, labelsPath, $"LabelMap is {labelMap.ShapeText} (rows x cols) but the normals PNG '{normalsPath}' is {rows}x{cols}; they must match.");
        var table = PascalContextClasses.NormalsValidTable;
        var mask = new byte[rows * cols];
        // LabelMap is column-major (MATLAB); pixel (r, c) is at c·rows + r. Classes outside the table are invalid.
        for (int x = 0; x < cols; x++)
        {
            for (int y = 0; y < rows; y++)
            {
                long cls = ClassAt(labelMap, x * rows + y);
                mask[y * cols + x] = cls >= 0 && cls < table.Length && table[(int)cls] ? (byte)1 : (byte)0;
            }
        }
        return mask;
    }

    /// <summary>A LabelMap value as an integer class id (−1 when it is not a whole number).</summary>
    private static long ClassAt(MatNumericArray array, int index)
    {
        switch (array.Class)
        {
            case MatClass.UInt16: return ((ushort[])array.Data)[index];
            case MatClass.UInt8: return ((byte[])array.Data)[index];
            default:
                double value = array.GetDouble(index);
                return value == Math.Floor(value) && value >= 0 && value < int.MaxValue ? (long)value : -1;
        }
    }

    private byte[] FitClassMap(string id, string path, byte[] map, int mapWidth, int mapHeight, int width, int height)
    {
        if (mapWidth == width && mapHeight == height) return map;
        if (_mismatch == LabelSizeMismatchHandling.Error)
            throw new PascalSampleException(id, path, $"the label is {mapWidth}x{mapHeight} (width x height) but the image is {width}x{height}; expected the same size (LabelSizeMismatch = Error).");
        _resizedLabels.TryAdd(path, true);
        var resized = new byte[width * height];
        CvGeometry.ResizeNearest(map, mapWidth, mapHeight, resized, width, height);
        return resized;
    }

    private MatStructArray? ReadPartObjects(string id, string path)
    {
        EnsureExists(id, path, "human-parts annotation");
        IReadOnlyDictionary<string, MatArray> variables;
        try
        {
            variables = MatFile.Read(path);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException)
        {
            throw new PascalSampleException(id, path, "cannot read the MAT file (" + WithoutFile(e.Message, path) + ")", e);
        }
        if (!variables.TryGetValue("anno", out var anno) || anno is not MatStructArray annoStruct || annoStruct.Count < 1)
            throw new PascalSampleException(id, path, "no struct variable 'anno'; expected the Pascal-Part annotation (anno.imname, anno.objects).");
        int objectsField = IndexOf(annoStruct.FieldNames, "objects", 1);
        if (objectsField < 0)
            throw new PascalSampleException(id, path, $"'anno' has fields [{string.Join(", ", annoStruct.FieldNames)}]; expected a field 'objects' (field 2 in the reference).");
        var objects = annoStruct.Get(0, objectsField);
        if (objects.Count == 0) return null;
        if (objects is not MatStructArray objectArray)
            throw new PascalSampleException(id, path, $"anno.objects is a {objects.GetType().Name}; expected a struct array with fields class, class_ind, mask, parts.");
        return objectArray;
    }

    private static int ObjectClass(string id, string path, MatStructArray objects, int k)
    {
        var value = Field(id, path, objects, k, "class_ind", 1);
        if (value is not MatNumericArray numeric || numeric.Count < 1)
            throw new PascalSampleException(id, path, $"object {k + 1}: 'class_ind' is not a number; expected the VOC class index (15 = person).");
        return (int)numeric.GetDouble(0);
    }

    /// <summary>A struct field by name, or by the reference's position when the file names it differently.</summary>
    private static MatArray Field(string id, string path, MatStructArray array, int index, string name, int position)
    {
        int f = IndexOf(array.FieldNames, name, position);
        if (f < 0)
            throw new PascalSampleException(id, path, $"struct '{array.Name}' has fields [{string.Join(", ", array.FieldNames)}]; expected a field '{name}'.");
        return array.Get(index, f);
    }

    private static int IndexOf(IReadOnlyList<string> names, string name, int position)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        return position < names.Count ? position : -1;
    }

    private static (int Rows, int Cols) MaskShape(string id, string path, MatNumericArray array)
    {
        if (!array.Is2D(out int rows, out int cols))
            throw new PascalSampleException(id, path, $"MAT array '{array.Name}' has dimensions [{array.ShapeText}]; expected a 2-D array.");
        return (rows, cols);
    }

    /// <summary>Sets <paramref name="value"/> in the row-major target wherever the (column-major) mask is non-zero.</summary>
    private static void Paint(string id, string path, MatNumericArray mask, byte[] target, int rows, int cols, byte value)
    {
        if (mask.Class == MatClass.UInt8)
        {
            // The usual case (uint8 / logical masks): read MATLAB's column-major bytes directly, no row-major copy.
            var data = (byte[])mask.Data;
            for (int c = 0; c < cols; c++)
            {
                var column = data.AsSpan(c * rows, rows);
                if (!column.ContainsAnyExcept((byte)0)) continue;
                for (int r = 0; r < rows; r++) if (column[r] != 0) target[r * cols + c] = value;
            }
            return;
        }
        int[] rowMajor;
        try
        {
            rowMajor = mask.ToRowMajorInt32(out _, out _);
        }
        catch (InvalidDataException e)
        {
            throw new PascalSampleException(id, path, WithoutFile(e.Message, path), e);
        }
        for (int i = 0; i < rowMajor.Length; i++) if (rowMajor[i] != 0) target[i] = value;
    }

    private static bool AnyNonZero(MatNumericArray array)
    {
        for (int i = 0; i < array.Count; i++) if (array.GetDouble(i) != 0) return true;
        return false;
    }

    /// <summary>A class map holds class ids below the task's class count, or 255 (ignore): anything else is a damaged or
    /// foreign label file, reported here so inspect-data, evaluation and training all name it.</summary>
    private static void CheckClassIds(string id, string path, IndexedImage map, int classes)
    {
        int i = map.Pixels.AsSpan().IndexOfAnyInRange((byte)classes, (byte)(DenseTasks.IgnoreLabel - 1));
        if (i >= 0)
            throw new PascalSampleException(id, path, $"pixel (x {i % map.Width}, y {i / map.Width}) holds class id {map.Pixels[i]}; expected 0..{classes - 1} or {DenseTasks.IgnoreLabel} (ignore).");
    }

    private static IndexedImage ReadIndexed(string id, string path, string what)
    {
        EnsureExists(id, path, what);
        try
        {
            return IndexedPng.Read(path);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException)
        {
            throw new PascalSampleException(id, path, $"cannot read the {what} ({WithoutFile(e.Message, path)}); expected an 8-bit palette or grayscale PNG.", e);
        }
    }

    /// <summary>A format reader's message without its leading file name, which the sample's message already gives.</summary>
    private static string WithoutFile(string message, string path)
    {
        foreach (var prefix in new[] { $"PNG '{path}': ", $"MAT file '{path}', ", $"MAT file '{path}': " })
            if (message.StartsWith(prefix, StringComparison.Ordinal)) return message[prefix.Length..];
        return message;
    }

    private static void EnsureExists(string id, string path, string what)
    {
        if (!File.Exists(path))
            throw new PascalSampleException(id, path, $"the {what} file does not exist.");
    }

    private static SKCodec OpenCodec(string id, string path, string expected)
    {
        SKCodec? codec;
        try
        {
            codec = SKCodec.Create(path, out var result);
            if (codec is null)
                throw new PascalSampleException(id, path, $"cannot decode the file ({result}); expected {expected}.");
        }
        catch (IOException e) when (e is not PascalSampleException)
        {
            throw new PascalSampleException(id, path, $"cannot open the file ({e.Message}).", e);
        }
        return codec;
    }

    /// <summary>
    /// Decodes an image file to RGBA bytes in <paramref name="pixels"/> (replaced by a larger array only when too small); a
    /// truncated or corrupt file is an error (not a partially grey image).
    /// </summary>
    private static (int Width, int Height) DecodeRgba(string id, string path, string what, string expected, ref byte[] pixels)
    {
        EnsureExists(id, path, what);
        using var codec = OpenCodec(id, path, expected);
        if ((long)codec.Info.Width * codec.Info.Height > ImageLimits.MaxPixels)
            throw new PascalSampleException(id, path, ImageLimits.TooLarge(codec.Info.Width, codec.Info.Height));
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var buffer = TransformScratch.Grow(ref pixels, info.BytesSize);
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = buffer) result = codec.GetPixels(info, (IntPtr)p);
        }
        if (result != SKCodecResult.Success)
            throw new PascalSampleException(id, path, $"cannot decode the {what} ({result}); expected a complete {expected}.");
        return (info.Width, info.Height);
    }
}
