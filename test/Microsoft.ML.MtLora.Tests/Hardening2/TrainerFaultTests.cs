using System.Diagnostics;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Tests.Training;
using Microsoft.ML.MtLora.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// Faults met by the trainer: a damaged sample mid-run leaves a checkpoint of the steps done (and resuming from it after
/// the data is fixed gives exactly the uninterrupted run), a checkpoint that cannot be written is a warning, and the
/// temporary folder a killed checkpoint write left behind is removed by the next run.
/// </summary>
[Collection(SerialCollection.Name)]
public class TrainerFaultTests
{
    private static MultiTaskTrainerSettings Settings(string? checkpoints, long maxSteps = 8) => MultiTaskTrainerTests.Settings(maxSteps, checkpoints);

    /// <summary>TinyData (4 batches per epoch) whose batch at global position <paramref name="failAt"/> is a damaged sample.</summary>
    private static DelegateBatchSource Damaged(TinyData data, int failAt) => new(data.BatchesPerEpoch, (epoch, skip) => Batches(data, epoch, skip, failAt));

    private static IEnumerable<TrainingBatch> Batches(TinyData data, int epoch, int skip, int failAt)
    {
        int position = epoch * data.BatchesPerEpoch + skip;
        foreach (var batch in data.GetBatches(epoch, skip))
        {
            if (position++ == failAt)
            {
                batch.Dispose();
                throw new PascalSampleException("2008_000004", "/data/JPEGImages/2008_000004.jpg", "cannot decode the image (IncompleteInput).");
            }
            yield return batch;
        }
    }

    [Fact]
    public void ADamagedSampleMidRunLeavesACheckpointFromWhichTheRunContinuesExactly()
    {
        using var dir = Fixture.TempDir();
        Dictionary<string, Tensor> uninterrupted;
        using (var model = new TinyMultiTaskNet(seed: 1))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(null)))
        {
            trainer.Train();
            uninterrupted = model.Snapshot();
        }

        using (var model = new TinyMultiTaskNet(seed: 1))
        using (var trainer = new MultiTaskTrainer(model, Damaged(new TinyData(), failAt: 5), Settings(dir.Path)))
        {
            var e = Assert.Throws<PascalSampleException>(() => trainer.Train());
            Assert.Contains("2008_000004", e.Message);
        }
        var checkpoint = Assert.Single(TrainingCheckpoint.List(dir.Path));
        Assert.Equal(5, TrainingCheckpoint.ReadManifest(checkpoint).GlobalStep); // the five steps before the damaged batch

        // The sample is fixed; the run continues from the checkpoint and ends where the uninterrupted one did.
        using (var model = new TinyMultiTaskNet(seed: 1))
        using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(dir.Path) with { ResumeFrom = dir.Path }))
        {
            Assert.Equal(8, trainer.Train().GlobalStep);
            var resumed = model.Snapshot();
            foreach (var (key, t) in uninterrupted)
                Assert.True(t.eq(resumed[key]).all().item<bool>(), $"'{key}' differs from the uninterrupted run");
        }
    }

    [Fact]
    public void ADamagedFirstBatchWritesNoCheckpoint()
    {
        using var dir = Fixture.TempDir();
        using var model = new TinyMultiTaskNet(seed: 1);
        using var trainer = new MultiTaskTrainer(model, Damaged(new TinyData(), failAt: 0), Settings(dir.Path));
        Assert.Throws<PascalSampleException>(() => trainer.Train());
        Assert.Empty(TrainingCheckpoint.List(dir.Path)); // nothing was learned: no checkpoint to resume from
    }

    [Fact]
    public void ACheckpointWriteFailureIsReportedAndTrainingGoesOn()
    {
        using var dir = Fixture.TempDir();
        File.WriteAllText(Path.Combine(dir.Path, TrainingCheckpoint.FolderName(2)), ""); // the folder cannot be moved into place
        var warnings = new List<string>();
        using var model = new TinyMultiTaskNet(seed: 1);
        using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(dir.Path, maxSteps: 4) with { CheckpointEverySteps = 2, Warning = warnings.Add });
        var result = trainer.Train();
        Assert.Equal(4, result.GlobalStep);
        Assert.StartsWith($"The checkpoint of step 2 could not be written to '{dir.Path}'", Assert.Single(warnings));
        Assert.EndsWith("step-000000004", result.LastCheckpoint);
        Assert.Empty(Directory.GetDirectories(dir.Path, ".step-*"));
    }

    [Fact]
    public void TemporaryFoldersOfAKilledCheckpointWriteAreRemovedByTheNextOne()
    {
        using var dir = Fixture.TempDir();
        // A writer that is gone (a process that has exited), one from before writers were recorded, and one of a live writer.
        using var exited = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        exited.WaitForExit();
        var dead = Path.Combine(dir.Path, $".step-000000003.tmp-{exited.Id}-{Guid.NewGuid():N}");
        var legacy = Path.Combine(dir.Path, $".step-000000002.tmp-{Guid.NewGuid():N}");
        var live = Path.Combine(dir.Path, $".step-000000004.tmp-1-{Guid.NewGuid():N}"); // pid 1 is always running
        foreach (var d in new[] { dead, legacy, live })
        {
            Directory.CreateDirectory(d);
            File.WriteAllText(Path.Combine(d, "model.safetensors"), "half-written");
        }

        using var weights = ones(2, 3);
        TrainingCheckpoint.Save(dir.Path, new TrainingPosition(5, 1, 1, 4, 0), [new("w", weights)], [], keep: 2);

        Assert.False(Directory.Exists(dead));
        Assert.False(Directory.Exists(legacy));
        Assert.True(Directory.Exists(live));
        Assert.Equal(["step-000000005"], TrainingCheckpoint.List(dir.Path).Select(Path.GetFileName));
    }
}
