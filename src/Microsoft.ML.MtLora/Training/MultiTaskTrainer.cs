using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The multi-task training loop of the reference (reference-spec §5, §6), readable top to bottom.
/// </summary>
/// <remarks>
/// <para>Each optimizer step, inside its own dispose scope:</para>
/// <list type="number">
/// <item>set the learning rate of step k: <c>lr(max(k − 1, 0))</c>, since the reference updates its scheduler after
/// each step (<see cref="LearningRateSchedule.ForStep(long)"/>);</item>
/// <item>clear the gradients to "none" (PyTorch's <c>zero_grad()</c> default), so a parameter that gets no gradient
/// this step is neither clipped nor moved by AdamW;</item>
/// <item>reseed torch's generators from (seed, k), so dropout and drop-path draws depend only on the step;</item>
/// <item>forward, the task losses and their weighted sum (<see cref="TaskLosses"/>);</item>
/// <item>stop with <see cref="NonFiniteLossException"/> naming the task when a loss is NaN or infinite;</item>
/// <item>backward, global L2 gradient clipping over the parameters that have a gradient, AdamW step.</item>
/// </list>
/// <para>
/// Between steps the loop checks the cancellation token and the host's <c>CheckAlive</c>, sends progress reports and
/// writes checkpoints (<see cref="TrainingCheckpoint"/>). A cancelled run stops cleanly, writes a checkpoint when asked
/// and returns a result that says it was cancelled; resuming from any checkpoint continues bit for bit, because the
/// data order depends only on (epoch, position), the random state only on (seed, step), and the checkpoint holds the
/// weights, buffers and AdamW moments.
/// </para>
/// <para>
/// bfloat16 (<see cref="MultiTaskTrainerSettings.UseBFloat16"/>, CUDA only): TorchSharp has no autocast, so the trainer
/// keeps float32 master copies of the trainable parameters for AdamW, casts the network to bfloat16 except its
/// normalisation layers (LayerNorm, BatchNorm, GroupNorm stay float32), feeds it bfloat16 images, computes the losses
/// in float32, copies the bfloat16 gradients onto the master copies, clips and steps there, and writes the updated
/// master weights back into the network. Checkpoints hold the float32 master weights.
/// </para>
/// </remarks>
internal sealed class MultiTaskTrainer : IDisposable
{
    private readonly nn.Module<Tensor, Dictionary<string, Tensor>> _model;
    private readonly ITrainingBatchSource _data;
    private readonly MultiTaskTrainerSettings _settings;
    private readonly Device _device;
    private readonly LearningRateSchedule _schedule;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _trainable;
    private readonly AdamW _optimizer;
    // Parameters in AdamW's state order, with the master copy AdamW updates (the network's own parameter in float32).
    private readonly IReadOnlyList<(string Name, Parameter Model, Parameter Master)> _optimized;
    private readonly bool _bf16;
    private readonly Dictionary<string, long> _stepsWithoutLabels = new();
    private long _globalStep;
    private int _epoch;
    private int _batchInEpoch;
    private bool _disposed;
    private bool _resumed;
    private long _lastCheckpointStep = -1;
    private long _firstStepOfRun;

    /// <summary>Creates a trainer: moves the model to the device and builds AdamW over its trainable parameters.</summary>
    /// <param name="model">The network: (B, 3, H, W) images → outputs by reference task name. Parameters with
    /// <c>requires_grad = false</c> are frozen and left out of the optimizer.</param>
    /// <param name="data">The batch source.</param>
    /// <param name="settings">The settings.</param>
    /// <exception cref="ArgumentException">A setting is invalid or the model has nothing to train.</exception>
    /// <exception cref="NotSupportedException">bfloat16 was asked for on a CPU device.</exception>
    public MultiTaskTrainer(nn.Module<Tensor, Dictionary<string, Tensor>> model, ITrainingBatchSource data, MultiTaskTrainerSettings settings)
        : this(model, data, settings, allowBFloat16OnCpu: false)
    {
    }

