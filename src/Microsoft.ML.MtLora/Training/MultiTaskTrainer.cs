using System.Diagnostics;
using Microsoft.ML.MtLora.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>
/// The multi-task training loop of the reference (reference-spec §5, §6), readable top to bottom.
/// </summary>
/// <remarks>
/// <para>Each optimizer step, inside its own dispose scope (<see cref="RunStep"/>):</para>
/// <list type="number">
/// <item>the learning rate of step k is <c>lr(max(k − 1, 0))</c>, since the reference updates its scheduler after
/// each step (<see cref="LearningRateSchedule.ForStep(long)"/>);</item>
/// <item>clear the gradients to "none" (PyTorch's <c>zero_grad()</c> default), so a parameter that gets no gradient
/// this step is neither clipped nor moved by AdamW;</item>
/// <item>reseed torch's generators from (seed, k), so dropout and drop-path draws depend only on the step;</item>
/// <item>for each of the <see cref="MultiTaskTrainerSettings.AccumulationSteps"/> micro-batches of the batch (each in its
/// own dispose scope, so its activations are freed before the next): forward, the task losses and their weighted sum
/// (<see cref="TaskLosses"/>), backward of the sum divided by the number of micro-batches, gradients added up in float32
/// (<see cref="FlatAdamW.CollectGradients"/>);</item>
/// <item>one device-to-host read of all the loss values (the progress report and the check that stops with
/// <see cref="NonFiniteLossException"/>, naming the task, before any weight moves, and with the BatchNorm running statistics
/// put back as they were before the step's forward passes); nothing else in the step reads back
/// from the device: the labels are checked on the batch's CPU copy, and clipping computes its coefficient on the device;</item>
/// <item>global L2 gradient clipping over the parameters that have a gradient, AdamW step (<see cref="FlatAdamW"/>).</item>
/// </list>
/// <para>Gradient accumulation follows the reference's <c>ACCUMULATION_STEPS</c> (scale-lab/MTLoRA main.py): the batch
/// of <see cref="MultiTaskTrainerSettings"/> is the one the learning rate is scaled for (the reference multiplies its rate,
/// scaled for the micro-batch, by the number of steps, which is the same rate), an optimizer step follows every
/// <c>k</c> micro-batches, and the schedule counts optimizer steps. Each micro-batch's loss is divided by <c>k</c>, as in
/// Swin's main.py (microsoft/Swin-Transformer <c>train_one_epoch</c>: <c>loss = loss / ACCUMULATION_STEPS</c>); MTLoRA's
/// main.py leaves that division out of its multi-task branch, which makes the accumulated gradient <c>k</c> times the
/// mean and the clip at 5 bite <c>k</c> times earlier. With the division, <c>k</c> micro-batches of <c>b</c> images give the
/// gradient of one batch of <c>k·b</c> whenever each micro-batch has as many valid label pixels (every loss is a mean over
/// its own micro-batch, as in the reference) — except for BatchNorm in training mode, which normalises each micro-batch
/// with its own statistics (also as in the reference).</para>
/// <para>
/// Between steps the loop checks the cancellation token and the host's <c>CheckAlive</c>, sends progress reports and
/// writes checkpoints (<see cref="TrainingCheckpoint"/>). A cancelled run stops cleanly, writes a checkpoint when asked
/// and returns a result that says it was cancelled; resuming from any checkpoint continues bit for bit, because the
/// data order depends only on (epoch, position), the random state only on (seed, step), and the checkpoint holds the
/// weights, buffers and AdamW moments.
/// </para>
/// <para>
/// bfloat16 (<see cref="MultiTaskTrainerSettings.UseBFloat16"/>, CUDA only): TorchSharp has no autocast. The trainer
/// casts the network to bfloat16 except its normalisation layers (LayerNorm, BatchNorm and GroupNorm parameters and
/// statistics stay float32; the modules normalise in float32), so the matmuls, convolutions, attention, GELU, LoRA deltas
/// and their gradients run in bfloat16; it feeds bfloat16 images and computes the losses in float32. AdamW keeps float32
/// master weights and moments of the trainable parameters, the gradients are added up and clipped in float32, and the
/// updated masters are copied into the network. The frozen weights keep their float32 originals (on the CPU): checkpoints
/// hold the masters and the originals, and disposing the trainer casts the network back to float32 and writes both back,
/// so a model saved after a bfloat16 run has exactly the pretrained frozen weights.
/// </para>
/// </remarks>
internal sealed class MultiTaskTrainer : IDisposable
{
    private readonly nn.Module<Tensor, Dictionary<string, Tensor>> _model;
    private readonly ITrainingBatchSource _data;
    private readonly MultiTaskTrainerSettings _settings;
    private readonly Device _device;
    private readonly LearningRateSchedule _schedule;
    private readonly FlatAdamW _optimizer;
    // Parameters in AdamW's state order (names, moments, float32 masters).
    private readonly IReadOnlyList<OptimizedParameter> _optimized;
    private readonly bool _bf16;
    // bfloat16 only: the float32 originals of the frozen floating-point parameters (CPU), by name.
    private readonly Dictionary<string, Tensor> _frozenOriginals = new(StringComparer.Ordinal);
    private readonly Scalar _microBatchShare;
    private readonly Dictionary<string, long> _stepsWithoutLabels = new();
    private long _skippedSteps;
    private long _globalStep;
    private int _epoch;
    private int _batchInEpoch;
    private bool _disposed;
    private bool _resumed;
    private long _lastCheckpointStep = -1;
    private long _firstStepOfRun;
    private readonly TrainerValidation _validation;
    // The BatchNorm running statistics (running_mean, running_var, num_batches_tracked): a step's forward moves them, so a
    // step whose loss is not finite puts them back (RunStep).
    private readonly Tensor[] _normStatistics;

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

