using Microsoft.ML.MtLora.Evaluation;

namespace Microsoft.ML.MtLora;

/// <summary>Which weights <see cref="MtLoraEstimator.Fit"/> returns when a validation set is given.</summary>
public enum MtLoraKeep
{
    /// <summary>The weights after the last step (the default).</summary>
    Last,

    /// <summary>The weights of the best validation (by Δm, or by <see cref="MtLoraOptions.BestEpochTask"/>'s metric). Needs <see cref="MtLoraOptions.ValidationSet"/>.</summary>
    Best,
}

/// <summary>What a <see cref="MtLoraEstimator.Fit"/> run did: its validations (best and last), which weights it kept and the steps it skipped.</summary>
/// <param name="Steps">Optimizer steps done in all (across resumes).</param>
/// <param name="SkippedSteps">Steps skipped because their loss was not finite (<see cref="Training.NonFiniteLossPolicy.SkipStep"/>).</param>
/// <param name="Protocol">The validation's protocol, or null without a validation set.</param>
/// <param name="Best">The best validation (by Δm, or by <see cref="MtLoraOptions.BestEpochTask"/>'s metric), or null (also when a resumed run kept the best of the run before the resume, whose metrics are not stored: see <see cref="BestBeforeResume"/>).</param>
/// <param name="Last">The last validation (after the last step), or null.</param>
/// <param name="Kept">Which weights the returned transformer holds.</param>
public sealed record MtLoraTrainingReport(long Steps, long SkippedSteps, EvaluationProtocol? Protocol, MtLoraValidationReport? Best, MtLoraValidationReport? Last, MtLoraKeep Kept)
{
    /// <summary>
    /// A resumed run whose best validation is still the one from before the resume (read back from <c>best/</c> beside the
    /// checkpoints; <see cref="Best"/> is null then): its epoch, step and score. Null otherwise.
    /// </summary>
    public MtLoraStoredBest? BestBeforeResume { get; init; }
}

/// <summary>A best validation read back from <c>best/model.safetensors</c> on resume: where it was and the score that picked it (its per-task metrics are not stored).</summary>
/// <param name="Epoch">Epochs completed at that validation.</param>
/// <param name="Step">Its global step.</param>
/// <param name="Value">The value that picked it: Δm in % (higher is better), or <see cref="MtLoraOptions.BestEpochTask"/>'s paper metric (mIoU, the normals' mean angle, …).</param>
/// <param name="Measure">What <paramref name="Value"/> is: <c>Δm</c>, or the task's name and <c>paper metric</c>.</param>
public sealed record MtLoraStoredBest(int Epoch, long Step, double Value, string Measure);
