using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Preprocessing;
using TorchSharp;

namespace MtLora.Benchmarks;

/// <summary>
/// <c>Mtlora.Benchmarks --mode data --data &lt;PASCAL_MT root&gt; [--split train] [--image-size 448] [--workers N] [--samples M]
/// [--batch B] [--prefetch P] [--geometry single-pass|reference-two-step] [--warm-epochs E] [--json out.json]</c>: the training input path
/// alone (decode, label loading, augmentation, batching; <see cref="DenseBatchReader"/> with the training options), in samples
/// per second of wall time and per process CPU-second, with the CPU time of each stage. See eng/benchmarks/README.md.
/// </summary>
internal static class DataBenchmark
{
    /// <summary>Whether the command line asks for this mode (<c>--mode data</c>).</summary>
    public static bool IsRequested(string[] args)
    {
        for (int i = 0; i + 1 < args.Length; i++)
            if (args[i] == "--mode" && args[i + 1] == "data") return true;
        return args.Any(a => a == "--mode=data");
    }

    /// <summary>Runs the data mode; bad options print one line on stderr and give 2.</summary>
    public static int Run(string[] args)
    {
        var mode = new Option<string>("--mode") { Description = "data: the training input path alone.", Required = true };
        mode.AcceptOnlyFromAmong("data");
        var data = new Option<DirectoryInfo>("--data") { Description = "PASCAL_MT root (e.g. from `mtlora make-synthetic --real-sizes`).", Required = true };
        var split = new Option<string>("--split") { Description = "Split to read.", DefaultValueFactory = _ => "train" };
        var imageSize = new Option<int>("--image-size") { Description = "Network input side S.", DefaultValueFactory = _ => 448 };
        var workers = new Option<int>("--workers") { Description = "Loader worker threads (DegreeOfParallelism).", DefaultValueFactory = _ => 1 };
        var samples = new Option<int>("--samples") { Description = "Timed samples (whole batches; epochs repeat as needed).", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch") { Description = "Samples per batch.", DefaultValueFactory = _ => 32 };
        var prefetch = new Option<int>("--prefetch") { Description = "Batches prepared ahead (PrefetchBatches).", DefaultValueFactory = _ => DenseBatchReaderOptions.DefaultPrefetchBatches };
        var geometry = new Option<string>("--geometry") { Description = "single-pass (default) or reference-two-step (the reference's exact warp then resize).", DefaultValueFactory = _ => "single-pass" };
        geometry.AcceptOnlyFromAmong("single-pass", "reference-two-step");
        var seed = new Option<int>("--seed") { Description = "Shuffle and augmentation seed.", DefaultValueFactory = _ => 0 };
        var warmEpochs = new Option<int>("--warm-epochs") { Description = "Whole epochs read untimed first (1: decoded labels are cached, the steady state of a long training; 0: the first epoch, cold).", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "libtorch intra-op threads of the consuming thread (making the batch tensors).", DefaultValueFactory = _ => 1 };
        var json = new Option<FileInfo?>("--json") { Description = "Write the result as JSON to this file." };

        var root = new RootCommand("Training input throughput: decode, labels, augmentation and batching of PASCAL_MT samples, in samples/s and samples per CPU-second.");
        foreach (var o in new Option[] { mode, data, split, imageSize, workers, samples, batch, prefetch, geometry, seed, warmEpochs, threads, json })
            root.Options.Add(o);
        root.SetAction(parse =>
        {
            var settings = new Settings(parse.GetValue(data)!.FullName, parse.GetValue(split)!, parse.GetValue(imageSize), parse.GetValue(workers),
                parse.GetValue(samples), parse.GetValue(batch), parse.GetValue(prefetch),
                parse.GetValue(geometry) == "reference-two-step" ? AugmentationGeometry.ReferenceTwoStep : AugmentationGeometry.SinglePass,
                parse.GetValue(seed), parse.GetValue(warmEpochs), parse.GetValue(threads));
            var result = Run(settings, Console.Error);
            Console.WriteLine(result.Line());
            if (parse.GetValue(json) is { } file)
                AtomicFile.Write(file.FullName, stream =>
                {
                    using var writer = new StreamWriter(stream, leaveOpen: true);
                    writer.Write(result.ToJson() + Environment.NewLine);
                });
            return 0;
        });
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or NotSupportedException)
        {
            Console.Error.WriteLine($"Mtlora.Benchmarks: error: {e.Message}");
            return 2;
        }
    }