        // A CPU step frees and reallocates hundreds of megabytes: keep them in the process (see NativeHeap).
        if (_device.type == DeviceType.CPU) NativeHeap.KeepFreedMemory();
        _model.to(_device);
        var trainable = OptimizerFactory.TrainableParameters(_model);
        if (trainable.Count == 0)
            throw new ArgumentException("The model has no trainable parameter (every parameter has requires_grad = false).", nameof(model));

        var masters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            if (_bf16)
            {
                // float32 masters and originals, taken before the network is cast, so they hold the exact float32 weights.
                using var noGrad = torch.no_grad();
                foreach (var (name, p) in trainable) masters[name] = p.detach().clone();
                foreach (var (name, p) in _model.named_parameters())
                    if (!p.requires_grad && p.is_floating_point()) _frozenOriginals[name] = p.detach().to(torch.CPU, copy: true).DetachFromDisposeScope();
                // Casting replaces the network's parameter objects: look them up again afterwards.
                Precision.CastForBFloat16(_model);
                trainable = OptimizerFactory.TrainableParameters(_model);
            }
            _optimizer = OptimizerFactory.CreateAdamW(trainable, settings.WeightDecay, settings.Beta1, settings.Beta2, settings.Epsilon, masters);
        }
        finally
        {
            foreach (var t in masters.Values) t.Dispose();
        }
        _optimized = _optimizer.Parameters.ToList();
        _microBatchShare = (1.0 / settings.AccumulationSteps).ToScalar();
        _validation = new TrainerValidation(settings, _model, _optimized.Select(o => o.Name).ToList(), Float32State);
        // After the device move and the bfloat16 cast, which may replace buffer tensors; Resume copies into these ones.
        _normStatistics = _model.modules().OfType<NormBase>()
            .SelectMany(n => new[] { n.running_mean, n.running_var, n.num_batches_tracked }).OfType<Tensor>().ToArray();
    }

    /// <summary>
    /// The best-scoring weights of the validations (trainable parameters and buffers, float32 CPU), handed over to the caller
    /// (who disposes them); null when no validation ran or <see cref="MultiTaskTrainerSettings.KeepBest"/> is off.
    /// </summary>
    public Dictionary<string, Tensor>? TakeBestState() => _validation.TakeBest();

    /// <summary>
    /// The step's one device-to-host read (the loss values). A seam for the test that proves it is the only one: on the
    /// meta device no value can be read at all, so a step that completes there with this replaced read nothing else.
    /// </summary>
    internal Func<Tensor, float[]> ReadToHost { get; set; } = t => t.cpu().data<float>().ToArray();

    /// <summary>The optimizer (tests read the collected gradients through it).</summary>
    internal FlatAdamW Optimizer => _optimizer;

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
                StepOutcome? outcome = null;
                using (var scope = torch.NewDisposeScope())
                {
                    if (!NextBatch(batches)) break;
                    var batch = batches.Current;
                    try
                    {
                        outcome = Step(batch);
                    }
                    catch (NonFiniteLossException) when (_settings.NonFiniteLoss == NonFiniteLossPolicy.SkipStep)
                    {
                        _skippedSteps++;                                                          // no weight moved; the schedule goes on
                    }
                    catch (NonFiniteLossException) when (_settings.CheckpointDirectory != null && _globalStep > _firstStepOfRun && _lastCheckpointStep != _globalStep)
                    {
                        TrySaveCheckpoint();                                                      // the weights before this step: the last good ones
                        throw;
                    }
                    finally
                    {
                        batch.Dispose();
                    }
                }
                if (outcome is not null)
                {
                    last = outcome;
                    window.Add(last, batch: last.BatchSize);
                }
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
            batches.Dispose();                                                                    // the epoch's loader stops before the validation reads
            if (_validation.DueAfterEpoch(_epoch)) _validation.Run(_epoch, _globalStep);
        }
        // And at the end of a run that was not cancelled (once, when the last epoch's validation did not just run).
        if (!cancelled && _validation.Enabled && _validation.LastStep != _globalStep) _validation.Run(_epoch, _globalStep);

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
            Elapsed: run.Elapsed)
        {
            SkippedSteps = _skippedSteps,
            BestEpoch = _validation.BestEpoch,
            BestStep = _validation.BestStep,
            BestScore = _validation.BestScore,
        };
    }

    /// <summary>One optimizer step on one batch. Runs inside the caller's dispose scope.</summary>
    private StepOutcome Step(TrainingBatch batch)
    {
        if (batch.Images is null || batch.Targets is null)
            throw new InvalidDataException($"The batch source returned an empty batch at epoch {_epoch} position {_batchInEpoch}.");
        var outcome = RunStep(batch);
        foreach (var t in outcome.TasksWithoutLabels)
            _stepsWithoutLabels[t] = _stepsWithoutLabels.GetValueOrDefault(t) + 1;
        return outcome;
    }

    /// <summary>
    /// One optimizer step on <paramref name="batch"/> at the current global step (which it does not advance): the steps of
    /// the class remarks. Runs inside the caller's dispose scope; the batch stays the caller's. The benchmark calls this.
    /// </summary>
    /// <exception cref="NonFiniteLossException">A loss is NaN or infinite; no weight was changed.</exception>
    internal StepOutcome RunStep(TrainingBatch batch)
    {
        double lr = _schedule.ForStep(_globalStep);
        ProfileRegions.Phase("optimizer.zero_grad");
        _optimizer.ZeroGrad();
        int k = _settings.AccumulationSteps;
        long size = batch.Images.shape[0];
        if (size % k != 0)
            throw new InvalidDataException(
                $"The batch at epoch {_epoch} position {_batchInEpoch} holds {size} images, which AccumulationSteps = {k} cannot split into equal micro-batches.");
        long micro = size / k;
        ReseedForStep(_globalStep);
        // The forward passes update the BatchNorm running statistics; a copy (in the step's scope) lets a step whose loss is
        // not finite leave the network exactly as it was. PyTorch keeps the failed step's statistics; restoring them costs a
        // few small device copies per step (eng/benchmarks/README.md, "Non-finite steps").
        var normBefore = _normStatistics.Length == 0 ? [] : _normStatistics.Select(t => t.clone()).ToArray();

        var names = new List<string>();
        var rows = new List<Tensor>(k);
        var withLabels = new HashSet<string>(StringComparer.Ordinal);
        var labelled = new List<HashSet<string>>(k);
        for (int i = 0; i < k; i++)
        {
            using var scope = torch.NewDisposeScope();
            var (images, cpuTargets) = k == 1 ? (batch.Images, batch.Targets) : Slice(batch, i * micro, micro);
            var x = ToDevice(images, _bf16 ? ScalarType.BFloat16 : ScalarType.Float32);        // (b, 3, H, W)
            var targets = cpuTargets.ToDictionary(kv => kv.Key, kv => ToDevice(kv.Value, kv.Value.dtype));

            var outputs = _model.forward(x);
            if (ProfileRegions.Current is not null) outputs = outputs.ToDictionary(kv => kv.Key, kv => ProfileRegions.Enter("losses", kv.Value));
            // The labels are checked, and the valid pixels counted, on the batch's CPU copy: no device read.
            var counts = cpuTargets.Values.All(t => t.device_type == DeviceType.CPU) ? TaskLosses.CheckLabels(outputs, cpuTargets, _settings.Tasks) : null;
            var losses = TaskLosses.Compute(outputs, targets, _settings.LossWeights, counts, _settings.Tasks);
            if (i == 0) names.AddRange(losses.PerTask.Keys);
            labelled.Add(names.Where(n => !losses.TasksWithoutLabels.Contains(n)).ToHashSet(StringComparer.Ordinal));
            withLabels.UnionWith(labelled[^1]);
            rows.Add(torch.stack([.. names.Select(n => losses.PerTask[n]), losses.Total]).detach().MoveToOuterDisposeScope());

            // When no task has a label pixel the total has no gradient: there is nothing to learn from this micro-batch.
            if (losses.Total.requires_grad)
            {
                ProfileRegions.BeginBackward();
                (k == 1 ? losses.Total : losses.Total.mul(_microBatchShare)).backward();
                ProfileRegions.EndBackward("optimizer.collect_gradients");
                _optimizer.CollectGradients();
            }
        }

        // The one device-to-host read of the step: every loss value, for the progress report and the NaN check.
        ProfileRegions.Phase("losses.read");
        var values = ReadToHost(k == 1 ? rows[0] : torch.stack(rows));                         // (k·(T + 1))
        int width = names.Count + 1;
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < names.Count; j++)
                if (!float.IsFinite(values[i * width + j])) throw NonFinite(names[j], values[i * width + j]);
            if (!float.IsFinite(values[i * width + names.Count])) throw NonFinite("total", values[i * width + names.Count]);
        }
        // Per task: the mean over the micro-batches that had labels for it; the total: the mean of the micro-batch totals.
        var taskLosses = new Dictionary<string, double>();
        for (int j = 0; j < names.Count; j++)
        {
            var present = Enumerable.Range(0, k).Where(i => labelled[i].Contains(names[j])).Select(i => (double)values[i * width + j]).ToList();
            if (present.Count > 0) taskLosses[names[j]] = present.Average();
        }
        double total = Enumerable.Range(0, k).Average(i => (double)values[i * width + names.Count]);

        // No weight has moved yet (the optimizer step comes below): put the BatchNorm statistics back and stop the step.
        NonFiniteLossException NonFinite(string task, float value)
        {
            using (torch.no_grad())
                for (int n = 0; n < normBefore.Length; n++) _normStatistics[n].copy_(normBefore[n]);
            return new NonFiniteLossException(task, value, _epoch, _globalStep, lr);
        }

        ProfileRegions.Phase("optimizer.clip");
        if (_settings.ClipGradientNorm is > 0 and var maxNorm) _optimizer.ClipGradientNorm(maxNorm);
        ProfileRegions.Phase("optimizer.step");
        _optimizer.Step(lr);
        return new StepOutcome(taskLosses, total, lr, size, names.Where(n => !withLabels.Contains(n)).ToList());
    }

    /// <summary>Micro-batch <paramref name="start"/>..+<paramref name="count"/> of a batch (views).</summary>
    private static (Tensor Images, IReadOnlyDictionary<string, Tensor> Targets) Slice(TrainingBatch batch, long start, long count) =>
        (batch.Images.narrow(0, start, count), batch.Targets.ToDictionary(kv => kv.Key, kv => kv.Value.narrow(0, start, count)));

    /// <summary>A batch tensor on the training device; from the CPU to CUDA through pinned memory, without waiting for the GPU.</summary>
    private Tensor ToDevice(Tensor t, ScalarType dtype)
    {
        if (_device.type != DeviceType.CUDA || t.device_type != DeviceType.CPU) return t.to(dtype, _device);
        // A copy from pageable memory would wait for the queued kernels; from pinned memory it is queued behind them.
        return t.to(dtype).pin_memory().to(_device, non_blocking: true);
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
        var position = new TrainingPosition(_globalStep, epoch, batch, _data.BatchesPerEpoch, _settings.Seed)
        {
            Settings = _settings.RunSettings?.ToDictionary(r => r.Key, r => r.Value, StringComparer.Ordinal),
        };
        using var scope = torch.NewDisposeScope();
        var modelState = Float32State();
        var optimizerState = new List<KeyValuePair<string, Tensor>>();
        foreach (var o in _optimized)
        {
            optimizerState.Add(new($"exp_avg/{o.Name}", o.ExpAvg));
            optimizerState.Add(new($"exp_avg_sq/{o.Name}", o.ExpAvgSq));
            optimizerState.Add(new($"step/{o.Name}", torch.tensor(o.Step)));
        }
        var folder = TrainingCheckpoint.Save(_settings.CheckpointDirectory!, position, modelState, optimizerState, _settings.KeepCheckpoints);
        _lastCheckpointStep = _globalStep;
        return folder;
    }

    private void Resume(string path)
    {
        var folder = TrainingCheckpoint.Resolve(path);
        var position = TrainingCheckpoint.ReadManifest(folder);
        // The recorded settings first: their line names the option (a batch size also changes the batches per epoch).
        if (_settings.RunSettings is { } given)
        {
            // Every manifest records the seed, also one written before the settings were.
            var recorded = new Dictionary<string, string>(position.Settings ?? new Dictionary<string, string>(), StringComparer.Ordinal);
            recorded.TryAdd(RunSettings.Seed, position.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var (refusal, warnings) = RunSettings.Compare(folder, recorded, given);
            if (refusal is not null) throw new InvalidOperationException(refusal);
            foreach (var w in warnings) _settings.Warning?.Invoke(w);
        }
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

            foreach (var (name, original) in _frozenOriginals) original.copy_(modelState[name]);
            foreach (var o in _optimized)
            {
                if (_bf16) o.Master.copy_(modelState[o.Name]);
                o.ExpAvg.copy_(Require(optimizerState, $"exp_avg/{o.Name}", optimizerFile, o.ExpAvg));
                o.ExpAvgSq.copy_(Require(optimizerState, $"exp_avg_sq/{o.Name}", optimizerFile, o.ExpAvgSq));
                o.Step = Require(optimizerState, $"step/{o.Name}", optimizerFile, null).item<long>();
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
        _validation.Restore(folder, position.GlobalStep, position.Epoch);
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

    /// <summary>
    /// The network's state dict in float32: with bfloat16, the trainable parameters are the float32 masters, the frozen ones
    /// their float32 originals and the other bfloat16 tensors are converted. Tensors are the live ones where possible; call
    /// inside a dispose scope.
    /// </summary>
    private Dictionary<string, Tensor> Float32State()
    {
        var state = _model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        if (!_bf16) return state;
        foreach (var o in _optimized) state[o.Name] = o.Master;
        foreach (var (name, original) in _frozenOriginals) state[name] = original;
        foreach (var key in state.Keys.ToList())
            if (state[key].dtype == ScalarType.BFloat16) state[key] = state[key].to(ScalarType.Float32);
        return state;
    }

    /// <summary>
    /// Disposes the optimizer (its moments and masters). With bfloat16 the network is first cast back to float32 and given
    /// the float32 masters and frozen originals, so it leaves the trainer exactly as a float32 run would have left it. The
    /// model stays the caller's.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_bf16)
        {
            var masters = _optimized.ToDictionary(o => o.Name, o => o.Master, StringComparer.Ordinal);
            _model.to(ScalarType.Float32);
            using var noGrad = torch.no_grad();
            foreach (var (name, p) in _model.named_parameters())
            {
                if (masters.TryGetValue(name, out var master)) p.copy_(master);
                else if (_frozenOriginals.TryGetValue(name, out var original)) p.copy_(original);
            }
        }
        _optimizer.Dispose();
        _validation.Dispose();
        foreach (var t in _frozenOriginals.Values) t.Dispose();
        _microBatchShare.Dispose();
    }

    /// <summary>What one optimizer step did.</summary>
    /// <param name="TaskLosses">Per task, the mean loss over the micro-batches that had labels for it.</param>
    /// <param name="TotalLoss">The mean of the micro-batches' weighted totals.</param>
    /// <param name="LearningRate">The learning rate of the step.</param>
    /// <param name="BatchSize">Images in the step.</param>
    /// <param name="TasksWithoutLabels">Classification tasks without a valid label pixel in the whole batch.</param>
    internal sealed record StepOutcome(IReadOnlyDictionary<string, double> TaskLosses, double TotalLoss, double LearningRate, long BatchSize,
        IReadOnlyList<string> TasksWithoutLabels);

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
    TimeSpan Elapsed)
{
    /// <summary>Steps skipped because their loss was not finite (<see cref="NonFiniteLossPolicy.SkipStep"/>).</summary>
    public long SkippedSteps { get; init; }

    /// <summary>Epochs completed at the best validation, or null when none ran.</summary>
    public int? BestEpoch { get; init; }

    /// <summary>The global step of the best validation, or null.</summary>
    public long? BestStep { get; init; }

    /// <summary>The best validation score, or null.</summary>
    public double? BestScore { get; init; }
}
