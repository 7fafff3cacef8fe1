// Score images with an exported MTLoRA model.onnx using ML.NET's standard ONNX path and nothing else: LoadImages →
// ResizeImages → ExtractPixels → (the model's per-channel normalisation) → ApplyOnnxModel. No Microsoft.ML.MtLora, no
// TorchSharp, no libtorch: this is how a trained model is served wherever ML.NET and ONNX Runtime run.
//
//   dotnet run --project src/Samples/Mtlora.Cli -- export-onnx --model model.zip --out model.onnx
//   dotnet run --project src/Samples/OnnxScoring -- --model model.onnx --images photos/ --out onnx-predictions/
//
// The raw outputs (logits for class maps and binary maps) are turned into predictions exactly as MtLoraTransformer does
// it (DenseOutputs.cs): resized back to each image's size (bilinear, half-pixel), then post-processed by each task's kind,
// which the exporter writes into the metadata (mtlora.kinds, e.g. "semseg:segmentation,depth:depth"; models exported
// before it have PASCAL-Context tasks, known by name). Per image and task it writes the values `mtlora predict` writes,
// under its flat names (class ids as gray rather than palette PNGs, depth pictures gray rather than inferno):
//   segmentation     <name>.<task>.png  8-bit class ids (argmax; any number of classes up to 256)
//   binary_map       <name>.<task>.png  8-bit gray, round(sigmoid · 255)
//   surface_normals  <name>.<task>.png  RGB, round((n + 1)/2 · 255) of the unit normals
//   depth            <name>.<task>.npy  float32 H×W, the values as predicted; and <name>.<task>.png, gray, near dark
// and prints one line per image.
//
// With --io io.safetensors instead of --images, it checks the model against the outputs the reference PyTorch code recorded
// for the same weights (ReferenceCheck.cs): ONNX Runtime alone reproduces the reference, exit code 0 when within tolerance.
//
// The one difference from MtLoraTransformer is the resize into the network: ML.NET's ResizeImages instead of the bicubic
// resize the model was trained with. Images already at the network's size (metadata mtlora.image_size) are not resized by
// either, and then the two agree on every class id (test/.../Onnx/OnnxScoringSampleTests.cs).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;
using OnnxScoring;
using SkiaSharp;