    internal sealed record Settings(string Data, string Split, int ImageSize, int Workers, int Samples, int Batch, int Prefetch,
        AugmentationGeometry Geometry, int Seed, int WarmEpochs, int Threads)
    {
        public void Validate()
        {
            if (ImageSize < 2) throw new ArgumentException($"--image-size must be at least 2, got {ImageSize}.");
            if (Workers < 1) throw new ArgumentException($"--workers must be at least 1, got {Workers}.");
            if (Samples < 1) throw new ArgumentException($"--samples must be at least 1, got {Samples}.");
            if (Batch < 1) throw new ArgumentException($"--batch must be at least 1, got {Batch}.");
            if (Prefetch < 0) throw new ArgumentException($"--prefetch must be 0 or more, got {Prefetch}.");
            if (Threads < 1) throw new ArgumentException($"--threads must be at least 1, got {Threads}.");
            if (WarmEpochs < 0) throw new ArgumentException($"--warm-epochs must be 0 or more, got {WarmEpochs}.");
        }
    }

    /// <summary>
    /// Reads <see cref="Settings.WarmEpochs"/> whole epochs untimed (JIT, file cache, the reader's label cache), or with 0 one
    /// untimed batch, then whole batches until <see cref="Settings.Samples"/> samples have been handed out, disposing each at
    /// once; wall and process CPU time of that window, and the stage times the reader measured in it.
    /// </summary>
    internal static DataResult Run(Settings s, TextWriter progress)
    {
        s.Validate();
        TorchRuntime.Initialize();
        torch.set_num_threads(s.Threads);
        string load0 = LoadAverage();
        var view = new MLContext(seed: s.Seed).Data.LoadPascalContext(s.Data, s.Split);
        var options = DenseBatchReaderOptions.ForTraining(s.Seed);
        options.BatchSize = s.Batch;
        options.ImageSize = s.ImageSize;
        options.DegreeOfParallelism = s.Workers;
        options.PrefetchBatches = s.Prefetch;
        options.Geometry = s.Geometry;
        var reader = new DenseBatchReader(view, options);
        long perEpoch = reader.BatchesPerEpoch ?? 0;
        if (perEpoch < 1) throw new ArgumentException($"Split '{s.Split}' of '{s.Data}' holds fewer samples than one batch of {s.Batch}.");
        long timedBatches = (s.Samples + s.Batch - 1) / s.Batch;
        progress.WriteLine($"data: {view.Ids.Count} samples in '{s.Split}', {timedBatches} timed batches of {s.Batch} at {s.ImageSize} px, {s.Workers} worker(s), prefetch {s.Prefetch}, {s.Geometry}");

        var timings = new LoaderTimings();
        for (int epoch = 0; epoch < s.WarmEpochs; epoch++)
            foreach (var b in reader.ReadEpoch(epoch)) b.Dispose();
        long done = s.WarmEpochs > 0 ? 0 : -1;                  // without warm epochs, batch -1 is the warm-up
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        long allocated0 = GC.GetTotalAllocatedBytes();
        int[] gc0 = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        if (done == 0) reader.Timings = timings;
        for (int epoch = s.WarmEpochs; done < timedBatches; epoch++)
        {
            foreach (var b in reader.ReadEpoch(epoch))
            {
                b.Dispose();
                if (done == -1)
                {
                    reader.Timings = timings;                    // from here on
                    cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    allocated0 = GC.GetTotalAllocatedBytes();
                    gc0 = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
                    watch.Restart();
                }
                if (++done == timedBatches) break;
            }
        }
        watch.Stop();
        double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes() - allocated0;
        int[] gcs = [GC.CollectionCount(0) - gc0[0], GC.CollectionCount(1) - gc0[1], GC.CollectionCount(2) - gc0[2]];
        long n = timedBatches * s.Batch;
        double seconds = watch.Elapsed.TotalSeconds;
        double PerSample(LoaderStage stage) => timings.Seconds(stage) * 1000 / Math.Max(1, timings.Samples);
        return new DataResult
        {
            Data = s.Data,
            Split = s.Split,
            ImageSize = s.ImageSize,
            Batch = s.Batch,
            Workers = s.Workers,
            Prefetch = s.Prefetch,
            Geometry = s.Geometry == AugmentationGeometry.SinglePass ? "single-pass" : "reference-two-step",
            WarmEpochs = s.WarmEpochs,
            Samples = n,
            Seconds = seconds,
            SamplesPerSecond = n / seconds,
            ProcessCpuSeconds = cpu,
            SamplesPerCpuSecond = n / cpu,
            StageClock = LoaderTimings.MeasuresCpuTime ? "thread CPU time" : "wall time",
            DecodeImageMsPerSample = PerSample(LoaderStage.DecodeImage),
            LoadLabelsMsPerSample = PerSample(LoaderStage.LoadLabels),
            AugmentMsPerSample = PerSample(LoaderStage.Augment),
            BatchMsPerSample = timings.Seconds(LoaderStage.Batch) * 1000 / Math.Max(1, timings.Batches * s.Batch),
            ProcessCpuMsPerSample = cpu * 1000 / n,
            ManagedBytesAllocatedPerSample = allocated / n,
            GarbageCollections = gcs,
            ProcessorCount = Environment.ProcessorCount,
            LoadAverageBefore = load0,
            LoadAverageAfter = LoadAverage(),
            Machine = $"{RuntimeInformation.OSDescription}; {RuntimeInformation.ProcessArchitecture}; .NET {Environment.Version}",
            TimestampUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown";
        }
    }

