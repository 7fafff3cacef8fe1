using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using Microsoft.ML.MtLora.Visualization;
using TorchSharp;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora train [--dataset nyud] [--data &lt;PASCAL_MT or NYUD_MT root&gt;] --out model.zip</c>: trains an MTLoRA model, evaluates it on the
/// validation split, writes the training log and curves, and saves the model as an ML.NET model.zip.
/// </summary>
/// <remarks>
/// Without <c>--data</c> it trains a small Swin on a generated synthetic PASCAL-Context (or, with <c>--dataset nyud</c>, NYUD-v2;
/// cached) and compares the model with the untrained network (same seed, same initialisation) on the synthetic validation
/// split: the README's main job.
/// </remarks>
internal static class TrainCommand
{
    /// <summary>Everything the verb needs, parsed from the command line.</summary>
    internal sealed class Settings
    {
        public string? Data;
        public string Out = "";
        public string? Tasks;
        public string? Mode;
        public string? Config;
        public int? SharedRank, TaskRank, ImageSize;
        public int? Epochs, BatchSize, Warmup;
        public long? MaxSteps;
        public double? LearningRate;
        public string? Backbone, InitCheckpoint, BackbonePreset;
        public string Device = "auto";
        public bool FallbackToCpu = true, BFloat16;
        public int Seed;
        public string? CheckpointDir, Resume;
        public int CheckpointEvery, ValEvery;
        public string? LogDir;
        /// <summary>--baselines; null for the dataset's default (pascal: paper; nyud: none).</summary>
        public string? Baselines;
        /// <summary>--dataset: pascal (PASCAL_MT) or nyud (NYUD_MT).</summary>
        public string Dataset = "pascal";
        /// <summary>--augmentation-draws; null for the dataset's (pascal: rotation ±20°, scale 0.75–1.25; nyud: scale 1.0/1.2/1.5).</summary>
        public string? AugmentationDraws;
        public int SyntheticTrain = 96, SyntheticVal = 24;
        public int? Threads;
        public string? CacheDir;
        public bool Json;
        public string Protocol = "reference", Keep = "last";
        public int AccumulationSteps = 1;
        public string Augmentation = "single-pass", NonFiniteLoss = "stop";
    }

    /// <summary>The small Swin of the synthetic main job: 0.6 M parameters, fast enough for 2 CPU cores.</summary>
    internal static MtLoraNetworkOptions SmallNetwork() => new()
    {
        EmbedDim = 24,
        Depths = [2, 2, 2, 2],
        NumHeads = [1, 2, 4, 8],
        WindowSize = 4,
        ImageSize = 128,
        SharedRank = 8,
        TaskRank = 4,
        LoraDropout = 0,
        DecoderChannels = [16, 16, 32, 32],
        DropPathRate = 0,
    };

