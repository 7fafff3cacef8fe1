using Microsoft.ML.MtLora.Data.Preprocessing;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>What <see cref="NetworkEvaluation.Evaluate"/> reads and how it scores.</summary>
internal sealed record NetworkEvaluationSettings
{
    /// <summary>The tasks to score (each needs a network output and a label column).</summary>
    public required IReadOnlyList<DenseTaskDescriptor> Tasks { get; init; }

    /// <summary>The network's input size S.</summary>
    public required int ImageSize { get; init; }

    /// <summary>The protocol.</summary>
    public EvaluationProtocol Protocol { get; init; } = EvaluationProtocol.Reference;

    /// <summary>Images per forward pass.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>The image column (MLImage).</summary>
    public string ImageColumnName { get; init; } = MtLoraColumnNames.Image;

    /// <summary>The label column of each task; null: the default names.</summary>
    public IReadOnlyDictionary<DenseTaskDescriptor, string>? LabelColumnNames { get; init; }

    /// <summary>The Δm baselines.</summary>
    public SingleTaskBaselines Baselines { get; init; } = SingleTaskBaselines.Paper;

    /// <summary>Loader worker threads.</summary>
    public int DegreeOfParallelism { get; init; } = DenseBatchReaderOptions.DefaultDegreeOfParallelism;

    /// <summary>Batches prepared ahead.</summary>
    public int PrefetchBatches { get; init; } = DenseBatchReaderOptions.DefaultPrefetchBatches;

    /// <summary>Receives the number of images scored so far, after each batch.</summary>
    public Action<long>? Progress { get; init; }
}

/// <summary>
/// Scores a network's raw outputs on a data view of images and labels as the reference's <c>main.py::validate</c> does
/// (docs/mtlora-reference.md §7): the evaluation pre-processing of <see cref="DenseBatchReader"/> (FixedResize, no
/// augmentation, in order, the last batch kept), one forward pass per batch, the per-task meters. Under
/// <see cref="EvaluationProtocol.Reference"/> the S×S outputs meet the S×S labels; under <see cref="EvaluationProtocol.Native"/>
/// each output is resized bilinearly to its image's size (as the transformer's prediction columns are) and meets the
/// original labels, normals renormalised (<see cref="ProtocolLabels.RenormalizeNormals"/>).
/// </summary>
internal static class NetworkEvaluation
{
    /// <param name="forward">The network's forward pass in evaluation mode: (B, 3, S, S) float32 CPU images → raw outputs by
    /// reference task name; called under <c>no_grad</c> inside a dispose scope.</param>
    /// <param name="data">Images and labels.</param>
    /// <param name="settings">What to score and how.</param>
    public static MultiTaskMetrics Evaluate(Func<Tensor, Dictionary<string, Tensor>> forward, IDataView data, NetworkEvaluationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(data);
        bool native = settings.Protocol == EvaluationProtocol.Native;
        var reader = new DenseBatchReader(data, new DenseBatchReaderOptions
        {
            Tasks = settings.Tasks,
            BatchSize = settings.BatchSize,
            ImageSize = settings.ImageSize,
            KeepOriginalLabelResolution = native,
            DegreeOfParallelism = settings.DegreeOfParallelism,
            PrefetchBatches = settings.PrefetchBatches,
            ImageColumnName = settings.ImageColumnName,
            LabelColumnNames = settings.LabelColumnNames,
        });
        var meter = new MultiTaskMeter(settings.Tasks);
        long images = 0;
        foreach (var batch in reader.ReadEpoch(0))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                Dictionary<string, Tensor> outputs;
                using (no_grad()) outputs = forward(batch.Images);                            // by task: (B, C, S, S)
                foreach (var task in meter.Tasks)
                {
                    if (!outputs.TryGetValue(task.ReferenceName(), out var raw))
                        throw new InvalidOperationException($"The network produced no output for task '{task.ReferenceName()}'.");
                    raw = raw.to(ScalarType.Float32);                                         // (B, C, S, S)
                    if (!native)
                    {
                        meter.Update(task, raw, batch.Targets[task]);                         // (B, 1|3, S, S)
                        continue;
                    }
                    for (int i = 0; i < batch.Count; i++)
                    {
                        using var rowScope = NewDisposeScope();
                        var (h, w) = batch.OriginalSizes[i];
                        var logits = raw.narrow(0, i, 1);                                     // (1, C, S, S)
                        if (logits.shape[2] != h || logits.shape[3] != w)
                            logits = nn.functional.interpolate(logits, [h, w], mode: InterpolationMode.Bilinear, align_corners: false); // (1, C, H, W)
                        var target = batch.OriginalTargets![i][task];                         // (1|3, H, W)
                        if (task.Kind == DenseTaskKind.SurfaceNormals) target = RenormalizedNormals(target);
                        meter.Update(task, logits, target.unsqueeze(0));                      // (1, C, H, W), (1, 1|3, H, W)
                    }
                }
            }
            images += batch.Count;
            settings.Progress?.Invoke(images);
        }
        if (images == 0) throw new ArgumentException("The data view to evaluate has no rows.", nameof(data));
        var metrics = meter.GetMetrics(settings.Baselines);
        metrics.Protocol = settings.Protocol;
        return metrics;
    }

    /// <summary>A renormalised copy of a (3, H, W) normals label.</summary>
    private static Tensor RenormalizedNormals(Tensor target)
    {
        var values = target.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        ProtocolLabels.RenormalizeNormals(values);
        return torch.tensor(values, target.shape);
    }
}