    /// <summary>Test hook: allows the bfloat16 path on CPU, where it is slow but exercises the same code.</summary>
    internal MultiTaskTrainer(nn.Module<Tensor, Dictionary<string, Tensor>> model, ITrainingBatchSource data, MultiTaskTrainerSettings settings, bool allowBFloat16OnCpu)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _data = data ?? throw new ArgumentNullException(nameof(data));
        _settings = settings ?? throw new ArgumentNullException(nameof(settings));
        settings.Validate();
        _device = settings.Device ?? torch.CPU;
        _bf16 = settings.UseBFloat16;
        if (_bf16 && _device.type != DeviceType.CUDA && !allowBFloat16OnCpu)
            throw new NotSupportedException(
                $"UseBFloat16 needs a CUDA device; the device is {_device}. bfloat16 kernels on the CPU are slower than float32, so train in float32 there (set UseBFloat16 = false).");

        long total = (long)settings.Epochs * data.BatchesPerEpoch;
        long warmup = settings.WarmupSteps ?? (long)settings.WarmupEpochs * data.BatchesPerEpoch;
        if (warmup >= total)
            throw new ArgumentOutOfRangeException(nameof(settings), warmup, $"The warmup ({warmup} steps) must be shorter than the whole run ({total} steps = {settings.Epochs} epochs × {data.BatchesPerEpoch} batches).");
        _schedule = new LearningRateSchedule(settings.BaseLearningRate, settings.WarmupLearningRate, settings.MinLearningRate, warmup, total);

        _model.to(_device);
        _trainable = OptimizerFactory.TrainableParameters(_model);
        if (_trainable.Count == 0)
            throw new ArgumentException("The model has no trainable parameter (every parameter has requires_grad = false).", nameof(model));