    public static Command Create()
    {
        var cmd = new Command("train",
            "Train an MTLoRA multi-task model, evaluate it on the validation split and save it as model.zip. Without --data: " +
            "a small Swin on a generated synthetic PASCAL-Context (--dataset nyud: NYUD-v2), compared with the untrained network (a few minutes on a CPU).");
        var data = new Option<string>("--data") { Description = "PASCAL_MT root (JPEGImages/, ImageSets/, semseg/, ...), or with --dataset nyud a NYUD_MT root (images/, gt_sets/, ...). Default: the built-in synthetic PASCAL-Context or NYUD-v2 (generated once into ~/.cache/mtlora)." };
        var dataset = NyudCommands.DatasetOption();
        dataset.Description = "The dataset: pascal (PASCAL-Context, PASCAL_MT layout; the default) or nyud (NYUD-v2, NYUD_MT layout: tasks semseg (40 classes), depth, normals, edge; the reference's NYUD augmentation draws).";
        var output = new Option<string>("--out") { Description = "Where to save the trained model (ML.NET model.zip).", Required = true };
        var tasks = new Option<string>("--tasks") { Description = "Tasks to learn, comma-separated: semseg,human_parts,sal,normals; with --dataset nyud semseg,depth,normals,edge (default: all four, or those of --config)." };
        var mode = new Option<string>("--mode") { Description = "What trains: mtlora (default), mtlora_plus, full_finetune, decoders_only, task_agnostic_only." };
        var config = new Option<string>("--config") { Description = "Network options as JSON (snake_case keys as the reference: embed_dim, depths, num_heads, window_size, img_size, shared_rank, ...)." };
        var sharedRank = new Option<int?>("--shared-rank") { Description = "Rank of the task-agnostic (shared) LoRA. Default 64 (synthetic: 8)." };
        var taskRank = new Option<int?>("--task-rank") { Description = "Rank of the task-specific LoRA. Default 4." };
        var imageSize = new Option<int?>("--image-size") { Description = "Network input size in pixels (square). Default 448 (synthetic: 128)." };
        var epochs = new Option<int?>("--epochs") { Description = "Training epochs. Default 300 (synthetic: 20)." };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop after this many optimizer steps (the schedule still spans --epochs)." };
        var batch = new Option<int?>("--batch-size") { Description = "Images per step. Default 32 (synthetic: 8)." };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate. Default: the reference's 5e-4 x batch / 512 (synthetic: 2e-3)." };
        var warmup = new Option<int?>("--warmup-epochs") { Description = "Epochs of linear warmup. Default 20, capped at epochs - 1 (synthetic: 1)." };
        var backbone = new Option<string>("--backbone") { Description = "Microsoft Swin ImageNet checkpoint to start from (e.g. swin_tiny_patch4_window7_224.pth, or .safetensors)." };
        var backbonePreset = new Option<string>("--backbone-preset") { Description = "Swin backbone preset (e.g. swin_base_patch4_window7_224_22k): its embed_dim, depths and num_heads. Default: the preset a --backbone file is named after." };
        var init = new Option<string>("--init-checkpoint") { Description = "A reference MTLoRA checkpoint (.pth or .safetensors) to start from, loaded whole." };
        var device = new Option<string>("--device") { Description = "cpu, cuda, cuda:N or auto.", DefaultValueFactory = _ => "auto" };
        var fallback = new Option<bool>("--fallback-to-cpu") { Description = "Use the CPU when CUDA is asked for but missing (true by default; --fallback-to-cpu false to fail instead).", DefaultValueFactory = _ => true };
        var bf16 = new Option<bool>("--bf16") { Description = "Train in bfloat16 with float32 master weights (CUDA only)." };
        var seed = new Option<int>("--seed") { Description = "Random seed (initialisation, shuffling, augmentation, synthetic data).", DefaultValueFactory = _ => 0 };
        var checkpointDir = new Option<string>("--checkpoint-dir") { Description = "Folder for resumable training checkpoints." };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Write a checkpoint every N steps (needs --checkpoint-dir; 0: only when cancelled with Ctrl+C)." };
        var resume = new Option<string>("--resume") { Description = "A checkpoint folder of an earlier run to continue from." };
        var valEvery = new Option<int>("--val-every") { Description = "Evaluate the validation split every N epochs during training, and at the end (0: only at the end). Default 5, the reference's EVAL_FREQ.", DefaultValueFactory = _ => 5 };
        var protocol = new Option<string>("--protocol") { Description = "How the validation split is scored: reference (default; the paper's and the Δm baselines' protocol) or native (each image at its own size).", DefaultValueFactory = _ => "reference" };
        var keep = new Option<string>("--keep") { Description = "Which weights to save: last (default) or best (the best validation by Δm; needs the validation split).", DefaultValueFactory = _ => "last" };
        var accumulation = new Option<int>("--accumulation-steps") { Description = "Micro-batches per optimizer step (the reference's ACCUMULATION_STEPS): the batch is split into this many equal parts, each run forward and backward on its own, so a large batch fits in less memory. Must divide --batch. Default 1.", DefaultValueFactory = _ => 1 };
        var draws = new Option<string>("--augmentation-draws") { Description = "How the augmentation draws rotation and scale: pascal (rotation uniform ±20°, scale uniform 0.75..1.25), nyud (no rotation, scale 1.0, 1.2 or 1.5), or rotation=MIN..MAX|A|B..,scale=MIN..MAX|A|B.. (a range is uniform, a list picks one entry). Default: the --dataset's (the reference's)." };
        var augmentation = new Option<string>("--augmentation") { Description = "Training augmentation geometry: single-pass (default; flip, rotation, scale and resize as one warp) or reference-two-step (the reference's warp at the original size, then resize).", DefaultValueFactory = _ => "single-pass" };
        var nonFinite = new Option<string>("--nonfinite-loss") { Description = "What a non-finite loss does: stop (default; the last good checkpoint is kept) or skip-step (the step is skipped and counted, as the reference's fp16 GradScaler does).", DefaultValueFactory = _ => "stop" };
        var logDir = new Option<string>("--log-dir") { Description = "Folder for training_log.csv and training_curves.html. Default: <out>.logs next to the model." };
        var baselines = new Option<string>("--baselines") { Description = "Single-task baselines for delta_m with --data: 'paper' (the default for pascal), 'none' (the default for nyud: the paper gives no NYUD-v2 single-task numbers) or task=value pairs (e.g. semseg=37.18,depth=0.75: mIoU and edge_f@0.5 in percent, normals mean angle in degrees, depth RMSE in metres)." };
        var synTrain = new Option<int>("--synthetic-train") { Description = "Without --data: synthetic training images.", DefaultValueFactory = _ => 96 };
        var synVal = new Option<int>("--synthetic-val") { Description = "Without --data: synthetic validation images.", DefaultValueFactory = _ => 24 };
        var cacheDir = new Option<string>("--cache-dir") { Description = "Without --data: where the synthetic data set is generated once and reused. Default $XDG_CACHE_HOME/mtlora, else ~/.cache/mtlora." };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch. Default: libtorch's choice (all cores)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object on stdout (what was trained, metrics before/after) instead of the text report." };
        foreach (var o in new Option[] { data, dataset, output, tasks, mode, config, sharedRank, taskRank, imageSize, epochs, maxSteps, batch, lr, warmup, backbone, backbonePreset, init,
                     device, fallback, bf16, seed, checkpointDir, checkpointEvery, resume, valEvery, protocol, keep, accumulation, augmentation, draws, nonFinite, logDir, baselines, synTrain, synVal, cacheDir, threads, json })
            cmd.Options.Add(o);
        cmd.SetAction((parseResult, cancellationToken) =>
        {
            var s = new Settings
            {
                Data = parseResult.GetValue(data), Out = parseResult.GetValue(output)!, Tasks = parseResult.GetValue(tasks),
                Mode = parseResult.GetValue(mode), Config = parseResult.GetValue(config), SharedRank = parseResult.GetValue(sharedRank),
                TaskRank = parseResult.GetValue(taskRank), ImageSize = parseResult.GetValue(imageSize), Epochs = parseResult.GetValue(epochs),
                MaxSteps = parseResult.GetValue(maxSteps), BatchSize = parseResult.GetValue(batch), LearningRate = parseResult.GetValue(lr),
                Warmup = parseResult.GetValue(warmup), Backbone = parseResult.GetValue(backbone), InitCheckpoint = parseResult.GetValue(init),
                BackbonePreset = parseResult.GetValue(backbonePreset),
                Device = parseResult.GetValue(device)!, FallbackToCpu = parseResult.GetValue(fallback), BFloat16 = parseResult.GetValue(bf16),
                Seed = parseResult.GetValue(seed), CheckpointDir = parseResult.GetValue(checkpointDir), CheckpointEvery = parseResult.GetValue(checkpointEvery),
                Resume = parseResult.GetValue(resume), ValEvery = parseResult.GetValue(valEvery), LogDir = parseResult.GetValue(logDir),
                Baselines = parseResult.GetValue(baselines), Dataset = parseResult.GetValue(dataset)!, AugmentationDraws = parseResult.GetValue(draws), SyntheticTrain = parseResult.GetValue(synTrain), SyntheticVal = parseResult.GetValue(synVal),
                Threads = parseResult.GetValue(threads), CacheDir = parseResult.GetValue(cacheDir), Json = parseResult.GetValue(json),
                Protocol = parseResult.GetValue(protocol)!, Keep = parseResult.GetValue(keep)!,
                AccumulationSteps = parseResult.GetValue(accumulation), Augmentation = parseResult.GetValue(augmentation)!, NonFiniteLoss = parseResult.GetValue(nonFinite)!,
            };
            return Task.FromResult(Run(s, parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error, cancellationToken));
        });
        return cmd;
    }

