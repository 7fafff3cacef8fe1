using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

/// <summary>What one input row yields: its size and the arrays of the output columns that were asked for, by column name.</summary>
internal sealed class DensePrediction
{
    public DensePrediction(int height, int width)
    {
        Height = height;
        Width = width;
    }

    /// <summary>Height of the input image, and of every map of the row.</summary>
    public int Height { get; }

    /// <summary>Width of the input image, and of every map of the row.</summary>
    public int Width { get; }

    /// <summary>Output column name → <c>byte[]</c> (class maps) or <c>float[]</c> (scores, probabilities, normals).</summary>
    public Dictionary<string, Array> Columns { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Runs the multi-task network on batches of images: the reference's evaluation preprocessing, one forward pass per
/// batch, and per row the outputs resized back to the image's own size and turned into class maps, probabilities
/// and unit normals. One instance is shared by every cursor of a transformer; the forward pass is serialised by a
/// lock, the pre- and post-processing run on the caller's thread.
/// </summary>
internal sealed class DensePredictor
{
    private readonly nn.Module<Tensor, Dictionary<string, Tensor>> _network;
    private readonly object _gate;

    public DensePredictor(nn.Module<Tensor, Dictionary<string, Tensor>> network, object gate, IReadOnlyList<DenseTaskDescriptor> tasks,
        ImagePreprocessing preprocessing, Device device)
    {
        _network = network;
        _gate = gate;
        Tasks = tasks;
        Preprocessing = preprocessing;
        Device = device;
    }

    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; }

    public ImagePreprocessing Preprocessing { get; }

    public Device Device { get; }

    /// <summary>How many forward passes ran (diagnostics; lets tests check batching).</summary>
    public long ForwardPasses => Interlocked.Read(ref _forwardPasses);

    private long _forwardPasses;

    /// <summary>Set (under the gate) when the owning transformer frees the network; a later forward pass is refused.</summary>
    public bool NetworkDisposed { get; set; }

    /// <summary>Predicts a batch of images; only the columns named in <paramref name="columns"/> are filled.</summary>
    /// <param name="images">The images, any size each.</param>
    /// <param name="columns">The output columns wanted (names from <see cref="DenseTasks"/>).</param>
    /// <param name="imageColumnName">The input column the images came from, for error messages.</param>
    public DensePrediction[] Predict(IReadOnlyList<MLImage?> images, IReadOnlySet<string> columns, string imageColumnName)
    {
        var result = new DensePrediction[images.Count];
        for (int i = 0; i < images.Count; i++)
        {
            var image = images[i] ?? throw new InvalidOperationException($"Column '{imageColumnName}' holds a missing image (null); every row needs an image to predict on.");
            if (image.Width <= 0 || image.Height <= 0)
                throw new InvalidOperationException($"Column '{imageColumnName}' holds an empty image ({image.Width}x{image.Height}).");
            result[i] = new DensePrediction(image.Height, image.Width);
        }
        if (images.Count == 0 || !Tasks.Any(t => NeedsTask(t, columns))) return result;

        using var scope = NewDisposeScope();
        var inputs = new Tensor[images.Count];
        for (int i = 0; i < images.Count; i++) inputs[i] = Preprocessing.ToTensor(images[i]!); // (3, S, S)
        return Predict(stack(inputs), result, columns);                                           // (B, 3, S, S)
    }

    /// <summary>
    /// Predicts a batch already pre-processed (the transformer's batched <c>Transform</c> reads it ahead on loader workers):
    /// <paramref name="inputs"/> (B, 3, S, S) float32 CPU, with each row's original size.
    /// </summary>
    public DensePrediction[] Predict(Tensor inputs, IReadOnlyList<(int Height, int Width)> sizes, IReadOnlySet<string> columns)
    {
        var result = sizes.Select(s => new DensePrediction(s.Height, s.Width)).ToArray();
        if (result.Length == 0 || !Tasks.Any(t => NeedsTask(t, columns))) return result;
        using var scope = NewDisposeScope();
        return Predict(inputs, result, columns);
    }

    private DensePrediction[] Predict(Tensor inputs, DensePrediction[] result, IReadOnlySet<string> columns)
    {
        var batch = inputs.to(Modeling.Precision.InputType(_network), Device);                   // (B, 3, S, S), float32 or bfloat16
        Dictionary<string, Tensor> outputs;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(NetworkDisposed, typeof(MtLoraTransformer));
            using var noGrad = no_grad();
            outputs = _network.forward(batch);
            _forwardPasses++;
        }

        foreach (var task in Tasks)
        {
            if (!NeedsTask(task, columns)) continue;
            if (!outputs.TryGetValue(task.Name, out var raw))
                throw new InvalidOperationException($"The network produced no output for task '{task.Name}'.");
            raw = raw.to(ScalarType.Float32);                                                    // (B, C, S, S)
            for (int i = 0; i < result.Length; i++)
            {
                using var rowScope = NewDisposeScope();
                var p = result[i];
                var logits = raw.narrow(0, i, 1);                                                // (1, C, S, S)
                if (logits.shape[2] != p.Height || logits.shape[3] != p.Width)
                    logits = nn.functional.interpolate(logits, [p.Height, p.Width], mode: InterpolationMode.Bilinear, align_corners: false); // (1, C, H, W)
                logits = logits.squeeze(0);                                                      // (C, H, W)
                Fill(task, logits, p, columns);
            }
        }
        return result;
    }

