using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora;

public sealed partial class MultiTaskCatalog
{
    /// <summary>
    /// Runs an MTLoRA model on images with labels and scores it under an <see cref="EvaluationProtocol"/>: by default
    /// <see cref="EvaluationProtocol.Reference"/>, the protocol of the paper's numbers and of the Δm baselines (labels resized
    /// to the network's input size as the reference's test transforms do, predictions scored at that size); with
    /// <see cref="EvaluationProtocol.Native"/>, each image at its own size. The result's <see cref="MultiTaskMetrics.Protocol"/>
    /// says which.
    /// </summary>
    /// <param name="model">An <see cref="MtLoraTransformer"/>, or a chain ending in one (e.g. a model.zip that starts with <c>LoadImages</c>): the
    /// transformers before it are applied to <paramref name="data"/> first, except an image loader when the data already holds the decoded images.</param>
    /// <param name="data">The data the model reads (e.g. <c>LoadPascalContext(root, "val")</c>) with the label columns.</param>
    /// <param name="options">Protocol, label column names (the prediction column names are not used), tasks and Δm baselines. Default: all the model's tasks, the default columns, the paper's baselines.</param>
    /// <returns>The metrics of every evaluated task, and Δm.</returns>
    /// <exception cref="ArgumentException">The model holds no MTLoRA transformer, a task is not the model's, a column is missing, or the view is empty.</exception>
    public MultiTaskMetrics Evaluate(ITransformer model, IDataView data, MultiTaskEvaluatorOptions? options = null)
        => EvaluateModel(model, data, options ?? new MultiTaskEvaluatorOptions(), progress: null);

    internal static MultiTaskMetrics EvaluateModel(ITransformer model, IDataView data, MultiTaskEvaluatorOptions options, Action<long>? progress)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        var (mtlora, _) = FindMtLora(model);
        var (_, before) = FindMtLora(ForDecodedImages(model, mtlora, data.Schema));
        foreach (var t in before) data = t.Transform(data);
        var tasks = options.Tasks?.ToArray() ?? mtlora.Tasks.ToArray();
        foreach (var task in tasks)
            if (!mtlora.Tasks.Contains(task))
                throw new ArgumentException($"Task {task.ReferenceName()} is not one of the model's ({string.Join(", ", mtlora.Tasks.Select(t => t.ReferenceName()))}).", nameof(options));
        if (options.Baselines is null)
            throw new ArgumentException($"{nameof(options.Baselines)} must not be null; use {nameof(SingleTaskBaselines)}.{nameof(SingleTaskBaselines.None)} for no Δm.", nameof(options));
        var protocol = options.Protocol ?? EvaluationProtocol.Reference;
        if (!Enum.IsDefined(protocol))
            throw new ArgumentOutOfRangeException(nameof(options), protocol, $"{nameof(options.Protocol)} is {(int)protocol}; expected {nameof(EvaluationProtocol.Reference)} or {nameof(EvaluationProtocol.Native)}.");
        var predictor = mtlora.Predictor;
        return NetworkEvaluation.Evaluate(predictor.Forward, data, new NetworkEvaluationSettings
        {
            Tasks = tasks,
            ImageSize = mtlora.ImageSize,
            Protocol = protocol,
            BatchSize = mtlora.BatchSize,
            ImageColumnName = mtlora.ImageColumnName,
            LabelColumnNames = tasks.ToDictionary(t => t, options.LabelColumn),
            Baselines = options.Baselines,
            DegreeOfParallelism = mtlora.LoaderParallelism,
            PrefetchBatches = mtlora.LoaderPrefetchBatches,
            Progress = progress,
        });
    }

    /// <summary>The last MTLoRA transformer of a model and the transformers before it.</summary>
    private static (MtLoraTransformer Model, IReadOnlyList<ITransformer> Before) FindMtLora(ITransformer model)
    {
        if (model is MtLoraTransformer direct) return (direct, []);
        if (model is IEnumerable<ITransformer> chain)
        {
            var list = chain.ToList();
            int at = list.FindLastIndex(t => t is MtLoraTransformer);
            if (at >= 0) return ((MtLoraTransformer)list[at], list.Take(at).ToList());
        }
        throw new ArgumentException($"The model ({model.GetType().Name}) holds no MtLoraTransformer; pass the transformer that MtLoraEstimator.Fit returned, or a chain ending in it.", nameof(model));
    }
}
