using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora;

public sealed partial class MultiTaskCatalog
{
    /// <summary>
    /// Evaluates dense multi-task predictions against their labels: per-task metrics (mIoU, per-class IoU and pixel
    /// accuracy for semantic segmentation and human parts; mIoU and maxF for saliency; angular errors for normals) and
    /// Δm against single-task baselines. Streams over the view with one cursor; memory does not grow with its size.
    /// Every task whose label and prediction columns are both present is evaluated.
    /// </summary>
    /// <param name="data">The scored data: the loader's label columns and the MTLoRA transformer's prediction columns.</param>
    /// <param name="semsegLabelColumnName">Semantic segmentation labels (vector of Byte or Single class ids, 255 = ignore).</param>
    /// <param name="semsegPredictedLabelColumnName">Semantic segmentation predicted class map (vector of Byte or Single).</param>
    /// <param name="humanPartsLabelColumnName">Human parts labels (vector of Byte or Single class ids, 255 = ignore).</param>
    /// <param name="humanPartsPredictedLabelColumnName">Human parts predicted class map (vector of Byte or Single).</param>
    /// <param name="saliencyLabelColumnName">Saliency labels (vector of Byte or Single, 0/1).</param>
    /// <param name="saliencyProbabilityColumnName">Saliency probabilities (vector of Single in [0, 1]).</param>
    /// <param name="normalsLabelColumnName">Normals labels (vector of Single, 3·H·W CHW; 255 = invalid pixel).</param>
    /// <param name="normalsPredictedColumnName">Predicted normals (vector of Single, 3·H·W CHW).</param>
    /// <param name="baselines">Single-task baselines of Δm; null for the paper's (<see cref="SingleTaskBaselines.Paper"/>).</param>
    /// <returns>The metrics of every evaluated task, and Δm.</returns>
    /// <exception cref="ArgumentException">The view is empty, a column is missing or of the wrong type (the message names it).</exception>
    /// <exception cref="InvalidOperationException">A row's prediction and label sizes differ, or a label is out of range (the message names the row).</exception>
    public MultiTaskMetrics Evaluate(
        IDataView data,
        string semsegLabelColumnName = "SemsegLabel",
        string semsegPredictedLabelColumnName = "SemsegPredictedLabel",
        string humanPartsLabelColumnName = "HumanPartsLabel",
        string humanPartsPredictedLabelColumnName = "HumanPartsPredictedLabel",
        string saliencyLabelColumnName = "SaliencyLabel",
        string saliencyProbabilityColumnName = "SaliencyProbability",
        string normalsLabelColumnName = "NormalsLabel",
        string normalsPredictedColumnName = "NormalsPredicted",
        SingleTaskBaselines? baselines = null)
    {
        return Evaluate(data, new MultiTaskEvaluatorOptions
        {
            SemsegLabelColumnName = semsegLabelColumnName,
            SemsegPredictedLabelColumnName = semsegPredictedLabelColumnName,
            HumanPartsLabelColumnName = humanPartsLabelColumnName,
            HumanPartsPredictedLabelColumnName = humanPartsPredictedLabelColumnName,
            SaliencyLabelColumnName = saliencyLabelColumnName,
            SaliencyProbabilityColumnName = saliencyProbabilityColumnName,
            NormalsLabelColumnName = normalsLabelColumnName,
            NormalsPredictedColumnName = normalsPredictedColumnName,
            Baselines = baselines ?? SingleTaskBaselines.Paper,
        });
    }

    /// <summary>
    /// Evaluates dense multi-task predictions against their labels with full control over tasks, columns and baselines:
    /// any task descriptors listed in <see cref="MultiTaskEvaluatorOptions.Tasks"/> (e.g. a model's own tasks, or
    /// <see cref="DenseTaskDescriptor.Nyud"/>), each read from its columns and scored by its kind.
    /// </summary>
    /// <param name="data">The scored data.</param>
    /// <param name="options">Tasks, column names, class counts and Δm baselines.</param>
    /// <returns>The metrics of every evaluated task, and Δm.</returns>
    /// <exception cref="ArgumentException">The view is empty, a column is missing or of the wrong type, or an option is invalid.</exception>
    /// <exception cref="InvalidOperationException">A row's prediction and label sizes differ, or a label is out of range (the message names the row).</exception>
    public MultiTaskMetrics Evaluate(IDataView data, MultiTaskEvaluatorOptions options)
        => MultiTaskEvaluator.Evaluate(data, options);
}
