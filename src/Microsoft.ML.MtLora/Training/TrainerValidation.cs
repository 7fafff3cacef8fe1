using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The validation cadence and best-epoch bookkeeping of <see cref="MultiTaskTrainer"/>: the reference validates every
/// EVAL_FREQ (5) epochs and at the end (scale-lab/MTLoRA main.py, <c>if epoch % config.EVAL_FREQ == 0 or epoch == EPOCHS - 1</c>),
/// on the live network in evaluation mode. Keeps the best-scoring weights in memory when asked and writes them to
/// <c>best/model.safetensors</c> under the checkpoint folder (with the epoch, step, score and criterion in its metadata).
/// </summary>
/// <remarks>
/// A resumed run reads the best validation back from <c>best/</c> beside the checkpoint it resumes (<see cref="Restore"/>), so
/// only a later validation that scores higher replaces it. A stored best is used only when it was measured by the same
/// <see cref="MultiTaskTrainerSettings.ValidationCriterion"/>; otherwise (another protocol, other baselines or tasks, or a
/// file written before the criterion was recorded) a warning says so, the best score counts as unknown and the first
/// validation after the resume sets it.
/// </remarks>
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
        if (_settings.KeepBest) KeepInMemory(state);
        if (_settings.CheckpointDirectory is not null) WriteBest(state, BestMetadata(epoch, step, score, Criterion), epoch);
    }

    /// <summary>The criterion of this run's scores as stored (null counts as empty).</summary>
    private string Criterion => _settings.ValidationCriterion ?? "";

    private static Dictionary<string, string> BestMetadata(int epoch, long step, double score, string criterion)
    {
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        return new Dictionary<string, string>
        {
            ["epoch"] = epoch.ToString(ci),
            ["step"] = step.ToString(ci),
            ["score"] = score.ToString("R", ci),
            ["criterion"] = criterion,
        };
    }

    /// <summary>Keeps a CPU copy of what training changes: the trainable parameters and the buffers (e.g. BatchNorm statistics);
    /// the frozen weights are the pretrained ones throughout.</summary>
    private void KeepInMemory(IReadOnlyDictionary<string, Tensor> state)
    {
        var parameters = _model.named_parameters().Select(p => p.name).ToHashSet(StringComparer.Ordinal);
        var kept = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in state)
            if (_trainable.Contains(name) || !parameters.Contains(name)) kept[name] = t.detach().cpu().clone().DetachFromDisposeScope();
        DisposeBest();
        _best = kept;
    }

    private void WriteBest(IEnumerable<KeyValuePair<string, Tensor>> state, IReadOnlyDictionary<string, string> metadata, int epoch)
    {
        var path = Path.Combine(_settings.CheckpointDirectory!, BestFolderName, BestFileName);
        try
        {
            Checkpoints.SafeTensors.Save(path, state, metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _settings.Warning?.Invoke($"The best weights (epoch {epoch}) could not be written to '{path}' ({Data.Formats.IoFailure.Describe(e)}); training goes on.");
        }
    }

    /// <summary>
    /// On resume: reads the best validation so far from <c>best/model.safetensors</c> beside the resumed checkpoint, when it
    /// was measured by this run's criterion, so that only a higher score replaces it (and, with
    /// <see cref="MultiTaskTrainerSettings.KeepBest"/>, its weights are the ones handed over if none does). Otherwise a warning
    /// says why the best score is unknown; the first validation after the resume then sets it.
    /// </summary>
    /// <param name="checkpointFolder">The resumed checkpoint folder (<c>ROOT/step-N</c>); its best validation is <c>ROOT/best/</c>.</param>
    /// <param name="checkpointStep">The resumed checkpoint's global step.</param>
    /// <param name="checkpointEpoch">The epoch the resumed checkpoint continues with (epochs completed before it).</param>
    public void Restore(string checkpointFolder, long checkpointStep, int checkpointEpoch)
    {
        if (!Enabled) return;                                                       // nothing is compared: best/ is left as it is
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpointFolder))!, BestFolderName, BestFileName);
        const string Unknown = "the best score is unknown, and the first validation after the resume sets it";
        if (!File.Exists(path))
        {
            // Silent when no validation of this cadence came before the checkpoint: the first one after it is the run's first.
            if (_settings.ValidateEveryEpochs == 0 || checkpointEpoch < _settings.ValidateEveryEpochs) return;
            _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': no best validation is recorded beside it ('{path}' does not exist); {Unknown}.");
            return;
        }
        Dictionary<string, Tensor> state;
        IReadOnlyDictionary<string, string> metadata;
        try
        {
            state = Checkpoints.SafeTensors.Load(path, out metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': the best validation's file '{path}' cannot be read ({e.Message}); {Unknown}.");
            return;
        }
        try
        {
            using var scope = torch.NewDisposeScope();
            var ci = System.Globalization.CultureInfo.InvariantCulture;
            if (!metadata.TryGetValue("epoch", out var e) || !int.TryParse(e, ci, out int epoch)
                || !metadata.TryGetValue("step", out var st) || !long.TryParse(st, ci, out long step)
                || !metadata.TryGetValue("score", out var sc) || !double.TryParse(sc, System.Globalization.NumberStyles.Float, ci, out double score)
                || double.IsNaN(score))
            {
                _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': '{path}' does not record the epoch, step and score of its validation; {Unknown}.");
                return;
            }
            string at = $"epoch {epoch}, step {step}, score {score.ToString("G6", ci)}";
            if (!metadata.TryGetValue("criterion", out var criterion))
            {
                _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': '{path}' holds the best validation ({at}) but not how it was scored "
                    + $"(it was written by an earlier version of Microsoft.ML.MtLora), so it is not compared; {Unknown}.");
                return;
            }
            if (criterion != Criterion)
            {
                _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': '{path}' holds the best validation ({at}) scored as '{criterion}', "
                    + $"but this run scores as '{Criterion}'; the scores are not comparable, so the stored best is not used: {Unknown} and replaces it.");
                return;
            }
            if (step > checkpointStep)
                _settings.Warning?.Invoke($"Resuming '{checkpointFolder}' (step {checkpointStep}): '{path}' holds a validation of a later step ({at}), "
                    + "from a run that went on past this checkpoint; it stays the best until a validation scores higher.");
            if (_settings.KeepBest)
            {
                var own = _model.state_dict();
                var missing = own.Keys.Where(k => !state.ContainsKey(k) || !state[k].shape.SequenceEqual(own[k].shape)).ToList();
                if (missing.Count > 0)
                {
                    _settings.Warning?.Invoke($"Resuming '{checkpointFolder}': '{path}' does not fit the model ('{missing[0]}' is missing or has another shape); {Unknown}.");
                    return;
                }
                KeepInMemory(state);
            }
            BestScore = score;
            BestEpoch = epoch;
            BestStep = step;
            // A run that writes its checkpoints elsewhere keeps the best beside them too.
            if (_settings.CheckpointDirectory is { } root
                && !string.Equals(Path.GetFullPath(Path.Combine(root, BestFolderName, BestFileName)), Path.GetFullPath(path), StringComparison.Ordinal))
                WriteBest(state, metadata, epoch);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
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
