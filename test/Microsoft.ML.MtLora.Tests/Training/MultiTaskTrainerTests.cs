using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

[Collection(SerialCollection.Name)]
public class MultiTaskTrainerTests(ITestOutputHelper output)
{
    internal static MultiTaskTrainerSettings Settings(long maxSteps, string? checkpoints = null) => new()
    {
        Epochs = 10,
        WarmupEpochs = 1,
        MaxSteps = maxSteps,
        // Large rates so that a few steps move the weights visibly.
        BaseLearningRate = 1e-2,
        WarmupLearningRate = 1e-3,
        MinLearningRate = 1e-4,
        Seed = 11,
        CheckpointDirectory = checkpoints,
    };

    private static void AssertSameWeights(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (key, e) in expected)
        {
            Assert.True(e.eq(actual[key]).all().item<bool>(), $"'{key}' differs");
        }
    }

    private static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void SameSeedGivesIdenticalWeights()
    {
        Dictionary<string, Tensor> Run()
        {
            using var model = new TinyMultiTaskNet(seed: 1);
            using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 6));
            var result = trainer.Train();
            Assert.Equal(6, result.GlobalStep);
            output.WriteLine($"tiny module, batch 2, 16x16: {result.Elapsed.TotalMilliseconds / result.GlobalStep:F2} ms/step");
            return model.Snapshot();
        }
        var a = Run();
        var b = Run();
        try
        {
            AssertSameWeights(a, b);
            // And training did something: the weights moved away from the initial ones.
            using var fresh = new TinyMultiTaskNet(seed: 1);
            Assert.True((fresh.Snapshot()["stem.weight"] - a["stem.weight"]).abs().max().item<float>() > 1e-4f);
        }
        finally { DisposeAll(a); DisposeAll(b); }
    }

    [Fact]
    public void ResumeFromCheckpointContinuesExactly()
    {
        using var dir = Fixture.TempDir();
        const int k = 5;   // 4 batches per epoch: the split falls inside epoch 1 and the run crosses an epoch boundary.

        Dictionary<string, Tensor> straight;
        using (var model = new TinyMultiTaskNet(seed: 3))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 2 * k)))
        {
            trainer.Train();
            straight = model.Snapshot();
        }

        var checkpoints = Path.Combine(dir.Path, "ckpt");
        using (var model = new TinyMultiTaskNet(seed: 3))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: k, checkpoints)))
        {
            var first = trainer.Train();
            Assert.Equal(k, first.GlobalStep);
            Assert.Equal(1, first.Epoch);
            Assert.Equal(1, first.BatchInEpoch);
            Assert.EndsWith("step-000000005", first.LastCheckpoint);
        }

        // A fresh model with other initial weights: everything must come from the checkpoint.
        Dictionary<string, Tensor> resumed;
        using (var model = new TinyMultiTaskNet(seed: 99))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 2 * k, checkpoints) with { ResumeFrom = checkpoints }))
        {
            var second = trainer.Train();
            Assert.Equal(2 * k, second.GlobalStep);
            resumed = model.Snapshot();
        }
        try
        {
            AssertSameWeights(straight, resumed);   // includes BatchNorm running statistics
            Assert.Equal(["step-000000005", "step-000000010"], TrainingCheckpoint.List(checkpoints).Select(Path.GetFileName));
        }
        finally { DisposeAll(straight); DisposeAll(resumed); }
    }

    [Fact]
    public void RepeatedStepsDoNotLeakTensors()
    {
        var counts = new List<long>();
        using var model = new TinyMultiTaskNet(seed: 2);
        var settings = Settings(maxSteps: 14) with
        {
            ProgressEverySteps = 1,
            Progress = new SyncProgress(_ => counts.Add(torch.Tensor.TotalCount)),
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        trainer.Train();
        Assert.Equal(14, counts.Count);
        // After the first steps (gradients of every parameter exist from then on) the count of live tensors stays flat.
        output.WriteLine(string.Join(", ", counts));
        Assert.All(counts.Skip(3), c => Assert.True(c <= counts[2], $"live tensors grew from {counts[2]} to {c}: {string.Join(", ", counts)}"));
    }

    [Fact]
    public void ProgressReportsCarryLossesRateAndThroughput()
    {
        var reports = new List<TrainingProgress>();
        using var model = new TinyMultiTaskNet(seed: 4);
        var settings = Settings(maxSteps: 6) with { ProgressEverySteps = 2, Progress = new SyncProgress(reports.Add) };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        trainer.Train();

        Assert.Equal(new long[] { 2, 4, 6 }, reports.Select(r => r.Step));
        foreach (var r in reports)
        {
            Assert.Equal(6, r.TotalSteps);
            Assert.Equal(trainer.Schedule.ForStep(r.Step - 1), r.LearningRate);
            Assert.Equal(["human_parts", "normals", "sal", "semseg"], r.TaskLosses.Keys.OrderBy(k => k));
            double weighted = r.TaskLosses["semseg"] + 2 * r.TaskLosses["human_parts"] + 5 * r.TaskLosses["sal"] + 10 * r.TaskLosses["normals"];
            Assert.Equal(weighted, r.TotalLoss, 1e-4);
            Assert.True(r.ImagesPerSecond > 0);
        }
        Assert.Equal(1, reports[^1].Epoch);
        Assert.StartsWith("epoch 1 step 6/6 loss ", reports[^1].ToString());
    }

    [Fact]
    public void NonFiniteLossStopsTrainingNamingTheTask()
    {
        using var model = new TinyMultiTaskNet(seed: 5);
        var reports = new List<TrainingProgress>();
        var settings = Settings(maxSteps: 6) with
        {
            ProgressEverySteps = 1,
            Progress = new SyncProgress(r => { reports.Add(r); if (r.Step == 3) model.PoisonNormals = true; }),
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var ex = Assert.Throws<NonFiniteLossException>(() => trainer.Train());
        Assert.Equal("normals", ex.Task);
        Assert.Equal(3, ex.Step);
        Assert.Equal(0, ex.Epoch);
        Assert.Contains("Loss of task 'normals' is NaN at epoch 0 step 3 (learning rate", ex.Message);
        // The poisoned step did not touch the weights.
        using var scope = torch.NewDisposeScope();
        Assert.All(model.parameters(), p => Assert.False(p.isnan().any().item<bool>()));
    }

    [Fact]
    public void CancellationStopsCleanlyAndWritesACheckpoint()
    {
        using var dir = Fixture.TempDir();
        using var cts = new CancellationTokenSource();
        using var model = new TinyMultiTaskNet(seed: 6);
        var settings = Settings(maxSteps: 20, dir.Path) with
        {
            ProgressEverySteps = 1,
            Progress = new SyncProgress(r => { if (r.Step == 3) cts.Cancel(); }),
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var result = trainer.Train(cts.Token);
        Assert.True(result.Cancelled);
        Assert.Equal(3, result.GlobalStep);
        Assert.NotNull(result.LastCheckpoint);
        Assert.Equal(3, TrainingCheckpoint.ReadManifest(result.LastCheckpoint!).GlobalStep);
    }

    [Fact]
    public void HostCheckAliveExceptionStopsTraining()
    {
        using var model = new TinyMultiTaskNet(seed: 6);
        int calls = 0;
        var settings = Settings(maxSteps: 20) with { CheckAlive = () => { if (++calls == 3) throw new OperationCanceledException("host is shutting down"); } };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        Assert.Throws<OperationCanceledException>(() => trainer.Train());
        Assert.Equal(2, trainer.GlobalStep);
    }

    [Fact]
    public void FrozenParametersStayAndTasksWithoutLabelsGetNoUpdate()
    {
        using var model = new TinyMultiTaskNet(seed: 8);
        var initial = model.Snapshot();
        using var trainer = new MultiTaskTrainer(model, new TinyData(noHumanParts: true), Settings(maxSteps: 4));
        var result = trainer.Train();
        var after = model.Snapshot();
        try
        {
            Assert.Equal(4, result.StepsWithoutLabels["human_parts"]);
            Assert.DoesNotContain("human_parts", result.LastTaskLosses.Keys);
            foreach (var key in new[] { "frozen_proj.weight", "frozen_proj.bias", "head_human_parts.weight", "head_human_parts.bias" })
                Assert.Equal(0f, (initial[key] - after[key]).abs().max().item<float>());
            // The other heads and the shared layers trained.
            Assert.True((initial["head_sal.weight"] - after["head_sal.weight"]).abs().max().item<float>() > 1e-4f);
            Assert.True((initial["stem.weight"] - after["stem.weight"]).abs().max().item<float>() > 1e-4f);
        }
        finally { DisposeAll(initial); DisposeAll(after); }
    }

    [Fact]
    public void DamagedOrNewerCheckpointsGiveClearErrors()
    {
        using var dir = Fixture.TempDir();
        string folder;
        using (var model = new TinyMultiTaskNet(seed: 9))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 2, dir.Path)))
            folder = trainer.Train().LastCheckpoint!;

        Exception Resume(string from)
        {
            using var model = new TinyMultiTaskNet(seed: 9);
            using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 4) with { ResumeFrom = from });
            return Record.Exception(() => trainer.Train())!;
        }

        // No checkpoint at all.
        var empty = Directory.CreateDirectory(Path.Combine(dir.Path, "empty")).FullName;
        Assert.Contains("holds no training checkpoint", Assert.IsType<DirectoryNotFoundException>(Resume(empty)).Message);

        // A flipped byte in the model file.
        var modelFile = Path.Combine(folder, TrainingCheckpoint.ModelFileName);
        var bytes = File.ReadAllBytes(modelFile);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(modelFile, bytes);
        var damaged = Assert.IsType<InvalidDataException>(Resume(dir.Path));
        Assert.Contains(modelFile, damaged.Message);
        Assert.Contains("damaged", damaged.Message);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(modelFile, bytes);

        // A manifest from a newer format.
        var manifestFile = Path.Combine(folder, TrainingCheckpoint.ManifestFileName);
        var manifest = JsonNode.Parse(File.ReadAllText(manifestFile))!.AsObject();
        manifest["formatVersion"] = 99;
        File.WriteAllText(manifestFile, manifest.ToJsonString());
        var newer = Assert.IsType<InvalidDataException>(Resume(folder));
        Assert.Contains(manifestFile, newer.Message);
        Assert.Contains("newer", newer.Message);

        // A manifest that is not JSON.
        File.WriteAllText(manifestFile, "{ not json");
        Assert.Contains(manifestFile, Assert.IsType<InvalidDataException>(Resume(folder)).Message);
    }

    [Fact]
    public void ResumeRefusesDataOfAnotherSize()
    {
        using var dir = Fixture.TempDir();
        using (var model = new TinyMultiTaskNet(seed: 9))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(maxSteps: 2, dir.Path)))
            trainer.Train();
        using var model2 = new TinyMultiTaskNet(seed: 9);
        using var trainer2 = new MultiTaskTrainer(model2, new TinyData(samples: 12), Settings(maxSteps: 4) with { ResumeFrom = dir.Path });
        var ex = Assert.Throws<InvalidOperationException>(() => trainer2.Train());
        Assert.Contains("4 batches per epoch", ex.Message);
    }

    [Fact]
    public void GradientClippingBoundsTheGlobalNorm()
    {
        // AdamW is nearly invariant to the gradient's scale, except through eps: clipping the global norm to 1e-12
        // leaves gradients far below eps = 1e-8, so the first step barely moves the weights; without clipping it moves
        // each weight by about the learning rate.
        float FirstStepChange(double? clip)
        {
            using var model = new TinyMultiTaskNet(seed: 14, dropout: 0);
            var before = model.Snapshot();
            var settings = Settings(1) with { ClipGradientNorm = clip, WeightDecay = 0, WarmupLearningRate = 1e-2 };
            using (var trainer = new MultiTaskTrainer(model, new TinyData(), settings)) trainer.Train();
            var after = model.Snapshot();
            float change = (before["head_semseg.weight"] - after["head_semseg.weight"]).abs().max().item<float>();
            DisposeAll(before);
            DisposeAll(after);
            return change;
        }
        Assert.InRange(FirstStepChange(null), 0.5e-2f, 1.01e-2f);
        Assert.InRange(FirstStepChange(5.0), 0.5e-2f, 1.01e-2f);
        Assert.True(FirstStepChange(1e-12) < 1e-3f);
    }

    [Fact]
    public void PeriodicCheckpointsKeepOnlyTheNewest()
    {
        using var dir = Fixture.TempDir();
        using var model = new TinyMultiTaskNet(seed: 15);
        var settings = Settings(4, dir.Path) with { CheckpointEverySteps = 1, KeepCheckpoints = 2 };
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        var result = trainer.Train();
        Assert.Equal(["step-000000003", "step-000000004"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName).Order());
        Assert.Equal(Path.Combine(dir.Path, "step-000000004"), result.LastCheckpoint);
        var position = TrainingCheckpoint.ReadManifest(result.LastCheckpoint!);
        Assert.Equal(new TrainingPosition(4, 1, 0, 4, 11), position);   // 4 batches per epoch: the next step starts epoch 1
    }

    [Fact]
    public void BFloat16ResumeContinuesExactly()
    {
        using var dir = Fixture.TempDir();
        Dictionary<string, Tensor> Run(long steps, string? checkpoints, string? resume, long seed)
        {
            using var model = new TinyMultiTaskNet(seed);
            var settings = Settings(steps, checkpoints) with { UseBFloat16 = true, ResumeFrom = resume };
            using var trainer = new MultiTaskTrainer(model, new TinyData(), settings, allowBFloat16OnCpu: true);
            trainer.Train();
            return model.Snapshot();
        }
        var straight = Run(4, null, null, seed: 16);
        DisposeAll(Run(2, dir.Path, null, seed: 16));
        var resumed = Run(4, null, dir.Path, seed: 17);
        try { AssertSameWeights(straight, resumed); }
        finally { DisposeAll(straight); DisposeAll(resumed); }
    }

    [Fact]
    public void BFloat16RunKeepsFloat32FrozenWeightsAndMasters()
    {
        using var dir = Fixture.TempDir();
        using var model = new TinyMultiTaskNet(seed: 18, dropout: 0);
        using var frozen = model.state_dict()["frozen_proj.weight"].detach().clone();
        // The pretrained value is not a bfloat16 number: a rounded copy anywhere would show.
        Assert.False(frozen.eq(frozen.to(ScalarType.BFloat16).to(ScalarType.Float32)).all().item<bool>());
        string checkpoint;
        var masters = new Dictionary<string, Tensor>();
        try
        {
            using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(3, dir.Path) with { UseBFloat16 = true }, allowBFloat16OnCpu: true))
            {
                checkpoint = trainer.Train().LastCheckpoint!;
                // While training: bfloat16 compute, normalisation layers in float32.
                Assert.Equal(ScalarType.BFloat16, model.state_dict()["stem.weight"].dtype);
                Assert.Equal(ScalarType.BFloat16, model.state_dict()["frozen_proj.weight"].dtype);
                Assert.Equal(ScalarType.Float32, model.state_dict()["norm.weight"].dtype);
                foreach (var p in trainer.Optimizer.Parameters) masters[p.Name] = p.Master.detach().clone();
            }
            // After the trainer: float32 again, the frozen weights exactly the pretrained ones, the trained ones the masters.
            var after = model.state_dict();
            Assert.All(after.Values.Where(t => t.is_floating_point()), t => Assert.Equal(ScalarType.Float32, t.dtype));
            Assert.True(after["frozen_proj.weight"].eq(frozen).all().item<bool>());
            foreach (var (name, master) in masters) Assert.True(after[name].eq(master).all().item<bool>(), name);
            Assert.False(masters["stem.weight"].eq(masters["stem.weight"].to(ScalarType.BFloat16).to(ScalarType.Float32)).all().item<bool>());
            // The checkpoint holds the same float32 weights.
            var saved = Microsoft.ML.MtLora.Checkpoints.SafeTensors.Load(Path.Combine(checkpoint, TrainingCheckpoint.ModelFileName));
            try
            {
                Assert.True(saved["frozen_proj.weight"].eq(frozen).all().item<bool>());
                Assert.True(saved["stem.weight"].eq(masters["stem.weight"]).all().item<bool>());
            }
            finally { DisposeAll(saved); }
        }
        finally { DisposeAll(masters); }
    }

    [Fact]
    public void BFloat16IsRefusedOnCpu()
    {
        using var model = new TinyMultiTaskNet(seed: 10);
        var ex = Assert.Throws<NotSupportedException>(() => new MultiTaskTrainer(model, new TinyData(), Settings(2) with { UseBFloat16 = true }));
        Assert.Contains("CUDA", ex.Message);
    }

    [Fact]
    public void BFloat16PathTrainsCloseToFloat32()
    {
        // The bfloat16 code path (master weights, casts, gradient copies) exercised on the CPU through the test hook.
        Dictionary<string, Tensor> Run(bool bf16)
        {
            using var model = new TinyMultiTaskNet(seed: 12, dropout: 0);
            using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(4) with { UseBFloat16 = bf16 }, allowBFloat16OnCpu: true);
            var result = trainer.Train();
            Assert.True(double.IsFinite(result.LastTotalLoss));
            return model.Snapshot();
        }
        var f32 = Run(false);
        var b16 = Run(true);
        try
        {
            Assert.Equal(ScalarType.Float32, b16["stem.weight"].dtype);
            foreach (var key in new[] { "stem.weight", "head_semseg.weight", "head_normals.weight", "norm.weight" })
            {
                var diff = (f32[key] - b16[key]).abs().max().item<float>();
                Assert.True(diff < 0.05f, $"'{key}' differs by {diff} between float32 and bfloat16 training");
            }
        }
        finally { DisposeAll(f32); DisposeAll(b16); }
    }

    /// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
