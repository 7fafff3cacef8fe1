namespace Microsoft.ML.MtLora.Visualization;

/// <summary>One logged training step: what <see cref="TrainingCurves"/> plots and <see cref="TrainingLog"/> stores.</summary>
/// <param name="Step">The optimizer step (x axis).</param>
/// <param name="Epoch">The epoch the step belongs to.</param>
/// <param name="TaskLosses">Each task's loss, keyed by reference task name (<c>semseg</c>, <c>human_parts</c>, <c>sal</c>, <c>normals</c>); a task may be missing.</param>
/// <param name="TotalLoss">The weighted total loss that was back-propagated.</param>
/// <param name="LearningRate">The learning rate used for the step.</param>
public sealed record TrainingCurvePoint(long Step, int Epoch, IReadOnlyDictionary<string, double> TaskLosses, double TotalLoss, double LearningRate);