    /// <summary>Runs the verb: 0 on success, 2 on a user error (one line on <paramref name="stderr"/>).</summary>
    internal static int Run(Settings s, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default) =>
        CliCommon.Guard("train", stderr, () => Train(s, stdout, stderr, cancellationToken));

    private static int Train(Settings s, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var ci = CultureInfo.InvariantCulture;
        var wall = Stopwatch.StartNew();
        var cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
        if (string.IsNullOrWhiteSpace(s.Out)) throw new CliCommon.UsageException("give --out <model.zip>.");
        // Every output is checked before anything is trained: a trained model must never be lost to a path that cannot be written.
        var outPath = OutputPaths.CheckFile("--out", s.Out);
        var logDir = OutputPaths.CheckFolder(s.LogDir is null ? "--log-dir (default: <out>.logs)" : "--log-dir", s.LogDir ?? outPath + ".logs");
        if (s.CheckpointDir is not null) OutputPaths.CheckFolder("--checkpoint-dir", s.CheckpointDir);
        OutputPaths.RemoveStaleTemporaries(Path.GetDirectoryName(outPath)!, Path.GetFileName(outPath));
        OutputPaths.RemoveStaleTemporaries(logDir, "training_*");
        if (s.Backbone is not null && s.InitCheckpoint is not null)
            throw new CliCommon.UsageException("give --backbone (an ImageNet Swin) or --init-checkpoint (an MTLoRA checkpoint), not both.");
        var weightsPath = s.Backbone ?? s.InitCheckpoint;
        if (weightsPath is not null && !File.Exists(weightsPath))
            throw new CliCommon.UsageException($"{(s.Backbone is not null ? "--backbone" : "--init-checkpoint")}: file '{weightsPath}' does not exist.");
        bool nyud = s.Dataset?.Trim().ToLowerInvariant() switch
        {
            null or "pascal" => false,
            "nyud" => true,
            _ => throw new CliCommon.UsageException($"--dataset: unknown dataset '{s.Dataset}'; expected pascal or nyud."),
        };
        if (s.Data is not null && !Directory.Exists(s.Data))
            throw new CliCommon.UsageException($"--data: folder '{s.Data}' does not exist (expected a {(nyud ? "NYUD_MT root with images/ and gt_sets/" : "PASCAL_MT root with JPEGImages/ and ImageSets/")}).");
        TrainOptionChecks.Threads(s.Threads);
        if (s.ValEvery < 0) throw new CliCommon.UsageException($"--val-every is {s.ValEvery}; it must be 0 (validate only at the end) or more.");
        var baselines = nyud ? NyudCommands.ParseBaselines(s.Baselines, "--baselines") : ParseBaselines(s.Baselines ?? "paper");
        var augmentationDraws = s.AugmentationDraws is null ? (nyud ? AugmentationDraws.Nyud : AugmentationDraws.PascalContext) : ParseDraws(s.AugmentationDraws);
        var protocol = CliCommon.ParseProtocol(s.Protocol);
        var keep = s.Keep?.Trim().ToLowerInvariant() switch
        {
            "last" => MtLoraKeep.Last,
            "best" => MtLoraKeep.Best,
            _ => throw new CliCommon.UsageException($"--keep: unknown value '{s.Keep}'; expected last (the weights after the last step) or best (those of the best validation)."),
        };
        var geometry = s.Augmentation?.Trim().ToLowerInvariant() switch
        {
            "single-pass" => AugmentationGeometry.SinglePass,
            "reference-two-step" => AugmentationGeometry.ReferenceTwoStep,
            _ => throw new CliCommon.UsageException($"--augmentation: unknown value '{s.Augmentation}'; expected single-pass or reference-two-step."),
        };
        var nonFiniteLoss = s.NonFiniteLoss?.Trim().ToLowerInvariant() switch
        {
            "stop" => NonFiniteLossPolicy.Stop,
            "skip-step" => NonFiniteLossPolicy.SkipStep,
            _ => throw new CliCommon.UsageException($"--nonfinite-loss: unknown value '{s.NonFiniteLoss}'; expected stop or skip-step."),
        };
        bool synthetic = s.Data is null;
        var preset = BackbonePresetConfig.Resolve(s.BackbonePreset, s.Backbone, s.Config);
        bool small = synthetic && weightsPath is null && s.Config is null && preset is null;

        // Network options: the config file, else the small synthetic Swin or the paper's Swin-T; the backbone preset's Swin;
        // then the command-line overrides.
        var network = s.Config is not null ? LoadConfig(s.Config) : small ? SmallNetwork() : new MtLoraNetworkOptions();
        if (preset is not null) network = BackbonePresetConfig.Apply(preset, network, s.Config);
        if (nyud) network.Tasks = s.Tasks is not null ? NyudCommands.ParseTasks(s.Tasks, "--tasks") : NyudCommands.TasksOf(network.Tasks, s.Config);
        else if (s.Tasks is not null) network.Tasks = CliCommon.ParseTasks(s.Tasks, "--tasks").Select(t => t.ToDescriptor()).ToArray();
        if (s.Mode is not null) ApplyMode(network, s.Mode);
        if (s.SharedRank is { } sr) (network.SharedRank, network.SharedRankPerStage) = (sr, null);
        if (s.TaskRank is { } tr) (network.TaskRank, network.TaskRankPerStage, network.TaskRankPerTask) = (tr, null, null);
        if (s.ImageSize is { } size) network.ImageSize = size;
        try { network.Validate(); }
        catch (ArgumentException e) { throw TrainOptionChecks.NetworkError(e, s); }
        // The best validation is the one with the best Δm: without a baseline for a trained task every validation scores null
        // and the last weights would be kept under the name "best".
        if (keep == MtLoraKeep.Best && !network.Tasks.Any(t => baselines.TryGetValue(t, out _)))
            throw new CliCommon.UsageException($"--keep best keeps the validation with the best delta_m, which needs a single-task baseline for at least one trained task " +
                $"({string.Join(", ", network.Tasks.Select(t => t.Name))}); give --baselines task=value pairs (e.g. {network.Tasks[0].Name}=<value>), or --keep last.");

        // Training options, checked before any data is read or generated; the data-dependent ones are set below.
        int epochsValue = s.Epochs ?? (small ? 20 : 300);
        var options = new MtLoraOptions
        {
            Network = network,
            PretrainedWeightsPath = weightsPath,
            Epochs = epochsValue,
            MaxSteps = s.MaxSteps,
            BatchSize = s.BatchSize ?? (small ? 8 : 32),
            LearningRate = s.LearningRate ?? (small ? 2e-3 : null),
            WarmupEpochs = Math.Min(s.Warmup ?? (small ? 1 : 20), epochsValue - 1),
            Device = s.Device,
            FallbackToCpu = s.FallbackToCpu,
            UseBFloat16 = s.BFloat16,
            AccumulationSteps = s.AccumulationSteps,
            AugmentationGeometry = geometry,
            AugmentationDraws = augmentationDraws,
            NonFiniteLoss = nonFiniteLoss,
            Seed = s.Seed,
            CheckpointDirectory = s.CheckpointDir,
            CheckpointEverySteps = s.CheckpointEvery,
            ResumeFrom = s.Resume,
            ProgressEverySteps = 1,
            OptionName = ResumeOptionName,
        };
        try { options.Validate(); }
        catch (ArgumentException e) { throw TrainOptionChecks.OptionsError(e); }
        if (s.Resume is not null) RefuseOtherRun(s.Resume, options);

        TorchRuntime.Initialize();
        var device = TorchRuntime.ResolveDevice(options.Device, options.FallbackToCpu);
        // Before any data is generated or the untrained model evaluated (the trainer checks it again).
        if (options.UseBFloat16 && device.type != DeviceType.CUDA)
            throw new CliCommon.UsageException($"--bf16 needs a CUDA device; the device is {device}. bfloat16 kernels on the CPU are slower than float32, so train in float32 there (leave out --bf16).");
        ParameterCounts counts;
        using (var meta = new MultiTaskSwin(network, torch.META)) counts = meta.CountParameters();
        TrainOptionChecks.MemoryFits(network, counts, options.BatchSize, device.type == DeviceType.CPU);
        CheckOutputSpace(outPath, logDir, s.CheckpointDir, counts);
        if (s.Threads is { } n) torch.set_num_threads(n);

        // Data.
        string root = s.Data ?? EnsureSynthetic(s, stderr, nyud);
        var ml = new MLContext(seed: s.Seed);
        IDataView train = nyud ? ml.Data.LoadNyud(root, "train") : ml.Data.LoadPascalContext(root, "train", network.Tasks.Select(t => t.ToPascalTask()));
        IDataView val = nyud ? ml.Data.LoadNyud(root, "val") : ml.Data.LoadPascalContext(root, "val", network.Tasks.Select(t => t.ToPascalTask()));
        long trainCount = train.GetRowCount() ?? 0, valCount = val.GetRowCount() ?? 0;
        TrainOptionChecks.BatchFitsData(options.BatchSize, trainCount);
        if (keep == MtLoraKeep.Best && valCount == 0)
            throw new CliCommon.UsageException($"--keep best needs a validation set, but the val split of '{root}' has no image; give validation images or --keep last.");
        options.ValidationEveryEpochs = s.ValEvery;
        options.ValidationProtocol = protocol;
        options.ValidationBaselines = baselines;                               // Δm picks the best validation (--keep best)
        options.Keep = keep;
        if (valCount > 0)
        {
            options.ValidationSet = val;
            options.ValidationProgress = new InlineProgress<MtLoraValidationReport>(r =>
                stderr.WriteLine(string.Create(ci, $"validation after epoch {r.Epoch} (step {r.Step}, {r.Metrics.Protocol?.Name()} protocol): {Summary(r.Metrics)}")));
        }
        try { options.Validate(); }
        catch (ArgumentException e) { throw TrainOptionChecks.OptionsError(e); }

        // The untrained network (same seed, hence the same initialisation as Fit's) on the validation split.
        MultiTaskMetrics? before = null;
        if (small)
        {
            using var untrained = Untrained(ml, network, s.Seed);
            before = Evaluate(ml, untrained, val, valCount, SingleTaskBaselines.None, stderr, "evaluating the untrained model", protocol);
        }

        // Training, with a progress bar and the training log (one row per step, continued on --resume).
        long stepsPerEpoch = Math.Max(1, trainCount / options.BatchSize);
        long plannedSteps = Math.Min(stepsPerEpoch * options.Epochs, options.MaxSteps ?? long.MaxValue);
        using var stop = StopSignals.Listen(stderr, "train", s.CheckpointDir is null ? "the current step" : "the current step and a checkpoint", cancellationToken);
        options.CancellationToken = stop.Token;
        using var log = new TrainingLogFile(logDir, network.Tasks.Select(t => t.ReferenceName()), continueEarlier: s.Resume is not null, stderr);
        void OnLog(object? sender, LoggingEventArgs e)
        {
            if (e.Kind == ChannelMessageKind.Warning) stderr.WriteLine($"mtlora train: warning: {e.RawMessage}");
        }
        var trainWatch = Stopwatch.StartNew();
        MtLoraTransformer model;
        ml.Log += OnLog;
        try
        {
            model = CliCommon.WithProgress(stderr, "training", plannedSteps, report =>
            {
                options.Progress = new InlineProgress<TrainingProgress>(p =>
                {
                    log.Add(new TrainingCurvePoint(p.Step, p.Epoch, p.TaskLosses, p.TotalLoss, p.LearningRate));
                    report(p.Step, string.Create(ci, $"epoch {p.Epoch + 1}/{options.Epochs} loss {p.TotalLoss:0.000} lr {p.LearningRate:0.0e0}"));
                });
                return ml.MultiTask().Trainers.MtLora(options).Fit(train);
            });
        }
        catch (OperationCanceledException) when (stop.Token.IsCancellationRequested)
        {
            FinishLog(log, stderr);
            stderr.WriteLine($"mtlora train: {stop.Cause} after step {log.LastStep ?? 0}; {ResumeHint(s.CheckpointDir)}.");
            return stop.ExitCode;
        }
        catch (NonFiniteLossException e) when (log.StepsThisRun == 0 && (weightsPath ?? s.Resume) is { } start)
        {
            // At the first step of a run that starts from a file, damaged weights are the likely cause, not the labels.
            FinishLog(log, stderr);
            throw new CliCommon.UsageException($"{e.Message} The run starts from '{start}': at its first step, NaN, infinite or extreme values " +
                "in that file are the likely cause (check it, e.g. with 'mtlora convert', or start from another checkpoint).");
        }
        catch (PascalSampleException e)
        {
            // A damaged sample met mid-run: the trainer wrote a checkpoint of the steps done (with --checkpoint-dir).
            FinishLog(log, stderr);
            throw new CliCommon.UsageException(log.StepsThisRun == 0
                ? $"{e.Message} Training stopped before its first step."
                : $"{e.Message} Training stopped after step {log.LastStep}; {ResumeHint(s.CheckpointDir)}.");
        }
        catch
        {
            FinishLog(log, stderr);
            throw;
        }
        finally
        {
            ml.Log -= OnLog;
        }
        trainWatch.Stop();
        using (model)
        {
            // The model first: nothing written after it (evaluation, log, curves) can cost it.
            // Saved for image files (LoadImages from ImagePath, then the model), so model.zip describes its own input.
            var (forFiles, fileSchema) = ml.MultiTask().WithImageFileInput(model);
            var saved = SaveModel(ml, forFiles, fileSchema, outPath, s.CheckpointDir, out var saveProblem);
            var afterBaselines = before is null ? baselines : SingleTaskBaselines.None;
            MultiTaskMetrics after;
            if (ScoredByFit(model.TrainingReport, options, afterBaselines) is { } scored)
            {
                stderr.WriteLine(string.Create(ci, $"the trained model's metrics are those of the validation after epoch {scored.Epoch} (step {scored.Step}), which scored these weights"));
                after = scored.Metrics;
            }
            else after = Evaluate(ml, model, val, valCount, afterBaselines, stderr, "evaluating the trained model", protocol);
            if (train is PascalContextDataView pascalTrain) CliCommon.WriteLabelNotes(pascalTrain, stderr);
            if (val is PascalContextDataView pascalVal) CliCommon.WriteLabelNotes(pascalVal, stderr);
            var logProblem = log.Finish();

            var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuAtStart;
            var result = new TrainResult(network, counts, root, synthetic, trainCount, valCount, log.LastStep ?? 0, options, device.ToString(), weightsPath,
                before, after, trainWatch.Elapsed, wall.Elapsed, cpu, saved, logDir) { Report = model.TrainingReport, Nyud = nyud };
            if (s.Json) CliCommon.WriteJson(result.ToJson(), stdout);
            else stdout.Write(result.ToText());
            // Exit 1: trained and saved, but an output is not where it was asked for.
            if (saveProblem is not null) stderr.WriteLine($"mtlora train: error: {saveProblem}");
            if (logProblem is not null) stderr.WriteLine($"mtlora train: error: {logProblem}; the model was saved to '{saved}'.");
            return saveProblem is null && logProblem is null ? 0 : 1;
        }
    }