    /// <summary>The network's raw outputs by reference task name for a pre-processed batch (B, 3, S, S) float32 CPU (evaluation).</summary>
    public Dictionary<string, Tensor> Forward(Tensor inputs)
    {
        var batch = inputs.to(Modeling.Precision.InputType(_network), Device);                   // (B, 3, S, S), float32 or bfloat16
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(NetworkDisposed, typeof(MtLoraTransformer));
            using var noGrad = no_grad();
            _forwardPasses++;
            return _network.forward(batch);
        }
    }

    /// <summary>Whether any output column of <paramref name="task"/> is wanted.</summary>
    public static bool NeedsTask(DenseTaskDescriptor task, IReadOnlySet<string> columns) =>
        columns.Contains(task.PredictionColumnName) || (task.ScoreColumnName is { } s && columns.Contains(s));

    private static void Fill(DenseTaskDescriptor task, Tensor logits, DensePrediction p, IReadOnlySet<string> columns)
    {
        switch (task.Kind)
        {
            case DenseTaskKind.Segmentation:
                if (columns.Contains(task.PredictionColumnName))
                    p.Columns[task.PredictionColumnName] = ToBytes(logits.argmax(0).to(ScalarType.Byte)); // (H, W) class ids
                if (task.ScoreColumnName is { } score && columns.Contains(score))
                    p.Columns[score] = ToFloats(logits.softmax(0));                                        // (C, H, W) probabilities
                break;
            case DenseTaskKind.BinaryMap:
                p.Columns[task.PredictionColumnName] = ToFloats(logits.sigmoid().squeeze(0));            // (H, W)
                break;
            case DenseTaskKind.Depth:
                p.Columns[task.PredictionColumnName] = ToFloats(logits.squeeze(0));                      // (H, W) as predicted
                break;
            case DenseTaskKind.SurfaceNormals:
                // F.normalize: v / max(||v||, 1e-12) per pixel, as the reference's evaluation does.
                p.Columns[task.PredictionColumnName] = ToFloats(nn.functional.normalize(logits, p: 2, dim: 0, eps: 1e-12)); // (3, H, W)
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(task), task, null);
        }
    }

    private static float[] ToFloats(Tensor t)
    {
        using var c = t.to(ScalarType.Float32).cpu().contiguous();
        var a = new float[c.numel()];
        c.bytes.CopyTo(MemoryMarshal.AsBytes(a.AsSpan()));
        return a;
    }

    private static byte[] ToBytes(Tensor t)
    {
        using var c = t.cpu().contiguous();
        var a = new byte[c.numel()];
        c.bytes.CopyTo(a);
        return a;
    }
}
