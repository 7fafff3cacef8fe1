using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The validation cadence and best-epoch bookkeeping of <see cref="MultiTaskTrainer"/>: the reference validates every
/// EVAL_FREQ (5) epochs and at the end (scale-lab/MTLoRA main.py, <c>if epoch % config.EVAL_FREQ == 0 or epoch == EPOCHS - 1</c>),
/// on the live network in evaluation mode. Keeps the best-scoring weights in memory when asked and writes them to
/// <c>best/model.safetensors</c> under the checkpoint folder (with the epoch, step and score in its metadata).
/// </summary>
internal sealed class TrainerValidation : IDisposable
{
    /// <summary>The folder, under the checkpoint folder, that holds the best validation's weights.</summary>
    public const string BestFolderName = "best";

    /// <summary>The weights file in <see cref="BestFolderName"/>.</summary>
    public const string BestFileName = "model.safetensors";

    private readonly MultiTaskTrainerSettings _settings;
    private readonly nn.Module _model;
    private readonly HashSet<string> _trainable;
    private readonly Func<Dictionary<string, Tensor>> _float32State;
    private Dictionary<string, Tensor>? _best;

    public TrainerValidation(MultiTaskTrainerSettings settings, nn.Module model, IReadOnlyList<string> trainable, Func<Dictionary<string, Tensor>> float32State)
    {
        _settings = settings;
        _model = model;
        _trainable = trainable.ToHashSet(StringComparer.Ordinal);
        _float32State = float32State;
    }

    public bool Enabled => _settings.Validation is not null;

    /// <summary>The global step of the last validation (−1: none yet).</summary>
    public long LastStep { get; private set; } = -1;

    public int? BestEpoch { get; private set; }

    public long? BestStep { get; private set; }

    public double? BestScore { get; private set; }

    public bool DueAfterEpoch(int epochsDone) =>
        Enabled && _settings.ValidateEveryEpochs > 0 && epochsDone % _settings.ValidateEveryEpochs == 0;

    /// <summary>Validates the live network in evaluation mode (restoring its mode after) and keeps the best weights.</summary>
    public void Run(int epochsDone, long step)
    {
        bool wasTraining = _model.training;
        _model.eval();
        double? score;
        try
        {
            using var scope = torch.NewDisposeScope();
            score = _settings.Validation!(epochsDone, step);
        }
        finally
        {
            _model.train(wasTraining);
        }
        LastStep = step;
        if (score is not double s || double.IsNaN(s) || (BestScore is double b && s <= b)) return;
        BestScore = s;
        BestEpoch = epochsDone;
        BestStep = step;
        if (_settings.KeepBest || _settings.CheckpointDirectory is not null) KeepBest(epochsDone, step, s);
    }

    private void KeepBest(int epoch, long step, double score)
    {
        using var scope = torch.NewDisposeScope();
        var state = _float32State();
        if (_settings.KeepBest)
        {
            // Only what training changes: the trainable parameters and the buffers (e.g. BatchNorm statistics); the frozen
            // weights are the pretrained ones throughout.
            var parameters = _model.named_parameters().Select(p => p.name).ToHashSet(StringComparer.Ordinal);
            var kept = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, t) in state)
                if (_trainable.Contains(name) || !parameters.Contains(name)) kept[name] = t.detach().cpu().clone().DetachFromDisposeScope();
            DisposeBest();
            _best = kept;
        }
        if (_settings.CheckpointDirectory is { } root)
        {
            var path = Path.Combine(root, BestFolderName, BestFileName);
            var ci = System.Globalization.CultureInfo.InvariantCulture;
            try
            {
                Checkpoints.SafeTensors.Save(path, state, new Dictionary<string, string>
                {
                    ["epoch"] = epoch.ToString(ci),
                    ["step"] = step.ToString(ci),
                    ["score"] = score.ToString("R", ci),
                });
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _settings.Warning?.Invoke($"The best weights (epoch {epoch}) could not be written to '{path}' ({Data.Formats.IoFailure.Describe(e)}); training goes on.");
            }
        }
    }

    /// <summary>Hands the best weights to the caller (null when none were kept).</summary>
    public Dictionary<string, Tensor>? TakeBest()
    {
        var best = _best;
        _best = null;
        return best;
    }

    private void DisposeBest()
    {
        if (_best is null) return;
        foreach (var t in _best.Values) t.Dispose();
        _best = null;
    }

    public void Dispose() => DisposeBest();
}
