using Microsoft.ML.MtLora.Tests.MlNet;
using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Data.Folder;

// Fit seeds and draws from torch's process-wide generator.
[Collection(SerialCollection.Name)]
public class DenseTaskFolderTrainingTests
{
    private static readonly DenseTaskDescriptor Defects = DenseTaskDescriptor.Segmentation("defects", classes: 5);
    private static readonly DenseTaskDescriptor Range = DenseTaskDescriptor.Depth("range");

    /// <summary>Four 24×20 images; defects: vertical bands of classes 0..4 with an ignored row; range: 16-bit millimetre
    /// PNGs growing down the image, with holes (0).</summary>
    internal static void WriteFolder(string root, int count)
    {
        const int w = 24, h = 20;
        for (int k = 0; k < count; k++)
        {
            string id = $"img{k:D2}";
            FolderFiles.Image(Path.Combine(root, "images", id + ".png"), w, h, 10 + k);
            var classes = new int[w * h];
            var mm = new int[w * h];
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    classes[y * w + x] = y == 0 ? 255 : (x + k) / 5 % 5;
                    mm[y * w + x] = (x + y + k) % 11 == 0 ? 0 : 1000 + 100 * y;
                }
            }
            FolderFiles.Palette(Path.Combine(root, "defects", id + ".png"), w, h, classes);
            FolderFiles.Gray16(Path.Combine(root, "range", id + ".png"), w, h, mm);
        }
    }

    [Fact]
    public void Fit_trains_two_custom_tasks_from_a_folder_and_the_saved_model_evaluates_the_same()
    {
        using var dir = Fixture.TempDir();
        WriteFolder(dir.File("data"), 4);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadDenseTaskFolder(dir.File("data"), [Defects, Range]);

        var reports = new List<TrainingProgress>();
        var options = MtLoraEstimatorTests.TinyOptions();
        options.Network.Tasks = [Defects, Range];
        options.Epochs = 1;
        options.WarmupEpochs = 0;
        options.PretrainedWeightsPath = Fixture.Path("swin_ms", "swin_ms_format.pth");
        options.Progress = new MtLoraEstimatorTests.SyncProgress<TrainingProgress>(reports.Add);
        using var model = ml.MultiTask().Trainers.MtLora(options).Fit(data);

        Assert.Equal(2, reports.Count);                                               // 4 images, batch 2
        Assert.All(reports, r => Assert.Equal(["defects", "range"], r.TaskLosses.Keys.Order()));
        Assert.All(reports, r => Assert.All(r.TaskLosses.Values, v => Assert.True(double.IsFinite(v) && v > 0, $"{v}")));

        var before = ml.MultiTask().Evaluate(model, data);
        var defects = Assert.Single(before.OtherSegmentations);
        Assert.Equal("defects", defects.Key.Name);
        Assert.Equal(5, defects.Value.PerClassIoU.Count);
        var range = Assert.Single(before.Depths).Value;
        Assert.True(double.IsFinite(range.Rmse) && range.Rmse > 0 && double.IsFinite(range.LogRmse), $"{range}");
        // Scored at the network's 128×128: the holes, (x + y + k) % 11 == 0, about 1/11 of the pixels, are left out (and so
        // log-RMSE stays finite).
        Assert.InRange(range.PixelCount, 0.85 * 4 * 128 * 128, 0.95 * 4 * 128 * 128);

        var zip = dir.File("model.zip");
        ml.Model.Save(model, data.Schema, zip);
        var loaded = new MLContext(seed: 2).Model.Load(zip, out _);
        try
        {
            var after = ml.MultiTask().Evaluate(loaded, data);
            Assert.Equal(before.ToJson().ToJsonString(), after.ToJson().ToJsonString());
        }
        finally { (loaded as IDisposable)?.Dispose(); }
    }
}
