using Microsoft.ML.MtLora.Tests.Data.Folder;

namespace Microsoft.ML.MtLora.Tests.Samples;

/// <summary>Runs the OwnTasks sample in-process: on its built-in synthetic folder and on a folder of the caller's.</summary>
[Collection(SerialCollection.Name)] // the samples print to the console, which these tests redirect
public class OwnTasksSampleTests
{
    private static readonly DenseTaskDescriptor[] Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range")];

    [Fact]
    public void Without_a_folder_it_writes_a_synthetic_one_trains_saves_reloads_and_evaluates_the_same()
    {
        using var dir = Fixture.TempDir();
        var (code, stdout, stderr) = SampleRunner.Run("OwnTasks", "--out", dir.Path, "--epochs", "2", "--device", "cpu");

        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("wrote a synthetic one", stdout);
        Assert.Contains("6 training and 2 validation images", stdout);
        Assert.Contains("evaluates to the same metrics", stdout);
        Assert.Contains("defects", stdout);

        // The synthetic folder reads back through the loader, and the saved model scores its validation split.
        var ml = new MLContext(seed: 0);
        var val = ml.Data.LoadDenseTaskFolder(Path.Combine(dir.Path, "synthetic"), Tasks, "val");
        Assert.Equal(["part006", "part007"], val.Ids);
        var model = ml.Model.Load(Path.Combine(dir.Path, "model.zip"), out _);
        try
        {
            var metrics = ml.MultiTask().Evaluate(model, val);
            Assert.Equal(5, Assert.Single(metrics.OtherSegmentations).Value.PerClassIoU.Count);
            var range = Assert.Single(metrics.Depths).Value;
            Assert.True(double.IsFinite(range.Rmse) && double.IsFinite(range.LogRmse) && range.PixelCount > 0, $"{range}");
        }
        finally { (model as IDisposable)?.Dispose(); }
    }

    [Fact]
    public void On_a_given_folder_without_splits_it_trains_and_evaluates_on_every_image()
    {
        using var dir = Fixture.TempDir();
        DenseTaskFolderTrainingTests.WriteFolder(dir.File("parts"), 4);
        var (code, stdout, stderr) = SampleRunner.Run("OwnTasks", dir.File("parts"), "--out", dir.File("run"),
            "--backbone", Fixture.Path("swin_ms", "swin_ms_format.pth"), "--config", Fixture.Path("tiny4", "config.json"),
            "--epochs", "1", "--batch", "2", "--device", "cpu");

        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("4 images (no splits/", stdout);
        Assert.DoesNotContain("random weights", stdout);
        Assert.Contains("evaluates to the same metrics", stdout);
        Assert.True(File.Exists(dir.File("run/model.zip")));
    }

    [Fact]
    public void A_missing_folder_is_one_line_and_exit_code_2()
    {
        using var dir = Fixture.TempDir();
        var (code, stdout, stderr) = SampleRunner.Run("OwnTasks", dir.File("nope"), "--out", dir.File("run"));
        Assert.Equal(2, code);
        Assert.StartsWith($"error: folder '{dir.File("nope")}' does not exist", stderr);
        Assert.Equal("", stdout);
    }
}
