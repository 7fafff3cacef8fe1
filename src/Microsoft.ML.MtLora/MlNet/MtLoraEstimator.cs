using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

/// <summary>
/// Trains an MTLoRA multi-task network on dense labels and returns an <see cref="MtLoraTransformer"/>. Created by
/// <c>mlContext.MultiTask().Trainers.MtLora(...)</c>.
/// </summary>
/// <remarks>
/// <para>Input: the image column (<c>MLImage</c>, any size) and one label column per task of
/// <see cref="MtLoraOptions.Network"/> (names and layouts in <see cref="MtLoraOptions"/>), e.g. the view of
/// <c>mlContext.Data.LoadPascalContext</c>, cached for shuffling. Output: the transformer's prediction columns.</para>
/// <para><c>Fit</c> builds the network, loads the pretrained weights, reads augmented batches, trains with the reference's
/// schedule and losses, and logs progress and validation results through the ML.NET log (<c>mlContext.Log</c>).</para>
/// <para>To save a model that takes image files as input (with the complete input schema in model.zip), put the
/// estimator after <c>LoadImages</c>: <c>mlContext.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath").Append(mlContext.MultiTask().Trainers.MtLora(options))</c>
/// over <c>LoadPascalContext</c> with <c>PascalContextOptions.ImageColumn = PascalImageColumn.FilePath</c>, and save the
/// fitted chain with that view's schema. <see cref="MtLoraOptions.ValidationSet"/> is read by this estimator directly, so
/// it needs the image column itself (e.g. the loader's default decoded view of the validation split).</para>
/// </remarks>
public sealed class MtLoraEstimator : IEstimator<MtLoraTransformer>
{
    private readonly MLContext _mlContext;
    private readonly IHost _host;
    private readonly MtLoraOptions _options;