        IReadOnlyList<(string Name, Parameter Parameter)> optimizerParameters = _trainable;
        var masters = new Dictionary<string, Parameter>();
        if (_bf16)
        {
            // float32 master copies, made before the network is cast, so they hold the exact float32 weights.
            foreach (var (name, p) in _trainable)
                masters[name] = new Parameter(p.detach().clone(), requires_grad: true);
            // Casting replaces the network's parameter objects: look them up again afterwards.
            CastForBFloat16(_model);
            _trainable = OptimizerFactory.TrainableParameters(_model);
            optimizerParameters = _trainable.Select(t => (t.Name, masters[t.Name])).ToList();
        }
        var (optimizer, order) = OptimizerFactory.CreateAdamW(optimizerParameters, _schedule.ForStep(0), settings.WeightDecay,
            settings.Beta1, settings.Beta2, settings.Epsilon);
        _optimizer = optimizer;
        var byName = _trainable.ToDictionary(t => t.Name, t => t.Parameter);
        _optimized = order.Select(o => (o.Name, byName[o.Name], o.Parameter)).ToList();
    }

    /// <summary>The schedule this trainer follows.</summary>
    public LearningRateSchedule Schedule => _schedule;

    /// <summary>Optimizer steps done (across resumes).</summary>
    public long GlobalStep => _globalStep;

    /// <summary>Trains until the last epoch, <see cref="MultiTaskTrainerSettings.MaxSteps"/> or cancellation.</summary>
    /// <param name="cancellationToken">Checked between steps; a cancelled run stops cleanly (see the result).</param>
    /// <returns>What was trained.</returns>
    /// <exception cref="NonFiniteLossException">A loss became NaN or infinite; the weights are those before that step.</exception>
    public TrainingResult Train(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_settings.ResumeFrom is { } resume && !_resumed)
        {
            Resume(resume);
            _resumed = true;
        }
        _firstStepOfRun = _globalStep;

        long totalSteps = Math.Min(_schedule.TotalSteps, _settings.MaxSteps ?? long.MaxValue);
        var run = Stopwatch.StartNew();
        var window = new ProgressWindow();
        string? lastCheckpoint = null;
        bool cancelled = false;
        StepOutcome? last = null;

        _model.train();
        while (_globalStep < totalSteps && _epoch < _settings.Epochs && !cancelled)
        {
            using var batches = _data.GetBatches(_epoch, _batchInEpoch).GetEnumerator();
            // A source that yields more than it declares is cut at BatchesPerEpoch, so positions stay meaningful.
            while (_globalStep < totalSteps && _batchInEpoch < _data.BatchesPerEpoch)
            {
                if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
                _settings.CheckAlive?.Invoke();

                // The batch is made inside the step's scope, so whatever the source allocates is freed with the step.
                using (var scope = torch.NewDisposeScope())
                {
                    if (!NextBatch(batches)) break;
                    var batch = batches.Current;
                    try
                    {
                        last = Step(batch);
                    }
                    finally
                    {
                        batch.Dispose();
                    }
                }
                window.Add(last, batch: last.BatchSize);
                _globalStep++;
                _batchInEpoch++;

                if (_globalStep % _settings.ProgressEverySteps == 0 || _globalStep == totalSteps)
                    Report(window, run, totalSteps);
                if (_settings.CheckpointEverySteps > 0 && _globalStep % _settings.CheckpointEverySteps == 0)
                    lastCheckpoint = TrySaveCheckpoint() ?? lastCheckpoint;
            }
            if (cancelled) break;
            if (_globalStep >= totalSteps && _batchInEpoch < _data.BatchesPerEpoch) break;
            // The epoch is over (its batches ran out): the next one starts at its first batch.
            _epoch++;
            _batchInEpoch = 0;
        }

        if (window.Steps > 0) Report(window, run, totalSteps);
        if (_settings.CheckpointDirectory != null && (!cancelled || _settings.CheckpointOnCancel) && _lastCheckpointStep != _globalStep)
            lastCheckpoint = TrySaveCheckpoint() ?? lastCheckpoint;

        return new TrainingResult(
            Cancelled: cancelled,
            GlobalStep: _globalStep,
            Epoch: _epoch,
            BatchInEpoch: _batchInEpoch,
            LastTaskLosses: last?.TaskLosses ?? new Dictionary<string, double>(),
            LastTotalLoss: last?.TotalLoss ?? double.NaN,
            LastCheckpoint: lastCheckpoint,
            StepsWithoutLabels: new Dictionary<string, long>(_stepsWithoutLabels),
            Elapsed: run.Elapsed);
    }

    /// <summary>One optimizer step on one batch. Runs inside the caller's dispose scope.</summary>
    private StepOutcome Step(TrainingBatch batch)
    {
        if (batch.Images is null || batch.Targets is null)
            throw new InvalidDataException($"The batch source returned an empty batch at epoch {_epoch} position {_batchInEpoch}.");
        double lr = _schedule.ForStep(_globalStep);
        OptimizerFactory.SetLearningRate(_optimizer, lr);
        foreach (var (_, model, master) in _optimized)
        {
            model.grad = null;
            if (_bf16) master.grad = null;
        }

        var images = batch.Images.to(_bf16 ? ScalarType.BFloat16 : ScalarType.Float32, _device);   // (B, 3, H, W)
        var targets = batch.Targets.ToDictionary(kv => kv.Key, kv => kv.Value.to(_device));
        ReseedForStep(_globalStep);

        var outputs = _model.forward(images);
        var losses = TaskLosses.Compute(outputs, targets, _settings.LossWeights);
        foreach (var t in losses.TasksWithoutLabels)
            _stepsWithoutLabels[t] = _stepsWithoutLabels.GetValueOrDefault(t) + 1;

        // One host transfer for every loss value: the NaN check and the progress report both need them.
        var names = losses.PerTask.Keys.ToList();
        var values = torch.stack([.. names.Select(n => losses.PerTask[n]), losses.Total]).detach().cpu().data<float>().ToArray();
        for (int i = 0; i < names.Count; i++)
            if (!float.IsFinite(values[i])) throw new NonFiniteLossException(names[i], values[i], _epoch, _globalStep, lr);
        if (!float.IsFinite(values[^1])) throw new NonFiniteLossException("total", values[^1], _epoch, _globalStep, lr);

        var taskLosses = new Dictionary<string, double>();
        for (int i = 0; i < names.Count; i++)
            if (!losses.TasksWithoutLabels.Contains(names[i])) taskLosses[names[i]] = values[i];

        // When no task has a label pixel the total has no gradient: there is nothing to learn from this batch.
        if (losses.Total.requires_grad)
        {
            losses.Total.backward();
            if (_bf16)
            {
                foreach (var (_, model, master) in _optimized)
                    if (model.grad is { } g) master.grad = g.to(ScalarType.Float32);
            }
            if (_settings.ClipGradientNorm is > 0 and var maxNorm)
            {
                var withGrad = _optimized.Select(o => o.Master).Where(p => p.grad is not null).ToList();
                if (withGrad.Count > 0) torch.nn.utils.clip_grad_norm_(withGrad, maxNorm);
            }
            _optimizer.step();
            if (_bf16)
            {
                using var noGrad = torch.no_grad();
                foreach (var (_, model, master) in _optimized) model.copy_(master);
            }
        }
        return new StepOutcome(taskLosses, values[^1], lr, batch.Images.shape[0]);
    }

    /// <summary>Torch's generators (CPU and CUDA) get a seed that depends only on (seed, step).</summary>
    private void ReseedForStep(long step)
    {
        // SplitMix64 of (seed, step): well-spread 63-bit seeds for neighbouring steps.
        ulong z = ((ulong)(uint)_settings.Seed << 32) ^ (ulong)step;
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        long seed = (long)(z & 0x7FFF_FFFF_FFFF_FFFFUL);
        torch.random.manual_seed(seed);
        if (_device.type == DeviceType.CUDA) torch.cuda.manual_seed_all(seed);
    }

    private void Report(ProgressWindow window, Stopwatch run, long totalSteps)
    {
        if (_settings.Progress is null || window.Steps == 0) { window.Reset(); return; }
        double seconds = window.Elapsed.TotalSeconds;
        double perStep = seconds / window.Steps;
        var eta = TimeSpan.FromSeconds(Math.Max(0, totalSteps - _globalStep) * perStep);
        _settings.Progress.Report(new TrainingProgress(
            Epoch: _batchInEpoch == 0 && _epoch > 0 ? _epoch - 1 : _epoch,
            Step: _globalStep,
            TotalSteps: totalSteps,
            TaskLosses: window.MeanTaskLosses(),
            TotalLoss: window.TotalLoss / window.Steps,
            LearningRate: window.LastLearningRate,
            ImagesPerSecond: seconds > 0 ? window.Images / seconds : 0,
            EstimatedTimeRemaining: eta,
            Elapsed: run.Elapsed));
        window.Reset();
    }

    /// <summary>
    /// The next batch of the epoch. When the source fails (e.g. a corrupt sample) after steps of this run, a checkpoint of
    /// the steps done is written first (when a folder is set), so fixing the data and resuming loses nothing.
    /// </summary>
    private bool NextBatch(IEnumerator<TrainingBatch> batches)
    {
        try
        {
            return batches.MoveNext();
        }
        catch (Exception) when (_settings.CheckpointDirectory != null && _globalStep > _firstStepOfRun && _lastCheckpointStep != _globalStep)
        {
            TrySaveCheckpoint();
            throw;
        }
    }

    /// <summary>Writes a checkpoint; a write failure (full disk, no permission) becomes a warning and null, and training goes on.</summary>
    private string? TrySaveCheckpoint()
    {
        try
        {
            return SaveCheckpoint();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _settings.Warning?.Invoke($"The checkpoint of step {_globalStep} could not be written to '{_settings.CheckpointDirectory}' ({Data.Formats.IoFailure.Describe(e)}); training goes on.");
            return null;
        }
    }

    private string SaveCheckpoint()
    {
        // Record the next step's position; an epoch whose batches are all done continues at the next epoch.
        int epoch = _epoch, batch = _batchInEpoch;
        if (batch >= _data.BatchesPerEpoch) { epoch++; batch = 0; }
        var position = new TrainingPosition(_globalStep, epoch, batch, _data.BatchesPerEpoch, _settings.Seed);
        using var scope = torch.NewDisposeScope();
        var modelState = _model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        if (_bf16)
        {
            foreach (var (name, _, master) in _optimized) modelState[name] = master;
            foreach (var key in modelState.Keys.ToList())
                if (modelState[key].dtype == ScalarType.BFloat16) modelState[key] = modelState[key].to(ScalarType.Float32);
        }
        var optimizerState = new List<KeyValuePair<string, Tensor>>();
        var states = _optimizer.state_dict().State;
        for (int i = 0; i < _optimized.Count; i++)
        {
            var s = (AdamW.State)states[i];
            var name = _optimized[i].Name;
            optimizerState.Add(new($"exp_avg/{name}", s.exp_avg));
            optimizerState.Add(new($"exp_avg_sq/{name}", s.exp_avg_sq));
            optimizerState.Add(new($"step/{name}", torch.tensor(s.step)));
        }
        var folder = TrainingCheckpoint.Save(_settings.CheckpointDirectory!, position, modelState, optimizerState, _settings.KeepCheckpoints);
        _lastCheckpointStep = _globalStep;
        return folder;
    }

    private void Resume(string path)
    {
        var folder = TrainingCheckpoint.Resolve(path);
        var position = TrainingCheckpoint.ReadManifest(folder);
        if (position.BatchesPerEpoch != _data.BatchesPerEpoch)
            throw new InvalidOperationException(
                $"Checkpoint '{folder}' was written with {position.BatchesPerEpoch} batches per epoch, but the data now gives {_data.BatchesPerEpoch}; the run cannot continue the same schedule.");
        if (position.Seed != _settings.Seed)
            throw new InvalidOperationException($"Checkpoint '{folder}' was written with seed {position.Seed}, but the settings say {_settings.Seed}.");

        var modelFile = Path.Combine(folder, TrainingCheckpoint.ModelFileName);
        var optimizerFile = Path.Combine(folder, TrainingCheckpoint.OptimizerFileName);
        var modelState = Checkpoints.SafeTensors.Load(modelFile);
        var optimizerState = Checkpoints.SafeTensors.Load(optimizerFile);
        try
        {
            using var noGrad = torch.no_grad();
            var own = _model.state_dict();
            var missing = own.Keys.Where(k => !modelState.ContainsKey(k)).ToList();
            var unexpected = modelState.Keys.Where(k => !own.ContainsKey(k)).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw new InvalidDataException($"Checkpoint file '{modelFile}' does not fit the model: missing {Describe(missing)}, unexpected {Describe(unexpected)}.");
            foreach (var (key, target) in own)
            {
                var source = modelState[key];
                if (!source.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"Checkpoint file '{modelFile}': '{key}' has shape [{string.Join(", ", source.shape)}], the model expects [{string.Join(", ", target.shape)}].");
                target.copy_(source);
            }

            var states = _optimizer.state_dict().State;
            for (int i = 0; i < _optimized.Count; i++)
            {
                var (name, _, master) = _optimized[i];
                if (_bf16) master.copy_(modelState[name]);
                var s = (AdamW.State)states[i];
                s.exp_avg.copy_(Require(optimizerState, $"exp_avg/{name}", optimizerFile, s.exp_avg));
                s.exp_avg_sq.copy_(Require(optimizerState, $"exp_avg_sq/{name}", optimizerFile, s.exp_avg_sq));
                s.step = Require(optimizerState, $"step/{name}", optimizerFile, null).item<long>();
            }
        }
        finally
        {
            foreach (var t in modelState.Values) t.Dispose();
            foreach (var t in optimizerState.Values) t.Dispose();
        }
        _globalStep = position.GlobalStep;
        _epoch = position.Epoch;
        _batchInEpoch = position.BatchInEpoch;
    }

    private static Tensor Require(Dictionary<string, Tensor> state, string key, string file, Tensor? like)
    {
        if (!state.TryGetValue(key, out var t))
            throw new InvalidDataException($"Checkpoint file '{file}' has no '{key}': it was written for a model with other trainable parameters.");
        if (like is not null && !t.shape.SequenceEqual(like.shape))
            throw new InvalidDataException($"Checkpoint file '{file}': '{key}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", like.shape)}].");
        return t;
    }

    private static string Describe(List<string> keys) =>
        keys.Count == 0 ? "none" : string.Join(", ", keys.Take(5).Select(k => $"'{k}'")) + (keys.Count > 5 ? $" and {keys.Count - 5} more" : "");

    /// <summary>Casts the network for bfloat16 compute, keeping normalisation layers in float32.</summary>
    private static void CastForBFloat16(nn.Module model)
    {
        model.to(ScalarType.BFloat16);
        foreach (var (_, module) in model.named_modules())
            if (module is LayerNorm or BatchNorm1d or BatchNorm2d or BatchNorm3d or GroupNorm)
                module.to(ScalarType.Float32);
    }

    /// <summary>Disposes the optimizer (its moments) and the bfloat16 master copies; the model stays the caller's.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _optimizer.Dispose();
        if (_bf16) foreach (var (_, _, master) in _optimized) master.Dispose();
    }

    private sealed record StepOutcome(IReadOnlyDictionary<string, double> TaskLosses, double TotalLoss, double LearningRate, long BatchSize);

    /// <summary>Sums over the steps since the last report.</summary>
    private sealed class ProgressWindow
    {
        private readonly Dictionary<string, (double Sum, int Count)> _tasks = new();
        private Stopwatch _clock = Stopwatch.StartNew();

        public int Steps { get; private set; }
        public double TotalLoss { get; private set; }
        public long Images { get; private set; }
        public double LastLearningRate { get; private set; }
        public TimeSpan Elapsed => _clock.Elapsed;

        public void Add(StepOutcome outcome, long batch)
        {
            Steps++;
            Images += batch;
            TotalLoss += outcome.TotalLoss;
            LastLearningRate = outcome.LearningRate;
            foreach (var (task, loss) in outcome.TaskLosses)
            {
                var (sum, count) = _tasks.GetValueOrDefault(task);
                _tasks[task] = (sum + loss, count + 1);
            }
        }

        public IReadOnlyDictionary<string, double> MeanTaskLosses() => _tasks.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.Count);

        public void Reset()
        {
            _tasks.Clear();
            Steps = 0;
            TotalLoss = 0;
            Images = 0;
            _clock = Stopwatch.StartNew();
        }
    }
}

/// <summary>What a training run did.</summary>
/// <param name="Cancelled">Whether the run stopped because of the cancellation token.</param>
/// <param name="GlobalStep">Optimizer steps done in all (across resumes).</param>
/// <param name="Epoch">The epoch of the next step.</param>
/// <param name="BatchInEpoch">The position of the next batch in that epoch.</param>
/// <param name="LastTaskLosses">The per-task losses of the last step (tasks without labels left out).</param>
/// <param name="LastTotalLoss">The weighted total of the last step (NaN when no step ran).</param>
/// <param name="LastCheckpoint">The last checkpoint folder written, if any.</param>
/// <param name="StepsWithoutLabels">For each classification task, the steps whose batch held no valid label pixel.</param>
/// <param name="Elapsed">Wall time of this run.</param>
internal sealed record TrainingResult(
    bool Cancelled,
    long GlobalStep,
    int Epoch,
    int BatchInEpoch,
    IReadOnlyDictionary<string, double> LastTaskLosses,
    double LastTotalLoss,
    string? LastCheckpoint,
    IReadOnlyDictionary<string, long> StepsWithoutLabels,
    TimeSpan Elapsed);
