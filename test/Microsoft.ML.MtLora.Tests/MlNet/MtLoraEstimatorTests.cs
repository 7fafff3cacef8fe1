using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.MlNet;

// Fit seeds and draws from torch's process-wide generator (init, dropout, drop-path): bitwise checks need no test beside it.
[Collection(SerialCollection.Name)]
public class MtLoraEstimatorTests
{
    /// <summary>A labelled row as LoadPascalContext produces it (labels at the image's size); the image is a PNG file.</summary>
    public sealed class LabelledRow
    {
        public string Name { get; set; } = "";
        public byte[] SemsegLabel { get; set; } = [];
        public byte[] HumanPartsLabel { get; set; } = [];
        public byte[] SaliencyLabel { get; set; } = [];
        public float[] NormalsLabel { get; set; } = [];
        public int Height { get; set; }
        public int Width { get; set; }
    }

    /// <summary>
    /// Synthetic labelled images whose labels follow the image (left/right halves), as a view with the image column
    /// decoded by LoadImages from PNGs in <paramref name="folder"/> (the batch reader disposes the images it reads, so
    /// they must not be shared objects).
    /// </summary>
    internal static IDataView Labelled(MLContext ml, string folder, int count, int seed = 3)
    {
        var view = LabelledFiles(ml, folder, count, seed);
        return ml.Transforms.LoadImages("Image", folder, "Name").Fit(view).Transform(view);
    }