    /// <summary>One data-mode measurement, written as JSON with snake_case keys.</summary>
    internal sealed record DataResult
    {
        public string Mode { get; init; } = "data";
        public required string Data { get; init; }
        public required string Split { get; init; }
        public int ImageSize { get; init; }
        public int Batch { get; init; }
        public int Workers { get; init; }
        public int Prefetch { get; init; }
        public required string Geometry { get; init; }

        /// <summary>Untimed epochs read first (≥ 1: the decoded labels come from the reader's cache).</summary>
        public int WarmEpochs { get; init; }

        /// <summary>Timed samples (whole batches, after one untimed batch).</summary>
        public long Samples { get; init; }

        /// <summary>Wall time of the timed batches.</summary>
        public double Seconds { get; init; }

        public double SamplesPerSecond { get; init; }

        /// <summary>User + system CPU time of the whole process (all threads) during the timed batches.</summary>
        public double ProcessCpuSeconds { get; init; }

        /// <summary>samples / process CPU seconds: the steady figure on a shared machine.</summary>
        public double SamplesPerCpuSecond { get; init; }

        /// <summary>What the per-stage times below measure.</summary>
        public required string StageClock { get; init; }

        /// <summary>JPEG decoding per sample (worker time).</summary>
        public double DecodeImageMsPerSample { get; init; }

        /// <summary>Label files (PNG, MAT) per sample.</summary>
        public double LoadLabelsMsPerSample { get; init; }

        /// <summary>Flip, rotation, scale, resize, ignore rules, normalisation per sample.</summary>
        public double AugmentMsPerSample { get; init; }

        /// <summary>Making the batch tensors (consuming thread) per sample.</summary>
        public double BatchMsPerSample { get; init; }

        /// <summary>Process CPU per sample (the stages plus everything else: garbage collection, thread hand-over, the runtime).</summary>
        public double ProcessCpuMsPerSample { get; init; }

        /// <summary>Managed memory allocated per sample in the timed window (all threads): what drives garbage collections.</summary>
        public long ManagedBytesAllocatedPerSample { get; init; }

        /// <summary>Garbage collections in the timed window: generations 0, 1, 2.</summary>
        public int[] GarbageCollections { get; init; } = [];

        public int ProcessorCount { get; init; }
        public required string LoadAverageBefore { get; init; }
        public required string LoadAverageAfter { get; init; }
        public required string Machine { get; init; }
        public required string TimestampUtc { get; init; }

        public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions
        {
            WriteIndented = true,
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        });

        public string Line() =>
            $"data {Split} {ImageSize}px batch {Batch}, {Workers} worker(s), prefetch {Prefetch}, {Geometry}, {(WarmEpochs > 0 ? "warm label cache" : "first epoch")}: {SamplesPerSecond:F1} samples/s over {Samples} samples " +
            $"({Seconds:F2} s; process CPU {ProcessCpuSeconds:F2} s = {SamplesPerCpuSecond:F1} samples per CPU-second); per sample ({StageClock}): " +
            $"decode {DecodeImageMsPerSample:F1} ms, labels {LoadLabelsMsPerSample:F1} ms, augment {AugmentMsPerSample:F1} ms, batch {BatchMsPerSample:F1} ms, " +
            $"process total {ProcessCpuMsPerSample:F1} ms; {ManagedBytesAllocatedPerSample / 1024.0:F0} KiB allocated per sample, GCs {string.Join("/", GarbageCollections)}; load {LoadAverageBefore} → {LoadAverageAfter}";
    }
}
