using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>
/// <c>train --resume</c> against the settings a checkpoint records: a change that would not continue the run is one line
/// naming the option with both values, before any data is read; a legitimate one is a warning; a checkpoint of an earlier
/// version resumes with a note. And the report after a resume that keeps the best from before it says so, with its score.
/// </summary>
[Collection(SerialCollection.Name)]
public class ResumeSettingsCliTests(TinyPascal data) : IClassFixture<TinyPascal>
{
    /// <summary>A command line with <paramref name="option"/> set to <paramref name="value"/> (replaced where given, else added).</summary>
    private static string[] With(string[] args, string option, string value)
    {
        var list = args.ToList();
        int at = list.IndexOf(option);
        if (at >= 0) list[at + 1] = value;
        else list.AddRange([option, value]);
        return [.. list];
    }

    [Fact]
    public void AResumeIsCheckedAgainstTheCheckpointsSettingsAndReportsTheBestFromBeforeIt()
    {
        using var dir = Fixture.TempDir();
        string Folder(string name) => Path.Combine(dir.Path, name);
        var checkpoints = Folder("ckpt");
        var step2 = Path.Combine(checkpoints, TrainingCheckpoint.FolderName(2));

        // The first run: epoch 1 of 2 (2 steps), validated after it (Δm with the paper's baselines), so best/ holds step 2.
        var (code, _, stderr) = CliRunner.Run(data.Train(Folder("a.zip"), "--epochs", "2", "--max-steps", "2", "--val-every", "1", "--keep", "best",
            "--checkpoint-dir", checkpoints));
        Assert.True(code == 0, stderr);
        var recorded = TrainingCheckpoint.ReadSettings(step2)!;
        Assert.Equal("semseg,human_parts,sal,normals", recorded[RunSettings.Tasks]);
        Assert.Equal("128", recorded[RunSettings.ImageSize]);
        Assert.Equal("2", recorded[RunSettings.BatchSize]);
        Assert.Equal("3", recorded[RunSettings.Seed]);
        Assert.Equal("rotation=-20..20,scale=0.75..1.25", recorded[RunSettings.Augmentation]);
        Assert.Equal("single-pass", recorded[RunSettings.Geometry]);
        Assert.Equal("1", recorded[RunSettings.AccumulationSteps]);

        // What would not continue the run is refused, naming the option, the checkpoint's value and the given one; nothing is written.
        foreach (var (option, given, was) in new[]
        {
            ("--seed", "4", "3"), ("--batch-size", "4", "2"), ("--image-size", "64", "128"), ("--tasks", "semseg,normals", "semseg,human_parts,sal,normals"),
            ("--augmentation-draws", "nyud", "rotation=-20..20,scale=0.75..1.25"),
        })
        {
            (code, _, stderr) = CliRunner.Run(With(data.Train(Folder("refused.zip"), "--epochs", "2", "--resume", checkpoints), option, given));
            Assert.Equal(2, code);
            var shown = option == "--augmentation-draws" ? "rotation=0,scale=1|1.2|1.5" : given;
            Assert.Equal($"mtlora train: error: Cannot resume from '{step2}': {option} is {shown}, but the checkpoint was written with {was}. "
                + "The resumed run would not continue the checkpoint's run: give the checkpoint's value, or start a new run without resuming.", stderr.Trim());
            Assert.False(File.Exists(Folder("refused.zip")));
        }

        // A best that no later validation beats (its score raised in best/'s metadata): the resumed run keeps it.
        var bestFile = Path.Combine(checkpoints, TrainerValidation.BestFolderName, TrainerValidation.BestFileName);
        var best = SafeTensors.Load(bestFile, out var metadata);
        try
        {
            Assert.Equal("2", metadata["step"]);
            SafeTensors.Save(bestFile, best, new Dictionary<string, string>(metadata) { ["score"] = "1234.5" });
        }
        finally { foreach (var t in best.Values) t.Dispose(); }

        // Another geometry and accumulation continue the same batches: warnings, and the text report names the kept best.
        var text = data.Train(Folder("b.zip"), "--epochs", "2", "--val-every", "1", "--keep", "best", "--resume", checkpoints,
            "--augmentation", "reference-two-step", "--accumulation-steps", "2").Where(a => a != "--json").ToArray();
        (code, var stdout, stderr) = CliRunner.Run(text);
        Assert.True(code == 0, stderr);
        Assert.Contains($"mtlora train: warning: MTLoRA: Resuming '{step2}': --augmentation is reference-two-step, but the checkpoint was written with single-pass; "
            + "the run continues with reference-two-step: both geometries apply the same draws to the same samples, so the images differ only by interpolation.", stderr);
        Assert.Contains($"mtlora train: warning: MTLoRA: Resuming '{step2}': --accumulation-steps is 2, but the checkpoint was written with 1; the run continues with 2: ", stderr);
        Assert.DoesNotContain("does not record", stderr);
        Assert.Contains("  best        epoch 1 (step 2), before the resume: Δm +1234.50 % (its per-task metrics are not stored; the validation above scored these weights again)", stdout);
        Assert.Contains("  last        epoch 2 (step 4): ", stdout);
        Assert.Contains("  saved       the best weights;", stdout);

        // A checkpoint of an earlier version (no settings in its manifest) resumes, with one line saying what was not checked;
        // the seed, which every manifest records, is still compared.
        var manifestPath = Path.Combine(step2, TrainingCheckpoint.ManifestFileName);
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        Assert.True(manifest.Remove("settings"));
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        Assert.Null(TrainingCheckpoint.ReadSettings(step2));
        (code, _, stderr) = CliRunner.Run(With(data.Train(Folder("c.zip"), "--epochs", "2", "--resume", checkpoints), "--seed", "4"));
        Assert.True(code == 2, stderr);
        Assert.Contains($"Cannot resume from '{step2}': --seed is 4, but the checkpoint was written with 3.", stderr);
        (code, stdout, stderr) = CliRunner.Run(data.Train(Folder("c.zip"), "--epochs", "2", "--val-every", "1", "--keep", "best", "--resume", checkpoints));
        Assert.True(code == 0, stderr);
        Assert.Single(stderr.Split('\n'), l => l.Contains("does not record", StringComparison.Ordinal));
        Assert.Contains($"mtlora train: warning: MTLoRA: Resuming '{step2}': the checkpoint does not record --tasks, --image-size, --batch-size, MtLoraOptions.Shuffle, "
            + "--augmentation-draws, --augmentation, --accumulation-steps (it was written by an earlier version of Microsoft.ML.MtLora), so the resumed run could not be checked against them.", stderr);
        var validation = JsonNode.Parse(stdout)!["validation"]!;
        Assert.Null(validation["best"]);
        Assert.Equal("best", validation["kept"]!.GetValue<string>());
        var earlier = validation["best_before_resume"]!;
        Assert.Equal(1, earlier["epoch"]!.GetValue<int>());
        Assert.Equal(2, earlier["step"]!.GetValue<long>());
        Assert.Equal("Δm", earlier["measure"]!.GetValue<string>());
        Assert.Equal(1234.5, earlier["value"]!.GetValue<double>());
    }
}
