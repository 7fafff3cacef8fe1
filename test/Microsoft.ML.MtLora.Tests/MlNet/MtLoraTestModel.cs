using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.MlNet;

/// <summary>Tiny MTLoRA transformers and synthetic images for the ML.NET surface tests.</summary>
internal static class MtLoraTestModel
{
    // ImageAnalytics maps MLImage only with a fixed [ImageType(h, w)]; these tests feed images of assorted sizes in
    // memory, so MLImage without an attribute is mapped to the unknown-size image type (as LoadImages produces).
    static MtLoraTestModel() => DataViewTypeManager.Register(new Microsoft.ML.Transforms.Image.ImageDataViewType(), typeof(MLImage));

    /// <summary>The tiny4 reference configuration (embed 16, depths 2-2-2-2, heads 1-2-2-4, window 4, 128 px).</summary>
    public static MtLoraNetworkOptions Options() => MtLoraNetworkOptions.Load(Fixture.Path("tiny4", "config.json"));

    /// <summary>The tiny4 reference weights (random beyond the reference init, so every path matters).</summary>
    public static Dictionary<string, Tensor> Weights() => SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));

    /// <summary>A transformer over the tiny4 network with the reference weights.</summary>
    public static MtLoraTransformer Create(MLContext ml, int batchSize = 4)
    {
        var options = Options();
        return new MtLoraTransformer(ml, options, Weights(), ImagePreprocessing.Reference(options.ImageSize), MtLoraColumnNames.Image, batchSize, CPU);
    }

    /// <summary>The tiny4 network with the reference weights, unmerged, in evaluation mode (an independent path to compare with).</summary>
    public static MultiTaskSwin Network()
    {
        var net = new MultiTaskSwin(Options());
        var sd = Weights();
        try { net.LoadStateDict(sd); }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        net.eval();
        return net;
    }

    /// <summary>A deterministic opaque BGRA image of w×h with smooth structure plus noise.</summary>
    public static MLImage Image(int width, int height, int seed)
    {
        var rnd = new Random(seed);
        var px = new byte[width * height * 4];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 4;
                px[i] = (byte)((x * 255 / Math.Max(1, width - 1) + rnd.Next(40)) % 256);
                px[i + 1] = (byte)((y * 255 / Math.Max(1, height - 1) + rnd.Next(40)) % 256);
                px[i + 2] = (byte)rnd.Next(256);
                px[i + 3] = 255;
            }
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Bgra32, px);
    }

    /// <summary>Writes <paramref name="count"/> PNGs of assorted sizes into a folder; returns their file names.</summary>
    public static List<string> WritePngs(string folder, int count, int seed = 1)
    {
        var names = new List<string>();
        foreach (var (row, i) in Rows(count, seed).Select((r, i) => (r, i)))
        {
            var name = $"img{i}.png";
            row.Image.Save(System.IO.Path.Combine(folder, name));
            row.Image.Dispose();
            names.Add(name);
        }
        return names;
    }

    /// <summary>A small synthetic PASCAL_MT folder (train and val splits of <paramref name="width"/>×<paramref name="height"/> JPEGs) for loader tests.</summary>
    public static void WritePascal(string folder, int train, int val, int width = 48, int height = 40, int seed = 4) =>
        Microsoft.ML.MtLora.Data.Synthetic.SyntheticPascal.Generate(folder,
            new Microsoft.ML.MtLora.Data.Synthetic.SyntheticPascalOptions { TrainCount = train, ValCount = val, Width = width, Height = height, Seed = seed });

    /// <summary>Images of assorted sizes (smaller, equal and larger than the network size, non-square).</summary>
    public static List<ImageRow> Rows(int count, int seed = 1) =>
        Enumerable.Range(0, count).Select(i => new ImageRow { Image = Image(100 + 14 * (i % 5), 90 + 19 * (i % 4), seed * 100 + i), Name = $"img{i}" }).ToList();
}

/// <summary>Input row with an image of any size.</summary>
public sealed class ImageRow
{
    public MLImage Image { get; set; } = null!;

    public string Name { get; set; } = "";
}

/// <summary>All prediction columns of a four-task model, as PredictionEngine fills them.</summary>
public sealed class DenseOutputRow
{
    public byte[] SemsegPredictedLabel { get; set; } = [];
    public float[] SemsegScore { get; set; } = [];
    public byte[] HumanPartsPredictedLabel { get; set; } = [];
    public float[] HumanPartsScore { get; set; } = [];
    public float[] SaliencyProbability { get; set; } = [];
    public float[] NormalsPredicted { get; set; } = [];
    public int Height { get; set; }
    public int Width { get; set; }
}
