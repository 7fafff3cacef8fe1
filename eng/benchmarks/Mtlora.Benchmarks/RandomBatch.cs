using Microsoft.ML.MtLora;
using TorchSharp;
using static TorchSharp.torch;

namespace MtLora.Benchmarks;

/// <summary>
/// A random batch in the reference layout, made once on the device and reused every step (the benchmark measures the
/// network, the losses and the optimizer, not data loading).
/// </summary>
internal sealed class RandomBatch : IDisposable
{
    /// <summary>Share of label pixels set to the ignore label 255, as in real PASCAL-Context annotations.</summary>
    private const double IgnoreShare = 0.05;

    private RandomBatch(Tensor images, Dictionary<string, Tensor> targets)
    {
        Images = images;
        Targets = targets;
    }

    /// <summary>(B, 3, S, S) normalised images (standard normal), in the compute dtype.</summary>
    public Tensor Images { get; }

    /// <summary>Targets by reference task name, float32, in the layouts <c>TaskLosses.Compute</c> expects.</summary>
    public Dictionary<string, Tensor> Targets { get; }

    /// <summary>Draws a batch from the given generator seed.</summary>
    public static RandomBatch Create(IReadOnlyList<DenseTask> tasks, int batch, int size, Device device, ScalarType imageType, long seed)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        var images = torch.randn([batch, 3, size, size], generator: generator).to(imageType, device);   // (B, 3, S, S)
        var targets = new Dictionary<string, Tensor>();
        foreach (var task in tasks)
        {
            Tensor target;
            switch (task)
            {
                case DenseTask.SemanticSegmentation:
                case DenseTask.HumanParts:
                {
                    // Class ids 0..C−1 as floats, a few pixels ignored.
                    var ids = torch.randint(0, task.OutputChannels(), [batch, 1, size, size], generator: generator).to(ScalarType.Float32);   // (B, 1, S, S)
                    target = IgnoreSome(ids, generator, new long[] { batch, 1, size, size });
                    break;
                }
                case DenseTask.Saliency:
                    target = torch.rand([batch, 1, size, size], generator: generator).ge(TorchScalars.Half).to(ScalarType.Float32);   // (B, 1, S, S)
                    break;
                default:
                {
                    // Unit vectors, a few pixels ignored on all three components.
                    var v = torch.randn([batch, 3, size, size], generator: generator);                                   // (B, 3, S, S)
                    using var minNorm = 1e-6.ToScalar();
                    using var share = IgnoreShare.ToScalar();
                    v = v / v.norm(1, keepdim: true, p: 2).clamp_min(minNorm);
                    var ignore = torch.rand([batch, 1, size, size], generator: generator).lt(share).expand(batch, 3, size, size);
                    target = v.masked_fill(ignore, TorchScalars.Ignore);
                    break;
                }
            }
            targets[task.ReferenceName()] = target.to(device).MoveToOuterDisposeScope();
        }
        images.MoveToOuterDisposeScope();
        return new RandomBatch(images, targets);
    }

    private static Tensor IgnoreSome(Tensor ids, Generator generator, long[] shape)
    {
        using var share = IgnoreShare.ToScalar();
        return ids.masked_fill(torch.rand(shape, generator: generator).lt(share), TorchScalars.Ignore);
    }

    public void Dispose()
    {
        Images.Dispose();
        foreach (var t in Targets.Values) t.Dispose();
    }
}
