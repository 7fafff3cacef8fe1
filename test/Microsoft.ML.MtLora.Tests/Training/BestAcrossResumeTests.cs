using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// The best validation survives a resume: it is read back from <c>best/</c> beside the resumed checkpoint and replaced only
/// by a higher score measured the same way. The validation is a scripted score per step (the trainer only compares the
/// numbers it is given), so which validation is better is known exactly.
/// </summary>
[Collection(SerialCollection.Name)]
public class BestAcrossResumeTests
{
    private const string Criterion = "Δm; protocol Reference; tasks semseg,human_parts,sal,normals";

    /// <summary>TinyData: 4 batches per epoch; validation every 5 epochs: steps 20, 40, 60 and the end (64).</summary>
    private static MultiTaskTrainerSettings Settings(string dir, long maxSteps, Dictionary<long, double> scores,
        Dictionary<long, Dictionary<string, Tensor>> seen, TinyMultiTaskNet model, List<string> warnings, string? criterion = Criterion) =>
        MultiTaskTrainerTests.Settings(maxSteps: 1) with
        {
            Epochs = 16,
            MaxSteps = maxSteps,
            ValidateEveryEpochs = 5,
            KeepBest = true,
            CheckpointDirectory = dir,
            ValidationCriterion = criterion,
            Warning = warnings.Add,
            // The validation runs in the trainer's dispose scope: keep the snapshot out of it.
            Validation = (epoch, step) =>
            {
                seen[step] = model.Snapshot().ToDictionary(kv => kv.Key, kv => kv.Value.DetachFromDisposeScope());
                return scores[step];
            },
        };

    /// <summary>Reports on the training thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    private static string BestFile(string dir) => Path.Combine(dir, TrainerValidation.BestFolderName, TrainerValidation.BestFileName);

    /// <summary>best/'s metadata, and whether its tensors are bit-identical to <paramref name="expected"/>.</summary>
    private static (IReadOnlyDictionary<string, string> Metadata, bool Same) ReadBest(string dir, Dictionary<string, Tensor> expected)
    {
        var onDisk = SafeTensors.Load(BestFile(dir), out var metadata);
        try
        {
            return (metadata, expected.All(kv => kv.Value.eq(onDisk[kv.Key]).all().item<bool>()));
        }
        finally { foreach (var t in onDisk.Values) t.Dispose(); }
    }

    private static bool Same(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual) =>
        actual.Count > 0 && actual.All(kv => kv.Value.eq(expected[kv.Key]).all().item<bool>());