    /// <summary>
    /// The validation during <c>Fit</c> that scored exactly the returned weights with the same baselines and protocol, so the
    /// report need not score the validation split a second time; null when there is none: no validation, other baselines
    /// (the synthetic job reports without Δm), the last validation before the last step, or with <see cref="MtLoraKeep.Best"/>
    /// a run that kept no best (then the returned weights are not known to be a validated state).
    /// </summary>
    internal static MtLoraValidationReport? ScoredByFit(MtLoraTrainingReport? report, MtLoraOptions options, SingleTaskBaselines baselines)
    {
        if (report is null || !ReferenceEquals(baselines, options.ValidationBaselines)) return null;
        var validation = options.Keep == MtLoraKeep.Best
            ? (report.Kept == MtLoraKeep.Best ? report.Best : null)     // the weights of the best validation, maybe an earlier epoch's
            : report.Last is { } last && last.Step == report.Steps ? last : null;
        return validation?.Metrics.Protocol == options.ValidationProtocol ? validation : null;
    }

    /// <summary>The command-line option that sets an <see cref="MtLoraOptions"/> member named in a resume's messages (null: none does).</summary>
    private static string? ResumeOptionName(string member) => member switch
    {
        "Network.Tasks" => "--tasks",
        "Network.ImageSize" => "--image-size",
        "BatchSize" => "--batch-size",
        "Seed" => "--seed",
        "AugmentationDraws" => "--augmentation-draws",
        "AugmentationGeometry" => "--augmentation",
        "AccumulationSteps" => "--accumulation-steps",
        _ => null,
    };