    internal MtLoraEstimator(MLContext mlContext, MtLoraOptions options)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _mlContext = mlContext;
        _host = ((IHostEnvironment)mlContext).Register("MtLora");
        _options = options;
    }

    /// <summary>The options this estimator trains with.</summary>
    public MtLoraOptions Options => _options;

    /// <summary>
    /// The schema <c>Fit(...).Transform</c> produces: the input columns plus the prediction columns, exactly as the
    /// transformer delivers them (types, vector kinds and the <c>Layout</c> annotation): known-size vectors when the image
    /// column has a known size (e.g. after <c>ResizeImages</c>), variable-size vectors otherwise. Checks that the image
    /// column and every task's label column are present with the right types.
    /// </summary>
    /// <param name="inputSchema">The training data's schema shape.</param>
    /// <returns>The output schema shape.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type; the message names it.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckColumns(inputSchema);
        var columns = inputSchema.ToDictionary(c => c.Name);
        inputSchema.TryFindColumn(_options.ImageColumnName, out var image);
        // The transformer's own description of its outputs (MtLoraBindings), so that promise and delivery cannot drift apart.
        foreach (var o in MtLoraBindings.DescribeOutputs(_options.Network.Tasks, (ImageDataViewType)image.ItemType))
        {
            SchemaShape.GetColumnTypeShape(o.Type, out var kind, out var item, out bool isKey);
            columns[o.Name] = new SchemaShape.Column(o.Name, kind, item, isKey, SchemaShape.Create(o.Annotations().Schema));
        }
        return new SchemaShape(columns.Values);
    }

    private void CheckColumns(SchemaShape schema)
    {
        string Present() => string.Join(", ", schema.Select(c => c.Name));
        if (!schema.TryFindColumn(_options.ImageColumnName, out var image))
            throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{_options.ImageColumnName}' was not found (MtLoraOptions.ImageColumnName). Columns present: {Present()}.");
        if (image.Kind != SchemaShape.Column.VectorKind.Scalar || image.ItemType is not ImageDataViewType)
            throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{image.Name}' has type {image.ItemType}; expected an image (MLImage), e.g. from LoadPascalContext or mlContext.Transforms.LoadImages.");
        foreach (var task in _options.Network.Tasks)
        {
            var name = _options.LabelColumnName(task);
            if (!schema.TryFindColumn(name, out var label))
                throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' for task {task.Name} was not found. Columns present: {Present()}.");
            bool vector = label.Kind != SchemaShape.Column.VectorKind.Scalar;
            bool ok = task.LabelItemType == NumberDataViewType.Single
                ? vector && label.ItemType == NumberDataViewType.Single
                : vector && (label.ItemType == NumberDataViewType.Byte || label.ItemType == NumberDataViewType.Single);
            if (!ok)
                throw new ArgumentOutOfRangeException(nameof(schema),
                    $"Label column '{name}' for task {task.Name} has type {(vector ? "Vector<" + label.ItemType + ">" : label.ItemType.ToString())}; expected " +
                    (task.LabelChannels == 3 ? "Vector<Single> (3·H·W, CHW)." : task.LabelItemType == NumberDataViewType.Single ? "Vector<Single> of H·W values." : "Vector<Byte> (or Vector<Single>) of H·W values."));
        }
    }

    /// <summary>Trains the network on <paramref name="input"/> and returns the trained transformer.</summary>
    /// <param name="input">The training data: the image column and the label columns.</param>
    /// <returns>The transformer (dispose it to free the network's memory).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type.</exception>
    /// <exception cref="ArgumentException">The data holds fewer rows than one batch.</exception>
    /// <exception cref="OperationCanceledException"><see cref="MtLoraOptions.CancellationToken"/> stopped the training.</exception>
    public MtLoraTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        CheckColumns(SchemaShape.Create(input.Schema));
        if (o.ValidationSet is not null) CheckColumns(SchemaShape.Create(o.ValidationSet.Schema));
        using var ch = _host.Start("Fit");

        TorchRuntime.Initialize();
        var device = TorchRuntime.ResolveDevice(o.Device, o.FallbackToCpu);
        int seed = o.Seed ?? ((IHostEnvironmentInternal)_mlContext).Seed ?? 0;
        var tasks = o.Network.Tasks.ToArray();
        ch.Info(MessageSensitivity.None, "MTLoRA: tasks {0}, {1} px, device {2}, seed {3}.", string.Join(", ", tasks.Select(t => t.Name)), o.Network.ImageSize, device, seed);

        var reader = new DenseBatchReader(input, new DenseBatchReaderOptions
        {
            Tasks = tasks,
            BatchSize = o.BatchSize,
            ImageSize = o.Network.ImageSize,
            Augment = o.Augment,
            Geometry = o.AugmentationGeometry,
            Draws = o.AugmentationDraws,
            Shuffle = o.Shuffle,
            DropLast = true,
            Seed = seed,
            DegreeOfParallelism = o.DataLoaderParallelism,
            PrefetchBatches = o.DataLoaderPrefetchBatches,
            ImageColumnName = o.ImageColumnName,
            LabelColumnNames = tasks.ToDictionary(t => t, o.LabelColumnName),
        });
        long batchesPerEpoch = reader.BatchesPerEpoch ?? CountRows(input) / o.BatchSize;
        if (batchesPerEpoch < 1)
            throw new ArgumentException($"The training data holds fewer rows than one batch (MtLoraOptions.BatchSize = {o.BatchSize}); the reference drops incomplete batches.", nameof(input));

        torch.manual_seed(seed);
        using var network = new MultiTaskSwin(o.Network);
        if (o.PretrainedWeightsPath is { } path) LoadPretrained(ch, network, path);
        var counts = network.CountParameters();
        ch.Info(MessageSensitivity.None, "MTLoRA: {0:N0} trainable parameters ({1:N0} LoRA, {2:N0} decoder) of {3:N0}.", counts.Trainable, counts.Lora, counts.Decoder, counts.Total);

        var settings = new MultiTaskTrainerSettings
        {
            Epochs = o.Epochs,
            MaxSteps = o.MaxSteps,
            BaseLearningRate = o.EffectiveLearningRate,
            WarmupLearningRate = TrainingRecipe.WarmupLearningRate(o.BatchSize),
            MinLearningRate = TrainingRecipe.MinLearningRate(o.BatchSize),
            WarmupEpochs = o.WarmupEpochs,
            WeightDecay = o.WeightDecay,
            ClipGradientNorm = o.GradientClipNorm,
            AccumulationSteps = o.AccumulationSteps,
            LossWeights = tasks.ToDictionary(t => t.Name, t => o.TaskLossWeights is { } w && w.TryGetValue(t, out var v) ? v : t.DefaultLossWeight),
            Tasks = tasks,
            Device = device,
            UseBFloat16 = o.UseBFloat16,
            Seed = seed,
            CheckpointDirectory = o.CheckpointDirectory,
            CheckpointEverySteps = o.CheckpointEverySteps,
            KeepCheckpoints = o.KeepCheckpoints,
            ResumeFrom = o.ResumeFrom,
            RunSettings = RunSettings.Of(o, seed, o.OptionName),
            ProgressEverySteps = o.ProgressEverySteps,
            Progress = new ChannelProgress(ch, o.Progress),
            CheckAlive = _host.CheckAlive,
            Warning = message => ch.Warning(MessageSensitivity.None, "MTLoRA: {0}", message),
            ValidateEveryEpochs = o.ValidationEveryEpochs,
            KeepBest = o.Keep == MtLoraKeep.Best,
            NonFiniteLoss = o.NonFiniteLoss,
        };
        var validations = new List<MtLoraValidationReport>();
        if (o.ValidationSet is not null)
            settings = settings with { Validation = (epoch, step) => ValidateLive(ch, network, device, epoch, step, validations), ValidationCriterion = ValidationCriterion() };
        var source = new DelegateBatchSource(checked((int)batchesPerEpoch), (epoch, skip) => Batches(reader, epoch, skip));
        TrainingResult result;
        Dictionary<string, Tensor>? best = null;
        try
        {
            using (var trainer = new MultiTaskTrainer(network, source, settings))
            {
                result = trainer.Train(o.CancellationToken);
                best = trainer.TakeBestState();
            }
            if (o.Keep == MtLoraKeep.Best && best is not null) LoadInto(network, best);
        }
        finally
        {
            if (best is not null) foreach (var t in best.Values) t.Dispose();
        }
        if (result.Cancelled)
            throw new OperationCanceledException(
                $"MTLoRA training was cancelled after {result.GlobalStep} step(s)" +
                (result.LastCheckpoint is { } c ? $"; continue with MtLoraOptions.ResumeFrom = '{c}'." : "."), o.CancellationToken);
        ch.Info(MessageSensitivity.None, "MTLoRA: trained {0} step(s) in {1:hh\\:mm\\:ss}, last loss {2:G5}.", result.GlobalStep, result.Elapsed, result.LastTotalLoss);

        if (result.SkippedSteps > 0)
            ch.Warning(MessageSensitivity.None, "MTLoRA: {0} step(s) skipped because their loss was not finite.", result.SkippedSteps);
        var bestReport = validations.LastOrDefault(v => v.Step == result.BestStep && v.Epoch == result.BestEpoch);
        var model = Snapshot(network, device);
        // The best may be one a resumed run read back from best/ (its metrics are not stored: the report's Best is null then,
        // and BestBeforeResume says where it was and its score).
        model.TrainingReport = new MtLoraTrainingReport(result.GlobalStep, result.SkippedSteps, o.ValidationSet is null ? null : o.ValidationProtocol,
            bestReport, validations.LastOrDefault(), o.Keep == MtLoraKeep.Best && best is not null ? MtLoraKeep.Best : MtLoraKeep.Last)
        {
            BestBeforeResume = bestReport is null && result is { BestEpoch: int bestEpoch, BestStep: long bestStep, BestScore: double bestScore }
                ? o.BestEpochTask is { } task
                    ? new MtLoraStoredBest(bestEpoch, bestStep, Evaluation.DeltaM.Sign(task) * bestScore, $"{task.Name} paper metric")   // the score is the signed metric
                    : new MtLoraStoredBest(bestEpoch, bestStep, bestScore, "Δm")
                : null,
        };
        if (result.BestStep is not null)
            ch.Info(MessageSensitivity.None, "MTLoRA: best validation after epoch {0} (step {1}{2}); returning the {3} weights.", result.BestEpoch, result.BestStep,
                bestReport is null ? ", before the resume" : "", model.TrainingReport.Kept == MtLoraKeep.Best ? "best" : "last");
        return model;
    }

    /// <summary>Copies kept weights (trainable parameters and buffers) into the network.</summary>
    private static void LoadInto(MultiTaskSwin network, Dictionary<string, Tensor> state)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, target) in network.state_dict())
            if (state.TryGetValue(name, out var source)) target.copy_(source);
    }

    private static void LoadPretrained(IChannel ch, MultiTaskSwin network, string path)
    {
        var weights = PretrainedWeights.Load(path, network.Options, out bool whole);
        try
        {
            var report = whole ? network.LoadStateDict(weights, strict: true) : network.LoadPretrainedBackbone(weights, strict: true);
            ch.Info(MessageSensitivity.None, "MTLoRA: loaded {0} from '{1}': {2} tensor(s) loaded, {3} left at their initialisation, {4} ignored.",
                whole ? "an MTLoRA checkpoint" : "a Swin backbone", path, report.Loaded.Count, report.Missing.Count, report.Ignored.Count);
        }
        catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e); // the network's message names keys, not the file
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    // The trainer's batches, by reference task name.
    private static IEnumerable<TrainingBatch> Batches(DenseBatchReader reader, int epoch, int skip)
    {
        foreach (var batch in reader.ReadEpoch(epoch, skip))
        {
            // The trainer takes the tensors over and disposes them after the step.
            yield return new TrainingBatch(batch.Images, batch.Targets.ToDictionary(kv => kv.Key.Name, kv => kv.Value));
        }
    }

    /// <summary>An inference transformer over a copy of the network's current (unmerged) weights, in float32.</summary>
    private MtLoraTransformer Snapshot(MultiTaskSwin network, Device device)
    {
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, t) in network.state_dict())
                weights[name] = t.detach().to(t.is_floating_point() ? ScalarType.Float32 : t.dtype).cpu().clone();
            return new MtLoraTransformer(_mlContext, network.Options, weights, ImagePreprocessing.Reference(network.Options.ImageSize),
                _options.ImageColumnName, _options.InferenceBatchSize, device, bfloat16: _options.UseBFloat16)
            {
                LoaderParallelism = _options.DataLoaderParallelism,
                LoaderPrefetchBatches = _options.DataLoaderPrefetchBatches,
            };
        }
        catch
        {
            foreach (var t in weights.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The trainer's validation (it has put the network in evaluation mode): the live network on the validation set under
    /// <see cref="MtLoraOptions.ValidationProtocol"/>; returns the score that picks the best epoch (higher is better).
    /// </summary>
    private double? ValidateLive(IChannel ch, MultiTaskSwin network, Device device, int epoch, long step, List<MtLoraValidationReport> validations)
    {
        var o = _options;
        var tasks = o.Network.Tasks.ToArray();
        var inputType = Modeling.Precision.InputType(network);
        var metrics = Evaluation.NetworkEvaluation.Evaluate(images => network.forward(images.to(inputType, device)), o.ValidationSet!, new Evaluation.NetworkEvaluationSettings
        {
            Tasks = tasks,
            ImageSize = o.Network.ImageSize,
            Protocol = o.ValidationProtocol,
            Baselines = o.ValidationBaselines,
            BatchSize = o.InferenceBatchSize,
            ImageColumnName = o.ImageColumnName,
            LabelColumnNames = tasks.ToDictionary(t => t, o.LabelColumnName),
            DegreeOfParallelism = o.DataLoaderParallelism,
            PrefetchBatches = o.DataLoaderPrefetchBatches,
        });
        ch.Info(MessageSensitivity.None, "MTLoRA validation after epoch {0} (step {1}):{2}{3}", epoch, step, Environment.NewLine, metrics.ToTable());
        var report = new MtLoraValidationReport(epoch, step, metrics);
        validations.Add(report);
        o.ValidationProgress?.Report(report);
        return o.BestEpochTask is { } task ? Evaluation.DeltaM.Sign(task) * metrics.GetPaperMetric(task) : metrics.DeltaM;
    }

    /// <summary>How <see cref="ValidateLive"/> scores, stored with the best weights: a resume compares only like with like.</summary>
    private string ValidationCriterion()
    {
        var o = _options;
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        var tasks = o.Network.Tasks.ToArray();
        var baselines = tasks.Select(t => o.ValidationBaselines.TryGetValue(t, out double b) ? $"{t.Name}={b.ToString("R", ci)}" : null).OfType<string>();
        return (o.BestEpochTask is { } task ? $"{task.Name} paper metric" : "Δm")
            + $"; protocol {o.ValidationProtocol}; image size {o.Network.ImageSize.ToString(ci)}; tasks {string.Join(",", tasks.Select(t => t.Name))}; baselines {string.Join(",", baselines)}";
    }

    private static long CountRows(IDataView data)
    {
        long n = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>Logs each progress report to the ML.NET channel and forwards it to the caller's callback.</summary>
    private sealed class ChannelProgress(IChannel channel, IProgress<TrainingProgress>? user) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            channel.Info(MessageSensitivity.None, "MTLoRA: {0}", value);
            user?.Report(value);
        }
    }
}
