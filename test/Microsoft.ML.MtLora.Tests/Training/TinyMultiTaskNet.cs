using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// A tiny stand-in for the MTLoRA network with the same contract: (B, 3, S, S) → the four task outputs at full size.
/// It has what the trainer must handle: a frozen layer, BatchNorm running statistics, dropout, 1-D parameters and biases.
/// </summary>
internal sealed class TinyMultiTaskNet : Module<Tensor, Dictionary<string, Tensor>>
{
    private readonly Conv2d stem;
    private readonly SafeBatchNorm2d norm;   // the library's BatchNorm (TorchSharp's has an implicit Scalar in training mode)
    private readonly Conv2d frozen_proj;
    private readonly Dropout drop;
    private readonly Parameter task_scale;
    private readonly Conv2d head_semseg;
    private readonly Conv2d head_human_parts;
    private readonly Conv2d head_sal;
    private readonly Conv2d head_normals;

    /// <summary>Builds the network with weights drawn from <paramref name="seed"/>.</summary>
    public TinyMultiTaskNet(long seed, double dropout = 0.2, bool batchNorm = true) : base(nameof(TinyMultiTaskNet))
    {
        UseBatchNorm = batchNorm;
        torch.random.manual_seed(seed);
        stem = Conv2d(3, 8, 3, padding: 1);
        norm = new SafeBatchNorm2d(8);
        frozen_proj = Conv2d(8, 8, 1);
        drop = Dropout(dropout);
        task_scale = new Parameter(torch.ones(4));
        head_semseg = Conv2d(8, 21, 1);
        head_human_parts = Conv2d(8, 7, 1);
        head_sal = Conv2d(8, 1, 1);
        head_normals = Conv2d(8, 3, 1);
        RegisterComponents();
        foreach (var (_, p) in frozen_proj.named_parameters()) p.requires_grad = false;
    }

    /// <summary>Whether the forward pass normalises with BatchNorm (its statistics are per batch in training mode).</summary>
    public bool UseBatchNorm { get; }

    /// <summary>Makes the normals output NaN (to test the non-finite loss check).</summary>
    public bool PoisonNormals { get; set; }

    public override Dictionary<string, Tensor> forward(Tensor images)
    {
        var h = stem.forward(images);                                       // (B, 8, S, S)
        var x = functional.relu(UseBatchNorm ? norm.forward(h) : h);
        x = drop.forward(x + frozen_proj.forward(x));                       // (B, 8, S, S)
        var normals = head_normals.forward(x) * task_scale[3];
        if (PoisonNormals) normals = normals * double.NaN;
        return new Dictionary<string, Tensor>
        {
            ["semseg"] = head_semseg.forward(x) * task_scale[0],
            ["human_parts"] = head_human_parts.forward(x) * task_scale[1],
            ["sal"] = head_sal.forward(x) * task_scale[2],
            ["normals"] = normals,
        };
    }

    /// <summary>Copies of every state-dict tensor, for comparisons after the model is gone.</summary>
    public Dictionary<string, Tensor> Snapshot() => state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().to(ScalarType.Float32).clone());
}

/// <summary>
/// A deterministic tiny data set: <c>Samples</c> random samples, shuffled per epoch from (seed, epoch), batches of
/// <c>BatchSize</c> with drop_last. Every tensor is made when the batch is enumerated, from the sample's own generator.
/// </summary>
internal sealed class TinyData(int samples = 8, int batchSize = 2, int size = 16, int seed = 7, bool noHumanParts = false) : ITrainingBatchSource
{
    public int BatchesPerEpoch => samples / batchSize;

    public int Size => size;

    public IEnumerable<TrainingBatch> GetBatches(int epoch, int skipBatches)
    {
        var order = Enumerable.Range(0, samples).ToArray();
        new Random(seed * 1000 + epoch).Shuffle(order);
        for (int b = skipBatches; b < BatchesPerEpoch; b++)
        {
            var ids = order.Skip(b * batchSize).Take(batchSize).ToArray();
            yield return MakeBatch(ids);
        }
    }

    public TrainingBatch MakeBatch(int[] ids)
    {
        using var scope = torch.NewDisposeScope();
        var images = new List<Tensor>();
        var targets = new Dictionary<string, List<Tensor>> { ["semseg"] = [], ["human_parts"] = [], ["sal"] = [], ["normals"] = [] };
        foreach (var id in ids)
        {
            using var g = new Generator((ulong)(seed * 7919 + id));
            images.Add(torch.randn(new long[] { 3, size, size }, generator: g));
            var ignore = torch.rand(new long[] { 1, size, size }, generator: g).lt(0.1);
            targets["semseg"].Add(torch.randint(0, 21, new long[] { 1, size, size }, generator: g).to(ScalarType.Float32).masked_fill(ignore, 255));
            var parts = torch.randint(0, 7, new long[] { 1, size, size }, generator: g).to(ScalarType.Float32);
            targets["human_parts"].Add(noHumanParts ? torch.full_like(parts, 255) : parts.masked_fill(ignore, 255));
            targets["sal"].Add(torch.rand(new long[] { 1, size, size }, generator: g).ge(0.7).to(ScalarType.Float32));
            var n = torch.nn.functional.normalize(torch.randn(new long[] { 3, size, size }, generator: g), dim: 0);
            targets["normals"].Add(n.masked_fill(ignore.expand(3, size, size), 255));
        }
        var batch = new TrainingBatch(
            torch.stack(images).MoveToOuterDisposeScope(),
            targets.ToDictionary(kv => kv.Key, kv => torch.stack(kv.Value).MoveToOuterDisposeScope()));
        return batch;
    }
}