    /// <summary>
    /// --resume with settings that would not continue the checkpoint's run (tasks, image size, batch size, seed, draws) is
    /// refused before any data is read or generated; <c>Fit</c> compares again and warns about the legitimate changes.
    /// </summary>
    private static void RefuseOtherRun(string resume, MtLoraOptions options)
    {
        var folder = TrainingCheckpoint.Resolve(resume);
        var recorded = TrainingCheckpoint.ReadSettings(folder);
        if (recorded is null) return;                                         // an earlier version's checkpoint: Fit notes it
        var (refusal, _) = RunSettings.Compare(folder, recorded, RunSettings.Of(options, options.Seed ?? 0, ResumeOptionName));
        if (refusal is not null) throw new CliCommon.UsageException(refusal);
    }

    /// <summary>How to continue a stopped run: the checkpoint the run left, verified, or why there is none.</summary>
    private static string ResumeHint(string? checkpointDir)
    {
        if (checkpointDir is null) return "nothing to resume from (give --checkpoint-dir to keep checkpoints)";
        var folders = TrainingCheckpoint.List(checkpointDir);
        if (folders.Count == 0) return $"no checkpoint could be written to '{checkpointDir}'";
        try
        {
            long step = TrainingCheckpoint.ReadManifest(folders[^1]).GlobalStep;
            return $"the checkpoint of step {step} is in '{folders[^1]}': continue with --resume '{checkpointDir}'";
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return $"the last checkpoint in '{checkpointDir}' is damaged ({e.Message})";
        }
    }

    private static void FinishLog(TrainingLogFile log, TextWriter stderr)
    {
        if (log.Finish() is { } problem) stderr.WriteLine($"mtlora train: warning: {problem}.");
    }