    /// <summary>
    /// The rows of <see cref="Labelled"/> before the images are loaded: the PNG file name (column <c>Name</c>, in
    /// <paramref name="folder"/>) and the labels. With <paramref name="size"/> every image has that size, else assorted sizes.
    /// </summary>
    internal static IDataView LabelledFiles(MLContext ml, string folder, int count, int seed = 3, (int Width, int Height)? size = null)
    {
        var rows = new List<LabelledRow>();
        var images = size is { } s
            ? Enumerable.Range(0, count).Select(i => new ImageRow { Image = MtLoraTestModel.Image(s.Width, s.Height, seed * 100 + i) }).ToList()
            : MtLoraTestModel.Rows(count, seed);
        foreach (var (r, i) in images.Select((r, i) => (r, i)))
        {
            int h = r.Image.Height, w = r.Image.Width;
            var name = $"train{seed}_{i}.png";
            r.Image.Save(System.IO.Path.Combine(folder, name));
            r.Image.Dispose();
            var sem = new byte[h * w];
            var parts = new byte[h * w];
            var sal = new byte[h * w];
            var normals = new float[3 * h * w];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int k = y * w + x;
                    bool left = x < w / 2;
                    sem[k] = y < h / 8 ? DenseTasks.IgnoreLabel : (byte)(left ? 0 : 1 + i % 20);
                    parts[k] = (byte)(left ? 0 : 1 + i % 6);
                    sal[k] = (byte)(left ? 0 : 1);
                    normals[k] = left ? 1 : 0;
                    normals[h * w + k] = 0;
                    normals[2 * h * w + k] = left ? 0 : 1;
                }
            rows.Add(new LabelledRow { Name = name, SemsegLabel = sem, HumanPartsLabel = parts, SaliencyLabel = sal, NormalsLabel = normals, Height = h, Width = w });
        }
        return ml.Data.LoadFromEnumerable(rows);
    }

    /// <summary>Small, fast training settings on the tiny4 network, starting from the tiny4 reference weights.</summary>
    internal static MtLoraOptions TinyOptions() => new()
    {
        Network = MtLoraTestModel.Options(),
        PretrainedWeightsPath = Fixture.Path("tiny4", "model.safetensors"),
        Epochs = 3,
        WarmupEpochs = 1,
        BatchSize = 2,
        LearningRate = 1e-3,
        Shuffle = false,
        Device = "cpu",
        Seed = 5,
        DataLoaderParallelism = 1,
        InferenceBatchSize = 2,
        ProgressEverySteps = 1,
    };

    /// <summary>One training step on the tiny4 network: a real fitted transformer, in a few seconds.</summary>
    internal static MtLoraOptions OneStepOptions()
    {
        var o = TinyOptions();
        o.Epochs = 1;
        o.WarmupEpochs = 0;
        o.MaxSteps = 1;
        return o;
    }

    [Fact]
    public void FitTrainsLogsAndReturnsAWorkingTransformer()
    {
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var images = Fixture.TempDir();
        var data = Labelled(ml, images.Path, 4);
        var reports = new List<TrainingProgress>();
        var validations = new List<MtLoraValidationReport>();
        var options = TinyOptions();
        options.Progress = new SyncProgress<TrainingProgress>(reports.Add);
        options.ValidationSet = data;
        options.ValidationEveryEpochs = 1;
        options.ValidationProgress = new SyncProgress<MtLoraValidationReport>(validations.Add);
        var estimator = ml.MultiTask().Trainers.MtLora(options);

        var shape = estimator.GetOutputSchema(Shape(data.Schema));
        var score = Assert.Single(shape, c => c.Name == "SemsegScore");
        Assert.Equal(NumberDataViewType.Single, score.ItemType);

        using var model = estimator.Fit(data);
        Assert.Equal(6, reports.Count);                                      // 3 epochs × 2 batches, a report every step
        Assert.Equal(6, reports[^1].Step);
        Assert.All(reports, r => Assert.True(double.IsFinite(r.TotalLoss)));
        Assert.Equal([1, 2, 3], validations.Select(v => v.Epoch));          // every epoch, the last one after Fit
        Assert.NotNull(validations[^1].Metrics.SemanticSegmentation);
        Assert.Contains(log, m => m.Contains("MTLoRA: epoch", StringComparison.Ordinal));
        Assert.Contains(log, m => m.Contains("MTLoRA validation after epoch 3", StringComparison.Ordinal));

        // Trained: the trainable tensors moved away from the starting weights, the frozen ones did not.
        var start = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        using var dir = Fixture.TempDir();
        var zip = dir.File("fitted.zip");
        ml.Model.Save(model, data.Schema, zip);
        using (var z = System.IO.Compression.ZipFile.OpenRead(zip))
        using (var s = z.Entries.Single(e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal)).Open())
        {
            using var m = new MemoryStream();
            s.CopyTo(m);
            m.Position = 0;
            var trained = SafeTensors.Read(m, "fitted", out _);
            try
            {
                const string frozen = "backbone.layers.0.blocks.0.attn.qkv.linear.weight";
                const string lora = "backbone.layers.0.blocks.0.attn.qkv.lora_shared_B";
                const string head = "decoders.decoders.semseg.last_layer.3.weight";
                Assert.Equal(0f, (trained[frozen] - start[frozen]).abs().max().item<float>());
                Assert.True((trained[lora] - start[lora]).abs().max().item<float>() > 0);
                Assert.True((trained[head] - start[head]).abs().max().item<float>() > 0);
            }
            finally { foreach (var t in trained.Values) t.Dispose(); }
        }
        foreach (var t in start.Values) t.Dispose();

        var rows = MtLoraTransformerTests.ReadPredictions(model.Transform(data));
        Assert.Equal(4, rows.Count);
        Assert.All(rows, r => Assert.Equal(((int[])r["Height"])[0] * ((int[])r["Width"])[0] * 21, r["SemsegScore"].Length));
    }

    [Fact]
    public void FitStartsFromAMicrosoftSwinBackbone()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        var data = Labelled(ml, images.Path, 2);
        var options = TinyOptions();
        options.PretrainedWeightsPath = Fixture.Path("swin_ms", "swin_ms_format.pth");
        options.Network.Tasks = [DenseTask.SemanticSegmentation, DenseTask.Saliency];
        options.Epochs = 2;
        options.MaxSteps = 1;
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(data);
        Assert.Equal([DenseTask.SemanticSegmentation, DenseTask.Saliency], model.Tasks);
        var schema = model.GetOutputSchema(data.Schema);
        Assert.NotNull(schema.GetColumnOrNull("SemsegScore"));
        Assert.Null(schema.GetColumnOrNull("HumanPartsScore"));

        // The frozen backbone weights are the checkpoint's: compare one through the adapters round trip.
        using var dir = Fixture.TempDir();
        var adapters = dir.File("a.safetensors");
        model.SaveAdapters(adapters);
        using var rebuilt = MtLoraTransformer.LoadFromAdapters(ml, adapters, Fixture.Path("swin_ms", "swin_ms_format.pth"));
        MtLoraTransformerTests.AssertSame(
            MtLoraTransformerTests.ReadPredictions(model.Transform(data), ["SemsegScore", "SaliencyProbability"]),
            MtLoraTransformerTests.ReadPredictions(rebuilt.Transform(data), ["SemsegScore", "SaliencyProbability"]));
    }

    [Fact]
    public void FitResumedFromACheckpointEqualsAnUninterruptedFit()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        using var checkpoints = Fixture.TempDir();
        var data = Labelled(ml, images.Path, 4);
        MtLoraOptions Options()
        {
            var o = TinyOptions();
            o.Epochs = 2;
            o.ProgressEverySteps = 10;
            return o;
        }
        using var whole = ml.MultiTask().Trainers.MtLora(Options()).Fit(data);

        var first = Options();
        first.MaxSteps = 3;                                   // stops inside the second epoch
        first.CheckpointDirectory = checkpoints.Path;
        first.CheckpointEverySteps = 3;
        ml.MultiTask().Trainers.MtLora(first).Fit(data).Dispose();
        var checkpoint = Directory.GetDirectories(checkpoints.Path).Order(StringComparer.Ordinal).Last();

        var rest = Options();
        rest.ResumeFrom = checkpoint;
        rest.PretrainedWeightsPath = null; // the weights must come from the checkpoint: a fresh start would differ
        using var resumed = ml.MultiTask().Trainers.MtLora(rest).Fit(data);
        MtLoraTransformerTests.AssertSame(
            MtLoraTransformerTests.ReadPredictions(whole.Transform(data), ["SemsegScore", "NormalsPredicted"]),
            MtLoraTransformerTests.ReadPredictions(resumed.Transform(data), ["SemsegScore", "NormalsPredicted"]));
    }

    [Fact]
    public void CancelledFitThrowsOperationCanceled()
    {
        var ml = new MLContext(seed: 1);
        using var images = Fixture.TempDir();
        var data = Labelled(ml, images.Path, 2);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var options = TinyOptions();
        options.CancellationToken = cts.Token;
        Assert.ThrowsAny<OperationCanceledException>(() => ml.MultiTask().Trainers.MtLora(options).Fit(data));
    }

    [Theory]
    [InlineData("BatchSize")]
    [InlineData("Device")]
    [InlineData("WarmupEpochs")]
    [InlineData("PretrainedWeightsPath")]
    [InlineData("ValidationEveryEpochs")]
    [InlineData("Keep")]
    [InlineData("BestEpochTask")]
    [InlineData("CheckpointEverySteps")]
    [InlineData("Network")]
    [InlineData("ImageColumnName")]
    [InlineData("AccumulationSteps")]
    [InlineData("UseBFloat16")]
    public void BadOptionsAreRejectedEarlyByName(string option)
    {
        var o = TinyOptions();
        switch (option)
        {
            case "BatchSize": o.BatchSize = 0; break;
            case "Device": o.Device = "gpu"; break;
            case "WarmupEpochs": o.WarmupEpochs = o.Epochs; break;
            case "PretrainedWeightsPath": o.PretrainedWeightsPath = "/no/such/swin.pth"; break;
            case "ValidationEveryEpochs": o.ValidationEveryEpochs = -1; break;
            case "Keep": o.Keep = MtLoraKeep.Best; break;                // no ValidationSet
            case "BestEpochTask": o.Network.Tasks = [DenseTask.SemanticSegmentation]; o.BestEpochTask = DenseTask.SurfaceNormals; break;
            case "CheckpointEverySteps": o.CheckpointEverySteps = 5; break;
            case "Network": o.Network.WindowSize = 0; break;
            case "ImageColumnName": o.ImageColumnName = " "; break;
            case "AccumulationSteps": o.AccumulationSteps = 3; break;   // does not divide BatchSize = 2
            case "UseBFloat16": o.UseBFloat16 = true; break;            // Device = "cpu"
        }
        var e = Assert.ThrowsAny<ArgumentException>(() => new MLContext().MultiTask().Trainers.MtLora(o));
        Assert.Contains($"MtLoraOptions.{option}", e.Message);
    }

    [Fact]
    public void DefaultsAreThePapersSetting()
    {
        var o = new MtLoraOptions();
        Assert.Equal(32, o.BatchSize);
        Assert.Equal(300, o.Epochs);
        Assert.Equal(20, o.WarmupEpochs);
        Assert.Equal(0.05, o.WeightDecay);
        Assert.Equal(5.0, o.GradientClipNorm);
        Assert.Equal(5e-4 * 32 / 512, o.EffectiveLearningRate, 12);
        Assert.Equal(448, o.Network.ImageSize);
        Assert.Equal(64, o.Network.SharedRank);
        Assert.Equal(4, o.Network.TaskRank);
        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), o.Network.Tasks);
        Assert.Equal("Image", o.ImageColumnName);
        Assert.Equal("SemsegLabel", o.LabelColumnName(DenseTask.SemanticSegmentation));
        Assert.Equal("NormalsLabel", o.LabelColumnName(DenseTask.SurfaceNormals));
        o.Validate();
        var e = new MLContext().MultiTask().Trainers.MtLora(epochs: 10, batchSize: 8, tasks: [DenseTask.Saliency]);
        Assert.Equal(9, e.Options.WarmupEpochs); // the paper's 20 warmup epochs, shortened to fit 10 epochs
        Assert.Equal([DenseTask.Saliency], e.Options.Network.Tasks);
    }

    [Fact]
    public void MissingLabelColumnIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(2));
        var estimator = ml.MultiTask().Trainers.MtLora(TinyOptions());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shape(data.Schema)));
        Assert.Contains("'SemsegLabel'", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
    }

    public sealed class WrongTypeRow
    {
        public MLImage Image { get; set; } = null!;
        public float SemsegLabel { get; set; }
    }

    [Fact]
    public void WrongLabelTypeIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new WrongTypeRow { Image = MtLoraTestModel.Image(8, 8, 1) } });
        var options = TinyOptions();
        options.Network.Tasks = [DenseTask.SemanticSegmentation];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MultiTask().Trainers.MtLora(options).GetOutputSchema(Shape(data.Schema)));
        Assert.Contains("'SemsegLabel'", e.Message);
        Assert.Contains("Vector<Byte>", e.Message);
    }

    [Fact]
    public void WrongImageTypeIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new MtLoraTransformerTests.TextImageRow { Image = "x.png" } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MultiTask().Trainers.MtLora(TinyOptions()).GetOutputSchema(Shape(data.Schema)));
        Assert.Contains("'Image'", e.Message);
        Assert.Contains("MLImage", e.Message);
    }

    /// <summary>ML.NET's own SchemaShape.Create(DataViewSchema) is internal; pipelines call it for users.</summary>
    internal static SchemaShape Shape(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!
            .Invoke(null, [schema])!;

    /// <summary>An IProgress that reports on the caller's thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    internal sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }
}

