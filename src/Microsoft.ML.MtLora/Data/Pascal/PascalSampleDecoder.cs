using System.Collections.Concurrent;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Preprocessing;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

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
internal sealed class PascalSampleDecoder
{
    private readonly PascalContextLayout _layout;
    private readonly LabelSizeMismatchHandling _mismatch;
    private readonly ConcurrentDictionary<string, bool> _resizedLabels = new(StringComparer.Ordinal);

    /// <summary>2·v/255 − 1 for v = 0..255, computed in double as the reference does, then rounded to float.</summary>
    private static readonly Tensor NormalsLookup = torch.tensor(
        Enumerable.Range(0, 256).Select(v => (float)(2.0 * v / 255.0 - 1.0)).ToArray(), ScalarType.Float32).DetachFromDisposeScope();

    /// <summary>Whether each PASCAL-Context class id 0..457 has valid normals.</summary>
    private static readonly Tensor ValidClassLookup = torch.tensor(
        PascalContextClasses.NormalsValidTable.ToArray(), ScalarType.Bool).DetachFromDisposeScope();

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
        var path = _layout.ImagePath(id);
        var (width, height, rgba) = DecodeRgba(id, path, "image", "a JPEG (or other SkiaSharp-readable) image");
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba);
    }

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
                ToMask(id, path, instance, out rows, out cols);
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
                var mask = ToMask(id, path, maskArray, out int mr, out int mc);
                if (mr != rows || mc != cols)
                    throw new PascalSampleException(id, path, $"object {k + 1}, part '{name.Value}': the mask is {mr}x{mc}; expected {rows}x{cols} like the first person's instance mask.");
                // Later parts overwrite earlier ones.
                for (int i = 0; i < mask.Length; i++) if (mask[i] != 0) target[i] = partId;
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
        var path = _layout.NormalsPath(id);
        var (nw, nh, rgba) = DecodeRgba(id, path, "normals label", "an RGB PNG");
        var labelsPath = _layout.ContextLabelsPath(id);
        EnsureExists(id, labelsPath, "PASCAL-Context LabelMap");
        int[] labelMap;
        int rows, cols;
        try
        {
            var variables = MatFile.Read(labelsPath);
            if (!variables.TryGetValue("LabelMap", out var array) || array is not MatNumericArray numeric)
                throw new PascalSampleException(id, labelsPath, "no numeric variable 'LabelMap'; expected the PASCAL-Context class id of every pixel.");
            labelMap = numeric.ToRowMajorInt32(out rows, out cols);
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException && e is not PascalSampleException)
        {
            throw new PascalSampleException(id, labelsPath, "cannot read the MAT file (" + WithoutFile(e.Message, labelsPath) + ")", e);
        }
        if (rows != nh || cols != nw)
            throw new PascalSampleException(id, labelsPath, $"LabelMap is {rows}x{cols} (rows x cols) but the normals PNG '{path}' is {nh}x{nw}; they must match.");

        using var scope = NewDisposeScope();
        var pixels = torch.tensor(rgba, [nh * nw, 4], ScalarType.Byte);
        var rgb = pixels[.., ..3].T.to(ScalarType.Int64);                                      // (3, H*W) values 0..255
        var normals = NormalsLookup.take(rgb).reshape(3, nh, nw);                               // (3, H, W) 2·v/255 − 1
        var classes = torch.tensor(labelMap, [nh * nw], ScalarType.Int32).to(ScalarType.Int64);
        using var lastClass = (ValidClassLookup.shape[0] - 1).ToScalar();
        using var classCount = ValidClassLookup.shape[0].ToScalar();
        var valid = ValidClassLookup.take(classes.clamp(TorchScalars.Zero, lastClass))
            .logical_and_(classes.ge(TorchScalars.Zero).logical_and_(classes.lt(classCount))).reshape(1, nh, nw);
        var masked = normals.where(valid, 0f);                                                   // invalid → zero vector
        if (nh != height || nw != width)
        {
            if (_mismatch == LabelSizeMismatchHandling.Error)
                throw new PascalSampleException(id, path, $"the label is {nw}x{nh} (width x height) but the image is {width}x{height}; expected the same size (LabelSizeMismatch = Error).");
            _resizedLabels.TryAdd(path, true);
            masked = CvGeometry.ResizeBicubic(masked, height, width);                           // reference: cv2 bicubic, no renormalisation
        }
        var isZero = masked.mul(masked).sum(0, keepdim: true).eq(TorchScalars.Zero);
        // A 0-d tensor, not an implicit Scalar (see TorchScalars): masked_fill with an implicitly converted Scalar crashed
        // intermittently in libtorch (Scalar::toFloat on a corrupted value) when several loader threads decoded at once.
        masked = torch.where(isZero, torch.tensor((float)DenseTasks.IgnoreLabel), masked);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(masked.contiguous().bytes).ToArray();
    }

    private byte[] FitClassMap(string id, string path, byte[] map, int mapWidth, int mapHeight, int width, int height)
    {
        if (mapWidth == width && mapHeight == height) return map;
        if (_mismatch == LabelSizeMismatchHandling.Error)
            throw new PascalSampleException(id, path, $"the label is {mapWidth}x{mapHeight} (width x height) but the image is {width}x{height}; expected the same size (LabelSizeMismatch = Error).");
        _resizedLabels.TryAdd(path, true);
        using var scope = NewDisposeScope();
        var tensor = torch.tensor(map, [1, mapHeight, mapWidth], ScalarType.Byte);
        var resized = CvGeometry.ResizeNearest(tensor, height, width).contiguous();            // (1, height, width)
        return resized.bytes.ToArray();
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

    private static int[] ToMask(string id, string path, MatNumericArray array, out int rows, out int cols)
    {
        try
        {
            return array.ToRowMajorInt32(out rows, out cols);
        }
        catch (InvalidDataException e)
        {
            throw new PascalSampleException(id, path, WithoutFile(e.Message, path), e);
        }
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

    /// <summary>Decodes an image file to RGBA bytes; a truncated or corrupt file is an error (not a partially grey image).</summary>
    private static (int Width, int Height, byte[] Rgba) DecodeRgba(string id, string path, string what, string expected)
    {
        EnsureExists(id, path, what);
        using var codec = OpenCodec(id, path, expected);
        if ((long)codec.Info.Width * codec.Info.Height > ImageLimits.MaxPixels)
            throw new PascalSampleException(id, path, ImageLimits.TooLarge(codec.Info.Width, codec.Info.Height));
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var pixels = new byte[info.BytesSize];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = pixels) result = codec.GetPixels(info, (IntPtr)p);
        }
        if (result != SKCodecResult.Success)
            throw new PascalSampleException(id, path, $"cannot decode the {what} ({result}); expected a complete {expected}.");
        return (info.Width, info.Height, pixels);
    }
}