    /// <summary>
    /// Saves the model to --out atomically; when that fails (full disk, a folder that went away), to a file in the temporary
    /// folder instead, so the trained model is not lost. Returns where it was saved, with <paramref name="problem"/> set
    /// when that is not --out.
    /// </summary>
    private static string SaveModel(MLContext ml, ITransformer model, DataViewSchema schema, string outPath, string? checkpointDir, out string? problem)
    {
        problem = null;
        if (OutputPaths.TryWrite(outPath, stream => ml.Model.Save(model, schema, stream)) is not { } cause) return outPath;
        var fallback = Path.Combine(Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture,
            $"mtlora-model-{DateTime.Now:yyyyMMdd-HHmmss}-{Environment.ProcessId}.zip"));
        if (OutputPaths.TryWrite(fallback, stream => ml.Model.Save(model, schema, stream)) is not { } fallbackCause)
        {
            problem = $"cannot write '{outPath}' ({cause}); the trained model was saved to '{fallback}' instead.";
            return fallback;
        }
        throw new CliCommon.UsageException($"cannot write '{outPath}' ({cause}), nor '{fallback}' ({fallbackCause}): the trained model could not be saved; " +
            (checkpointDir is null ? "nothing of it is kept." : $"{ResumeHint(checkpointDir)}, which saves it without training further."));
    }

    /// <summary>Refuses a run whose outputs clearly do not fit on their disks: the model, a checkpoint, the log and curves.</summary>
    private static void CheckOutputSpace(string outPath, string logDir, string? checkpointDir, ParameterCounts counts)
    {
        long model = counts.Total * sizeof(float) * 9 / 10; // float32 weights; the zip saves about 8 % on them
        OutputPaths.CheckFreeSpace("--out", Path.GetDirectoryName(outPath)!, model, "the model");
        if (checkpointDir is not null)
            OutputPaths.CheckFreeSpace("--checkpoint-dir", checkpointDir, (counts.Total + 2 * counts.Trainable) * sizeof(float), "a checkpoint (weights and AdamW moments)");
        OutputPaths.CheckFreeSpace("--log-dir", logDir, CurvesBytes, "the training curves");
    }

    /// <summary>The size of training_curves.html without its points: plotly.js is inlined (about 3.6 MB).</summary>
    private const long CurvesBytes = 3_600_000;

    private static SingleTaskBaselines ParseBaselines(string text)
    {
        try { return SingleTaskBaselines.Parse(text); }
        catch (FormatException e) { throw new CliCommon.UsageException($"--baselines: {e.Message}"); }
    }

    private static AugmentationDraws ParseDraws(string text)
    {
        try { return AugmentationDraws.Parse(text); }
        catch (FormatException e) { throw new CliCommon.UsageException($"--augmentation-draws: {e.Message}"); }
    }

    private static MtLoraNetworkOptions LoadConfig(string path)
    {
        if (!File.Exists(path)) throw new CliCommon.UsageException($"--config: file '{path}' does not exist.");
        try { return MtLoraNetworkOptions.Load(path); }
        catch (Exception e) when (e is FormatException or ArgumentException or System.Text.Json.JsonException)
        {
            throw new CliCommon.UsageException($"--config '{path}': {e.Message}");
        }
    }

    private static void ApplyMode(MtLoraNetworkOptions network, string mode)
    {
        switch (mode.Trim().ToLowerInvariant())
        {
            case "mtlora": network.Mode = NetworkMode.MtLora; network.MtLoraPlus = false; break;
            case "mtlora_plus" or "mtlora+": network.Mode = NetworkMode.MtLora; network.MtLoraPlus = true; break;
            case "full_finetune": network.Mode = NetworkMode.FullFineTune; break;
            case "decoders_only": network.Mode = NetworkMode.DecodersOnly; break;
            case "task_agnostic_only": network.Mode = NetworkMode.TaskAgnosticOnly; break;
            default: throw new CliCommon.UsageException($"--mode: '{mode}' is not a mode; expected mtlora, mtlora_plus, full_finetune, decoders_only or task_agnostic_only.");
        }
    }

    /// <summary>
    /// The synthetic PASCAL-Context (or, with <paramref name="nyud"/>, NYUD-v2) of the main job, generated once into the cache
    /// (written to a temp folder, then moved).
    /// </summary>
    internal static string EnsureSynthetic(Settings s, TextWriter stderr, bool nyud = false)
    {
        if (s.SyntheticTrain < 1 || s.SyntheticVal < 1)
            throw new CliCommon.UsageException($"--synthetic-train and --synthetic-val must be at least 1 (got {s.SyntheticTrain} and {s.SyntheticVal}).");
        var options = new SyntheticPascalOptions { TrainCount = s.SyntheticTrain, ValCount = s.SyntheticVal, Width = 160, Height = 120, Seed = s.Seed };
        var nyudOptions = new SyntheticNyudOptions { TrainCount = s.SyntheticTrain, ValCount = s.SyntheticVal, Width = 160, Height = 120, Seed = s.Seed };
        try
        {
            if (nyud) nyudOptions.Validate();
            else options.Validate();
        }
        catch (ArgumentException e) { throw new CliCommon.UsageException($"--synthetic-train/--synthetic-val: {TrainOptionChecks.MessageOf(e)}"); }
        var cache = s.CacheDir ?? Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "mtlora");
        var dir = Path.Combine(cache, string.Create(CultureInfo.InvariantCulture,
            $"synthetic-{(nyud ? "nyud-" : "")}{options.TrainCount}-{options.ValCount}-{options.Width}x{options.Height}-seed{options.Seed}"));
        const string marker = ".complete";
        if (File.Exists(Path.Combine(dir, marker))) return dir;
        OutputPaths.CheckFolder("--cache-dir", cache);
        if (nyud) SyntheticDataSets.CheckFreeSpace("--cache-dir", cache, nyudOptions);
        else SyntheticDataSets.CheckFreeSpace("--cache-dir", cache, options);
        void Complete(string tmp) => File.WriteAllText(Path.Combine(tmp, marker), "");
        // An incomplete earlier attempt is replaced; a set that another run completed meanwhile is kept.
        bool Replace() => !File.Exists(Path.Combine(dir, marker));
        CliCommon.WithStatus(stderr, $"generating the synthetic {(nyud ? "NYUD-v2" : "PASCAL-Context")} ({options.TrainCount} + {options.ValCount} images) into {dir}", () => nyud
            ? SyntheticDataSets.Generate(dir, tmp => SyntheticNyud.Generate(tmp, nyudOptions), Complete, Replace).Root
            : SyntheticDataSets.Generate(dir, options, Complete, Replace).Root);
        return dir;
    }

    /// <summary>The network as Fit initialises it (torch seed, then construction), as a transformer.</summary>
    private static MtLoraTransformer Untrained(MLContext ml, MtLoraNetworkOptions network, int seed)
    {
        var tmp = Path.Combine(Path.GetTempPath(), $"mtlora-untrained-{Environment.ProcessId}-{Guid.NewGuid():N}.safetensors");
        try
        {
            torch.manual_seed(seed);
            using (var net = new MultiTaskSwin(network))
            using (torch.no_grad())
                SafeTensors.Save(tmp, net.state_dict());
            return MtLoraTransformer.LoadFromCheckpoint(ml, network, tmp);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static MultiTaskMetrics Evaluate(MLContext ml, ITransformer model, IDataView data, long rows, SingleTaskBaselines baselines, TextWriter stderr, string what,
        EvaluationProtocol protocol) =>
        CliCommon.EvaluateWithProgress(ml, model, data, baselines, stderr, $"{what} ({rows} validation images, {protocol.Name()} protocol)", protocol);

    private static string Summary(MultiTaskMetrics m) =>
        string.Join(", ", m.Tasks.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.ReferenceName()} {MainMetric(m, t)}")));

    /// <summary>A task's main metric (<see cref="MultiTaskMetrics.GetPaperMetric"/>) as printed: degrees for normals, four decimals for a depth RMSE.</summary>
    internal static string MainMetric(MultiTaskMetrics m, DenseTaskDescriptor t) => t.Kind switch
    {
        DenseTaskKind.SurfaceNormals => string.Create(CultureInfo.InvariantCulture, $"{m.GetPaperMetric(t):0.00}°"),
        DenseTaskKind.Depth => string.Create(CultureInfo.InvariantCulture, $"{m.GetPaperMetric(t):0.0000}"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{m.GetPaperMetric(t):0.00}"),
    };

    /// <summary>What <see cref="MainMetric"/> is, from the task's <see cref="DenseTaskDescriptor.MetricName"/>.</summary>
    internal static string MetricName(DenseTaskDescriptor t) => t.Kind switch
    {
        DenseTaskKind.SurfaceNormals => "mean angle error (lower is better)",
        DenseTaskKind.Depth => "RMSE (lower is better)",
        _ when t.MetricName == "edge_f@0.5" => "edge_f@0.5 % (not ODS-F)",
        _ => "mIoU %",
    };

    /// <summary>
    /// The adapter ranks as configured: one number when every stage (and task) has the same, else the four stages'
    /// (e.g. <c>shared rank 8-16-32-64</c>) and, when the tasks differ, each task's.
    /// </summary>
    internal static string Ranks(MtLoraNetworkOptions network)
    {
        string Stages(Func<int, int> rank)
        {
            var ranks = Enumerable.Range(0, network.Depths.Count).Select(rank).ToArray();
            return ranks.Distinct().Count() == 1 ? ranks[0].ToString(CultureInfo.InvariantCulture) : string.Join("-", ranks);
        }
        var perTask = network.Tasks.Select(t => (t.Name, Ranks: Stages(i => network.TaskRankAt(i, t)))).ToArray();
        string task = perTask.Select(p => p.Ranks).Distinct().Count() <= 1
            ? perTask.FirstOrDefault().Ranks ?? network.TaskRank.ToString(CultureInfo.InvariantCulture)
            : string.Join(", ", perTask.Select(p => $"{p.Name} {p.Ranks}"));
        return $"shared rank {Stages(network.SharedRankAt)}, task rank {task}";
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class InlineProgress<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }

    /// <summary>What a training run did and how well, as text and JSON.</summary>
    private sealed record TrainResult(MtLoraNetworkOptions Network, ParameterCounts Counts, string Root, bool Synthetic, long TrainCount, long ValCount,
        long Steps, MtLoraOptions Options, string Device, string? Weights, MultiTaskMetrics? Before, MultiTaskMetrics After,
        TimeSpan TrainTime, TimeSpan WallTime, TimeSpan CpuTime, string Model, string LogDir)
    {
        private string ModeName => Network.Mode switch
        {
            NetworkMode.MtLora when Network.MtLoraPlus => "mtlora_plus",
            NetworkMode.MtLora => "mtlora",
            NetworkMode.FullFineTune => "full_finetune",
            NetworkMode.DecodersOnly => "decoders_only",
            NetworkMode.TaskAgnosticOnly => "task_agnostic_only",
            _ => Network.Mode.ToString(),
        };

        /// <summary>The run's validations (best and last), kept weights and skipped steps.</summary>
        public MtLoraTrainingReport? Report { get; init; }

        /// <summary>Whether the data is NYUD-v2 (else PASCAL-Context).</summary>
        public bool Nyud { get; init; }

        private string DatasetName => Nyud ? "NYUD-v2" : "PASCAL-Context";

        private string GeometryName => Options.AugmentationGeometry == AugmentationGeometry.ReferenceTwoStep ? "reference-two-step" : "single-pass";

        private string Backbone => string.Create(CultureInfo.InvariantCulture,
            $"Swin embed {Network.EmbedDim}, depths {string.Join("-", Network.Depths)}, heads {string.Join("-", Network.NumHeads)}, window {Network.WindowSize}, {Network.ImageSize} px");

        public string ToText()
        {
            var ci = CultureInfo.InvariantCulture;
            var sb = new StringBuilder();
            sb.AppendLine("MTLoRA training");
            sb.AppendLine(string.Create(ci, $"  tasks       {string.Join(", ", Network.Tasks.Select(t => t.ReferenceName()))}"));
            sb.AppendLine(string.Create(ci, $"  mode        {ModeName} ({Ranks(Network)})"));
            sb.AppendLine(string.Create(ci, $"  backbone    {Backbone}, {(Weights is null ? "random initialisation" : $"from {Weights}")}"));
            sb.AppendLine(string.Create(ci, $"  parameters  {Counts.Trainable:N0} trainable of {Counts.Total:N0} ({100.0 * Counts.Trainable / Math.Max(1, Counts.Total):0.0} %; LoRA {Counts.Lora:N0}, decoders {Counts.Decoder:N0})"));
            sb.AppendLine(string.Create(ci, $"  data        {(Synthetic ? "synthetic " : "")}{DatasetName} {Root}: {TrainCount} train, {ValCount} val images"));
            sb.AppendLine(string.Create(ci, $"  augment     flip, {Options.AugmentationDraws} draws ({Options.AugmentationDraws.Describe()}), {GeometryName}"));
            sb.AppendLine(string.Create(ci, $"  training    {Steps} steps ({Options.Epochs} epochs, batch {Options.BatchSize}, peak lr {Options.EffectiveLearningRate:G3}) on {Device}"));
            sb.AppendLine(string.Create(ci, $"  time        training {CliCommon.Duration(TrainTime)}, whole command {CliCommon.Duration(WallTime)} (CPU time {CliCommon.Duration(CpuTime)})"));
            sb.AppendLine();
            if (Before is not null)
            {
                sb.AppendLine(string.Create(ci, $"Validation ({ValCount} images): untrained network (same seed) -> trained"));
                foreach (var t in After.Tasks)
                {
                    double b = Before.GetPaperMetric(t), a = After.GetPaperMetric(t);
                    sb.AppendLine(string.Create(ci, $"  {t.ReferenceName(),-12} {MetricName(t),-35} {MainMetric(Before, t),8} -> {MainMetric(After, t),8}   ({Relative(t, b, a)})"));
                }
                sb.AppendLine(Nyud
                    ? "  (no Δm: it needs single-task baselines measured on real NYUD-v2; train with --data and --baselines task=value for Δm)"
                    : "  (no Δm: the paper's single-task baselines are for real PASCAL-Context; train with --data for Δm)");
            }
            else
            {
                sb.AppendLine(string.Create(ci, $"Validation ({ValCount} images):"));
                sb.AppendLine(After.ToTable());
            }
            if (Report is { } r)
            {
                if (r.Best is { } best) sb.AppendLine(string.Create(ci, $"  best        epoch {best.Epoch} (step {best.Step}): {Summary(best.Metrics)}"));
                else if (r.BestBeforeResume is { } earlier)
                    sb.AppendLine(string.Create(ci, $"  best        epoch {earlier.Epoch} (step {earlier.Step}), before the resume: {StoredBest(earlier)} ")
                        + (r.Kept == MtLoraKeep.Best ? "(its per-task metrics are not stored; the validation above scored these weights again)" : "(its per-task metrics are not stored)"));
                if (r.Last is { } last) sb.AppendLine(string.Create(ci, $"  last        epoch {last.Epoch} (step {last.Step}): {Summary(last.Metrics)}"));
                sb.AppendLine(string.Create(ci, $"  saved       the {(r.Kept == MtLoraKeep.Best ? "best" : "last")} weights; {r.SkippedSteps} step(s) skipped (non-finite loss)"));
            }
            sb.AppendLine(string.Create(ci, $"  protocol    {After.Protocol?.Name()}"));
            sb.AppendLine();
            sb.AppendLine(string.Create(ci, $"Saved {Model}; training log and curves in {LogDir}"));
            return sb.ToString();
        }

        public JsonObject ToJson()
        {
            var json = new JsonObject
            {
                ["model"] = Model,
                ["log_dir"] = LogDir,
                ["tasks"] = new JsonArray(Network.Tasks.Select(t => (JsonNode)t.ReferenceName()).ToArray()),
                ["mode"] = ModeName,
                ["network"] = Network.ToJsonNode(),
                ["pretrained"] = Weights,
                ["parameters"] = new JsonObject { ["trainable"] = Counts.Trainable, ["lora"] = Counts.Lora, ["decoder"] = Counts.Decoder, ["total"] = Counts.Total },
                ["dataset"] = Nyud ? "nyud" : "pascal",
                ["data"] = new JsonObject { ["root"] = Root, ["synthetic"] = Synthetic, ["train"] = TrainCount, ["val"] = ValCount },
                ["augmentation"] = new JsonObject
                {
                    ["draws"] = Options.AugmentationDraws.ToString(),
                    ["rotation_scale"] = Options.AugmentationDraws.Describe(),
                    ["flip_probability"] = 0.5,
                    ["geometry"] = GeometryName,
                },
                ["steps"] = Steps,
                ["epochs"] = Options.Epochs,
                ["batch_size"] = Options.BatchSize,
                ["learning_rate"] = Options.EffectiveLearningRate,
                ["device"] = Device,
                ["train_seconds"] = Math.Round(TrainTime.TotalSeconds, 2),
                ["wall_seconds"] = Math.Round(WallTime.TotalSeconds, 2),
                ["cpu_seconds"] = Math.Round(CpuTime.TotalSeconds, 2),
                ["metrics"] = After.ToJson(),
            };
            if (Before is not null) json["metrics_untrained"] = Before.ToJson();
            json["protocol"] = After.Protocol?.Name();
            if (Report is { } r)
            {
                static JsonNode? Validation(MtLoraValidationReport? v) => v is null ? null
                    : new JsonObject { ["epoch"] = v.Epoch, ["step"] = v.Step, ["metrics"] = v.Metrics.ToJson() };
                json["validation"] = new JsonObject
                {
                    ["best"] = Validation(r.Best),
                    ["best_before_resume"] = r.BestBeforeResume is { } earlier
                        ? new JsonObject { ["epoch"] = earlier.Epoch, ["step"] = earlier.Step, ["measure"] = earlier.Measure, ["value"] = earlier.Value }
                        : null,
                    ["last"] = Validation(r.Last),
                    ["kept"] = r.Kept == MtLoraKeep.Best ? "best" : "last",
                };
                json["skipped_steps"] = r.SkippedSteps;
            }
            return json;
        }

        /// <summary>A best validation from before a resume, as its score: Δm in %, or the task's paper metric.</summary>
        private static string StoredBest(MtLoraStoredBest b) => b.Measure == "Δm"
            ? string.Create(CultureInfo.InvariantCulture, $"Δm {b.Value:+0.00;-0.00;0.00} %")
            : string.Create(CultureInfo.InvariantCulture, $"{b.Measure} {b.Value:0.00##}");

        private static string Relative(DenseTaskDescriptor t, double before, double after) => t.Kind switch
        {
            DenseTaskKind.SurfaceNormals => string.Create(CultureInfo.InvariantCulture, $"{before - after:+0.00;-0.00;0.00}° better"),
            _ when !t.HigherIsBetter => string.Create(CultureInfo.InvariantCulture, $"{before - after:+0.0000;-0.0000;0.0000} better"),
            _ => before > 0 ? string.Create(CultureInfo.InvariantCulture, $"x{after / before:0.0}") : "from 0",
        };
    }
}