string? Arg(string name) { int i = Array.IndexOf(args, "--" + name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

// Check mode: the exported model against the outputs the reference PyTorch code recorded (io.safetensors).
if (Arg("model") is { } checkedModel && Arg("io") is { } ioPath)
    return ReferenceCheck.Run(checkedModel, ioPath, double.Parse(Arg("tolerance") ?? "1e-4", System.Globalization.CultureInfo.InvariantCulture), Console.Out);

if (Arg("model") is not { } modelPath || Arg("images") is not { } imageFolder)
{
    Console.Error.WriteLine("usage: OnnxScoring --model <model.onnx> --images <folder> [--out onnx-predictions]  |  --model <model.onnx> --io <io.safetensors> [--tolerance 1e-4]");
    return 2;
}
var outDir = Directory.CreateDirectory(Arg("out") ?? "onnx-predictions").FullName;

// What the exporter wrote into the model: tasks, input size and normalisation (metadata keys mtlora.*).
var model = ModelInfo.Read(modelPath);
int s = model.ImageSize;

var ml = new MLContext(seed: 0);
var files = ml.Data.LoadFromEnumerable(Directory.EnumerateFiles(imageFolder)
    .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".jpg" or ".jpeg" or ".png" or ".bmp")
    .Order(StringComparer.Ordinal).Select(f => new ImageFile { Name = Path.GetFileName(f) }).ToList());

// The network takes (N, 3, S, S) float32 planes, RGB, as (pixel/255 − mean)/std per channel. ExtractPixels gives the
// planes scaled to 0..1; the per-channel mean and std are one small custom mapping.
var planes = new VectorDataViewType(NumberDataViewType.Single, 3, s, s);
var pixelsSchema = SchemaDefinition.Create(typeof(PixelsRow));
pixelsSchema[nameof(PixelsRow.Pixels)].ColumnType = planes;
var inputSchema = SchemaDefinition.Create(typeof(NetworkInputRow));
inputSchema["input"].ColumnType = planes;
var pipeline = ml.Transforms.LoadImages("Image", imageFolder, nameof(ImageFile.Name))
    .Append(ml.Transforms.ResizeImages("Resized", s, s, "Image", ImageResizingEstimator.ResizingKind.Fill))
    .Append(ml.Transforms.ExtractPixels(nameof(PixelsRow.Pixels), "Resized", interleavePixelColors: false, scaleImage: 1f / 255f))
    .Append(ml.Transforms.CustomMapping<PixelsRow, NetworkInputRow>((from, to) => to.Input = model.Normalize(from.Pixels),
        contractName: null, inputSchemaDefinition: pixelsSchema, outputSchemaDefinition: inputSchema))
    .Append(ml.Transforms.ApplyOnnxModel(model.Tasks.ToArray(), ["input"], modelPath));
using var scorer = (IDisposable)pipeline.Fit(files);
var scored = ((ITransformer)scorer).Transform(files);

var schema = scored.Schema;
using var cursor = scored.GetRowCursor(model.Tasks.Select(t => schema[t]).Append(schema["Image"]).Append(schema[nameof(ImageFile.Name)]));
var nameGetter = cursor.GetGetter<ReadOnlyMemory<char>>(schema[nameof(ImageFile.Name)]);
var imageGetter = cursor.GetGetter<MLImage>(schema["Image"]);
var outputGetters = model.Tasks.ToDictionary(t => t, t => cursor.GetGetter<VBuffer<float>>(schema[t]));
while (cursor.MoveNext())
{
    ReadOnlyMemory<char> name = default;
    MLImage image = null!;
    nameGetter(ref name);
    imageGetter(ref image);
    int h = image.Height, w = image.Width;
    var stem = Path.GetFileNameWithoutExtension(name.ToString());
    var summary = new List<string>();
    foreach (var task in model.Tasks)
    {
        VBuffer<float> raw = default;
        outputGetters[task](ref raw);
        var logits = DenseOutputs.Resize(raw.DenseValues().ToArray(), model.Channels[task], s, s, h, w); // (C, H, W) at the image's size
        var file = Path.Combine(outDir, $"{stem}.{task}.png");
        switch (model.Kinds.GetValueOrDefault(task))
        {
            case "segmentation":
                var classes = DenseOutputs.ClassMap(logits, model.Channels[task], h, w);
                Png.SaveGray(file, classes, w, h);
                summary.Add($"{task} {classes.Distinct().Count()} classes");
                break;
            case "binary_map":
                var probability = DenseOutputs.Sigmoid(logits);
                Png.SaveGray(file, probability.Select(p => (byte)Math.Round(p * 255)).ToArray(), w, h);
                summary.Add($"{task} mean {probability.Average():F3}");
                break;
            case "surface_normals":
                var normals = DenseOutputs.Normalize(logits, h, w);
                Png.SaveNormals(file, normals, w, h);
                summary.Add(task);
                break;
            case "depth":
                // The values as predicted (metres for NYUD), and a gray picture of them: the nearest dark, the farthest bright.
                Npy.SaveFloat32(Path.ChangeExtension(file, ".npy"), logits, h, w);
                float near = logits.Min(), far = logits.Max(), scale = far > near ? 255 / (far - near) : 0;
                Png.SaveGray(file, logits.Select(d => (byte)Math.Round((d - near) * scale)).ToArray(), w, h);
                summary.Add($"{task} {near:G3}..{far:G3}");
                break;
            default:
                summary.Add($"{task}: {logits.Length} raw values (no post-processing known)");
                break;
        }
    }
    Console.WriteLine($"{name}: {w}x{h}, {string.Join(", ", summary)}");
}
return 0;

sealed class ImageFile { public string Name { get; set; } = ""; }

sealed class PixelsRow { public float[] Pixels { get; set; } = []; }

sealed class NetworkInputRow
{
    [ColumnName("input")]
    public float[] Input { get; set; } = [];
}

namespace OnnxScoring
{
    /// <summary>The MTLoRA metadata of an exported model, read through ONNX Runtime.</summary>
    internal sealed class ModelInfo
    {
        public required IReadOnlyList<string> Tasks { get; init; }
        public required IReadOnlyDictionary<string, int> Channels { get; init; }
        public required IReadOnlyDictionary<string, string> Kinds { get; init; }
        public required int ImageSize { get; init; }
        public required float[] Mean { get; init; }
        public required float[] Std { get; init; }

        public static ModelInfo Read(string path)
        {
            using var session = new InferenceSession(path);
            var meta = session.ModelMetadata.CustomMetadataMap;
            if (!meta.TryGetValue("mtlora.format", out _))
                throw new InvalidDataException($"'{path}' has no MTLoRA metadata: export it with 'mtlora export-onnx'.");
            float[] Floats(string key) => meta[key].Split(',').Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var outputs = meta["mtlora.outputs"].Split(',').Select(p => p.Split(':')).ToDictionary(p => p[0], p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
            // Each task's kind ("semseg:segmentation,depth:depth,..."); a model exported before mtlora.kinds existed has
            // PASCAL-Context tasks, known by name.
            var kinds = meta.TryGetValue("mtlora.kinds", out var k)
                ? k.Split(',').Select(p => p.Split(':')).ToDictionary(p => p[0], p => p[1])
                : PascalKinds;
            return new ModelInfo
            {
                Tasks = meta["mtlora.tasks"].Split(','),
                Channels = outputs,
                Kinds = kinds,
                ImageSize = int.Parse(meta["mtlora.image_size"], System.Globalization.CultureInfo.InvariantCulture),
                Mean = Floats("mtlora.mean"),
                Std = Floats("mtlora.std"),
            };
        }

        private static readonly Dictionary<string, string> PascalKinds = new()
        {
            ["semseg"] = "segmentation", ["human_parts"] = "segmentation", ["sal"] = "binary_map", ["normals"] = "surface_normals",
        };

        /// <summary>(x − mean)/std per RGB plane of a (3, S, S) vector scaled to 0..1.</summary>
        public float[] Normalize(float[] pixels)
        {
            int plane = ImageSize * ImageSize;
            var input = new float[pixels.Length];
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < plane; k++)
                    input[c * plane + k] = (pixels[c * plane + k] - Mean[c]) / Std[c];
            return input;
        }
    }

    /// <summary>NumPy's .npy (format 1.0): magic, header length, a Python-dict header padded to 64 bytes, raw little-endian data.</summary>
    internal static class Npy
    {
        public static void SaveFloat32(string path, float[] values, int h, int w)
        {
            var header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({h}, {w}), }}";
            header = header.PadRight(64 * ((10 + header.Length) / 64 + 1) - 10 - 1) + "\n";
            using var file = new BinaryWriter(File.Create(path));
            file.Write((byte[])[0x93, .. "NUMPY"u8, 1, 0]);
            file.Write((ushort)header.Length);
            file.Write(System.Text.Encoding.ASCII.GetBytes(header));
            foreach (var v in values) file.Write(v); // BinaryWriter writes little-endian
        }
    }

    /// <summary>8-bit PNGs with SkiaSharp (which ML.NET's image transforms already bring).</summary>
    internal static class Png
    {
        public static void SaveGray(string path, byte[] values, int w, int h)
        {
            using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque));
            System.Runtime.InteropServices.Marshal.Copy(values, 0, bitmap.GetPixels(), values.Length);
            Save(bitmap, path);
        }

        public static void SaveNormals(string path, float[] normals, int w, int h)
        {
            using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque);
            int plane = w * h;
            static byte Level(float v) => (byte)Math.Clamp(Math.Round((v + 1) / 2 * 255), 0, 255);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int k = y * w + x;
                    bitmap.SetPixel(x, y, new SKColor(Level(normals[k]), Level(normals[plane + k]), Level(normals[2 * plane + k])));
                }
            Save(bitmap, path);
        }

        private static void Save(SKBitmap bitmap, string path)
        {
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            using var file = File.Create(path);
            data.SaveTo(file);
        }
    }
}