    /// <summary>Trains to step 40 (validations at 20: score 5, and 40: score 1), so best/ holds step 20 and the checkpoint step 40.</summary>
    private static void FirstRun(string dir, Dictionary<long, Dictionary<string, Tensor>> seen, string? criterion = Criterion)
    {
        using var model = new TinyMultiTaskNet(seed: 4);
        var warnings = new List<string>();
        using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(dir, 40, new() { [20] = 5.0, [40] = 1.0 }, seen, model, warnings, criterion));
        var result = trainer.Train();
        Assert.Equal(20, result.BestStep);
        Assert.Empty(warnings);
        Assert.Equal("step-000000040", Path.GetFileName(Assert.Single(TrainingCheckpoint.List(dir))));
        var (metadata, same) = ReadBest(dir, seen[20]);
        Assert.Equal("20", metadata["step"]);
        Assert.Equal(criterion ?? "", metadata["criterion"]);
        Assert.True(same);
    }

    private static void DisposeAll(Dictionary<long, Dictionary<string, Tensor>> seen)
    {
        foreach (var s in seen.Values) foreach (var t in s.Values) t.Dispose();
    }

    [Fact]
    public void AResumedRunReplacesTheStoredBestOnlyWithABetterValidation()
    {
        using var dir = Fixture.TempDir();
        var seen = new Dictionary<long, Dictionary<string, Tensor>>();
        try
        {
            FirstRun(dir.Path, seen);

            // Resumed at step 40: the validation at step 60 scores 4, worse than the stored 5 of step 20: best/ stays step 20's,
            // and the kept weights are step 20's, read back from it.
            var warnings = new List<string>();
            ResumeAndCheck(dir.Path, 60, 4.0, seen, warnings, expected: (5, 20, 5.0));
            // Resumed at step 60: the end's validation (step 64) scores 6, better than 5: it replaces best/.
            ResumeAndCheck(dir.Path, 64, 6.0, seen, warnings, expected: (16, 64, 6.0));
            Assert.Empty(warnings);
        }
        finally { DisposeAll(seen); }
    }

    /// <summary>Resumes from <paramref name="dir"/> to <paramref name="maxSteps"/>, whose one validation scores <paramref name="score"/>,
    /// and checks the best (epoch, step, score) in the result, in best/ and in the kept weights.</summary>
    private static void ResumeAndCheck(string dir, long maxSteps, double score, Dictionary<long, Dictionary<string, Tensor>> seen,
        List<string> warnings, (int Epoch, long Step, double Score) expected)
    {
        using var model = new TinyMultiTaskNet(seed: 9);
        using var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(dir, maxSteps, new() { [maxSteps] = score }, seen, model, warnings) with { ResumeFrom = dir });
        var result = trainer.Train();
        Assert.Equal(((int?)expected.Epoch, (long?)expected.Step, (double?)expected.Score), (result.BestEpoch, result.BestStep, result.BestScore));
        var (metadata, same) = ReadBest(dir, seen[expected.Step]);
        Assert.Equal(expected.Step.ToString(System.Globalization.CultureInfo.InvariantCulture), metadata["step"]);
        Assert.Equal(expected.Score.ToString("R", System.Globalization.CultureInfo.InvariantCulture), metadata["score"]);
        Assert.True(same);
        var best = trainer.TakeBestState();
        Assert.NotNull(best);
        try { Assert.True(Same(seen[expected.Step], best)); }
        finally { foreach (var t in best.Values) t.Dispose(); }
    }

    [Fact]
    public void ACheckpointBeforeTheFirstValidationResumesWithoutAWarning()
    {
        using var dir = Fixture.TempDir();
        var seen = new Dictionary<long, Dictionary<string, Tensor>>();
        try
        {
            var warnings = new List<string>();
            // Stopped (as by Ctrl+C) after step 8, in epoch 2: no validation ran, so none is stored.
            using (var cancel = new CancellationTokenSource())
            using (var model = new TinyMultiTaskNet(seed: 4))
            using (var trainer = new MultiTaskTrainer(model, new TinyData(), Settings(dir.Path, 64, [], seen, model, warnings) with
            {
                ProgressEverySteps = 1,
                Progress = new InlineProgress(p => { if (p.Step == 8) cancel.Cancel(); }),
            }))
                Assert.True(trainer.Train(cancel.Token).Cancelled);
            Assert.False(File.Exists(BestFile(dir.Path)));
            using (var model = new TinyMultiTaskNet(seed: 9))
            using (var trainer = new MultiTaskTrainer(model, new TinyData(),
                Settings(dir.Path, 20, new() { [20] = 0.5 }, seen, model, warnings) with { ResumeFrom = dir.Path }))
                Assert.Equal(20, trainer.Train().BestStep);
            Assert.Empty(warnings);
        }
        finally { DisposeAll(seen); }
    }

    [Theory]
    [InlineData("old", "not how it was scored")]           // best/ as versions before the criterion wrote it
    [InlineData("other", "are not comparable")]            // another criterion (here: another protocol)
    [InlineData("missing", "does not exist")]              // no best/ at all
    public void AStoredBestOfUnknownOrOtherCriterionIsNotComparedAndTheFirstValidationSetsIt(string stored, string expectedWarning)
    {
        using var dir = Fixture.TempDir();
        var seen = new Dictionary<long, Dictionary<string, Tensor>>();
        try
        {
            FirstRun(dir.Path, seen);
            var file = BestFile(dir.Path);
            switch (stored)
            {
                case "old":
                    var state = SafeTensors.Load(file, out var metadata);
                    SafeTensors.Save(file, state, metadata.Where(kv => kv.Key != "criterion").ToDictionary());
                    foreach (var t in state.Values) t.Dispose();
                    break;
                case "missing":
                    Directory.Delete(Path.GetDirectoryName(file)!, recursive: true);
                    break;
            }

            var warnings = new List<string>();
            using var model = new TinyMultiTaskNet(seed: 9);
            string criterion = stored == "other" ? Criterion.Replace("Reference", "Native", StringComparison.Ordinal) : Criterion;
            using var trainer = new MultiTaskTrainer(model, new TinyData(),
                Settings(dir.Path, 60, new() { [60] = 4.0 }, seen, model, warnings, criterion) with { ResumeFrom = dir.Path });
            var result = trainer.Train();                                              // the old checkpoint resumes

            var warning = Assert.Single(warnings);
            Assert.Contains(expectedWarning, warning);
            Assert.Contains("the first validation after the resume sets it", warning);
            // Score 4 is worse than the stored 5, but the stored one is not comparable: step 60 is the best now.
            Assert.Equal(((int?)15, (long?)60, (double?)4.0), (result.BestEpoch, result.BestStep, result.BestScore));
            var (written, same) = ReadBest(dir.Path, seen[60]);
            Assert.Equal("60", written["step"]);
            Assert.Equal(criterion, written["criterion"]);
            Assert.True(same);
        }
        finally { DisposeAll(seen); }
    }
}
