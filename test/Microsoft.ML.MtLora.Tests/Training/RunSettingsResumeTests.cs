using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// The run settings a checkpoint records (<see cref="RunSettings"/>) and what a resume does with them: a change that would
/// not continue the run is refused with one line, a legitimate one warns, and a checkpoint written before the settings
/// were recorded still resumes, with one note.
/// </summary>
[Collection(SerialCollection.Name)]
public class RunSettingsResumeTests
{
    private static MtLoraOptions Options() => new() { Network = new MtLoraNetworkOptions() };

    /// <summary>The tiny trainer's settings (seed 11) with the run settings of <paramref name="options"/>.</summary>
    private static MultiTaskTrainerSettings Settings(long maxSteps, string? checkpoints, MtLoraOptions options, List<string> warnings, int seed = 11) =>
        MultiTaskTrainerTests.Settings(maxSteps, checkpoints) with { Seed = seed, RunSettings = RunSettings.Of(options, seed), Warning = warnings.Add };

    private static long Train(MultiTaskTrainerSettings settings)
    {
        using var model = new TinyMultiTaskNet(seed: 5);
        using var trainer = new MultiTaskTrainer(model, new TinyData(), settings);
        return trainer.Train().GlobalStep;
    }

    [Fact]
    public void TheManifestRecordsTheSettingsAndASameRunResumesSilently()
    {
        using var dir = Fixture.TempDir();
        var warnings = new List<string>();
        Assert.Equal(2, Train(Settings(2, dir.Path, Options(), warnings)));
        var folder = Path.Combine(dir.Path, TrainingCheckpoint.FolderName(2));
        var settings = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, TrainingCheckpoint.ManifestFileName)))!["settings"]!.AsObject();
        // MtLoraOptions' defaults: the paper's PASCAL tasks at 448 px, batch 32, the PASCAL-Context draws, single pass.
        Assert.Equal(
            """{"tasks":"semseg,human_parts,sal,normals","image_size":"448","batch_size":"32","seed":"11","shuffle":"true","augmentation":"rotation=-20..20,scale=0.75..1.25","augmentation_geometry":"single-pass","accumulation_steps":"1"}""",
            settings.ToJsonString());
        Assert.Equal(settings.Count, TrainingCheckpoint.ReadManifest(folder).Settings!.Count);

        // The same draws given by hand are the same run.
        var same = Options();
        same.AugmentationDraws = AugmentationDraws.Uniform(-20, 20, 0.75, 1.25);
        Assert.Equal(4, Train(Settings(4, null, same, warnings) with { ResumeFrom = dir.Path }));
        Assert.Empty(warnings);
    }

    [Fact]
    public void AChangeThatWouldNotContinueTheRunIsRefusedWithOneLine()
    {
        using var dir = Fixture.TempDir();
        var warnings = new List<string>();
        Train(Settings(2, dir.Path, Options(), warnings));
        var folder = Path.Combine(dir.Path, TrainingCheckpoint.FolderName(2));

        string Refusal(Action<MtLoraOptions> change, int seed = 11)
        {
            var o = Options();
            change(o);
            var e = Assert.Throws<InvalidOperationException>(() => Train(Settings(4, null, o, warnings, seed) with { ResumeFrom = dir.Path }));
            Assert.DoesNotContain('\n', e.Message);
            return e.Message;
        }
        const string Tail = ". The resumed run would not continue the checkpoint's run: give the checkpoint's value, or start a new run without resuming.";
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.BatchSize is 16, but the checkpoint was written with 32{Tail}", Refusal(o => o.BatchSize = 16));
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.Seed is 12, but the checkpoint was written with 11{Tail}", Refusal(_ => { }, seed: 12));
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.Shuffle is false, but the checkpoint was written with true{Tail}", Refusal(o => o.Shuffle = false));
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.AugmentationDraws is rotation=0,scale=1|1.2|1.5, but the checkpoint was written with rotation=-20..20,scale=0.75..1.25{Tail}",
            Refusal(o => o.AugmentationDraws = AugmentationDraws.Nyud));
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.AugmentationDraws is none (Augment = false), but the checkpoint was written with rotation=-20..20,scale=0.75..1.25{Tail}",
            Refusal(o => o.Augment = false));
        // Several at once: one line naming each.
        Assert.Equal($"Cannot resume from '{folder}': MtLoraOptions.Network.Tasks is semseg,normals, but the checkpoint was written with semseg,human_parts,sal,normals; "
            + "MtLoraOptions.Network.ImageSize is 224, but the checkpoint was written with 448. The resumed run would not continue the checkpoint's run: "
            + "give the checkpoint's values, or start a new run without resuming.",
            Refusal(o => { o.Network.Tasks = [DenseTaskDescriptor.Pascal[0], DenseTaskDescriptor.Pascal[3]]; o.Network.ImageSize = 224; }));
        Assert.Empty(warnings);
        // The option names come from the caller (mtlora train names its command-line options).
        var (refusal, _) = RunSettings.Compare(folder, TrainingCheckpoint.ReadSettings(folder), RunSettings.Of(new MtLoraOptions { BatchSize = 8 }, 11, m => m == "BatchSize" ? "--batch-size" : null));
        Assert.StartsWith($"Cannot resume from '{folder}': --batch-size is 8, but the checkpoint was written with 32.", refusal);
    }

    [Fact]
    public void ALegitimateChangeWarnsAndTheRunContinues()
    {
        using var dir = Fixture.TempDir();
        var warnings = new List<string>();
        Train(Settings(2, dir.Path, Options(), warnings));
        var folder = Path.Combine(dir.Path, TrainingCheckpoint.FolderName(2));
        var o = Options();
        o.AugmentationGeometry = AugmentationGeometry.ReferenceTwoStep;
        o.AccumulationSteps = 2;
        Assert.Equal(4, Train(Settings(4, null, o, warnings) with { ResumeFrom = dir.Path }));
        Assert.Equal(
        [
            $"Resuming '{folder}': MtLoraOptions.AugmentationGeometry is reference-two-step, but the checkpoint was written with single-pass; the run continues with "
                + "reference-two-step: both geometries apply the same draws to the same samples, so the images differ only by interpolation.",
            $"Resuming '{folder}': MtLoraOptions.AccumulationSteps is 2, but the checkpoint was written with 1; the run continues with 2: the batches and the "
                + "learning rate stay the same; the gradients differ by float rounding and by BatchNorm statistics taken per micro-batch.",
        ], warnings);
    }

    [Fact]
    public void ACheckpointWithoutSettingsResumesWithANoteAndItsSeedIsStillChecked()
    {
        using var dir = Fixture.TempDir();
        var warnings = new List<string>();
        // A format-1 manifest as earlier versions wrote it: no "settings" (not covered by the files' SHA-256).
        Train(MultiTaskTrainerTests.Settings(2, dir.Path));
        var folder = Path.Combine(dir.Path, TrainingCheckpoint.FolderName(2));
        var manifestPath = Path.Combine(folder, TrainingCheckpoint.ManifestFileName);
        Assert.Null(JsonNode.Parse(File.ReadAllText(manifestPath))!["settings"]);
        Assert.Null(TrainingCheckpoint.ReadManifest(folder).Settings);

        var e = Assert.Throws<InvalidOperationException>(() => Train(Settings(4, null, Options(), warnings, seed: 12) with { ResumeFrom = dir.Path }));
        Assert.StartsWith($"Cannot resume from '{folder}': MtLoraOptions.Seed is 12, but the checkpoint was written with 11.", e.Message);

        Assert.Equal(4, Train(Settings(4, null, Options(), warnings) with { ResumeFrom = dir.Path }));
        Assert.Equal(
            $"Resuming '{folder}': the checkpoint does not record MtLoraOptions.Network.Tasks, MtLoraOptions.Network.ImageSize, MtLoraOptions.BatchSize, "
            + "MtLoraOptions.Shuffle, MtLoraOptions.AugmentationDraws, MtLoraOptions.AugmentationGeometry, MtLoraOptions.AccumulationSteps "
            + "(it was written by an earlier version of Microsoft.ML.MtLora), so the resumed run could not be checked against them.",
            Assert.Single(warnings));

        // A damaged settings field is named.
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        manifest["settings"] = 5;
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        var damaged = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.ReadSettings(folder));
        Assert.Equal($"Checkpoint manifest '{manifestPath}' is damaged: field 'settings' is not an object.", damaged.Message);
    }
}