/// <summary>The whole ML.NET workflow over a generated PASCAL_MT folder: load, fit, score, evaluate, save, load.</summary>
public class MtLoraPascalWorkflowTests
{
    [Fact]
    public void LoadFitEvaluateSaveLoadOnSyntheticPascal()
    {
        using var dir = Fixture.TempDir();
        Microsoft.ML.MtLora.Data.Synthetic.SyntheticPascal.Generate(dir.Path, new Microsoft.ML.MtLora.Data.Synthetic.SyntheticPascalOptions { TrainCount = 4, ValCount = 2, Width = 64, Height = 48, Seed = 1 });
        var ml = new MLContext(seed: 0);
        var train = ml.Data.LoadPascalContext(dir.Path, "train");
        var val = ml.Data.LoadPascalContext(dir.Path, "val");

        var options = MtLoraEstimatorTests.TinyOptions();
        options.Shuffle = true;
        options.Epochs = 2;
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(train);

        var scored = model.Transform(val);
        var metrics = ml.MultiTask().Evaluate(scored);
        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), metrics.Tasks);
        Assert.InRange(metrics.SemanticSegmentation!.MeanIoU, 0, 1);
        Assert.NotNull(metrics.DeltaM);

        var zip = System.IO.Path.Combine(dir.Path, "model.zip");
        ml.Model.Save(model, val.Schema, zip);
        var loaded = new MLContext(seed: 0).Model.Load(zip, out _);
        try
        {
            var again = ml.MultiTask().Evaluate(loaded.Transform(val));
            Assert.Equal(metrics.SemanticSegmentation.MeanIoU, again.SemanticSegmentation!.MeanIoU);
            Assert.Equal(metrics.SurfaceNormals!.Mean, again.SurfaceNormals!.Mean);
        }
        finally { (loaded as IDisposable)?.Dispose(); }
    }
}
