using Microsoft.ML.MtLora.Visualization;

namespace Microsoft.ML.MtLora.Tests.Visualization;

public class TrainingLogTests
{
    internal static List<TrainingCurvePoint> Points(int count)
    {
        var points = new List<TrainingCurvePoint>();
        for (int i = 0; i < count; i++)
        {
            double decay = Math.Exp(-i / 30.0);
            points.Add(new TrainingCurvePoint(
                Step: i * 10,
                Epoch: i / 25,
                TaskLosses: new Dictionary<string, double>
                {
                    ["normals"] = 0.3 * decay + 0.05,
                    ["semseg"] = 2.5 * decay + 0.2 + 0.05 * Math.Sin(i),
                    ["sal"] = 0.6 * decay + 0.1,
                    ["human_parts"] = 1.8 * decay + 0.3,
                },
                TotalLoss: 10 * decay + 1.3,
                LearningRate: i < 10 ? 5e-4 * (i + 1) / 10 : 5e-4 * 0.5 * (1 + Math.Cos(Math.PI * (i - 10) / (count - 10)))));
        }
        return points;
    }

    [Fact]
    public void CsvRoundTripsExactly()
    {
        var points = Points(40);
        // Edge values: a missing task, NaN, a tiny learning rate, an extra task name.
        points.Add(new TrainingCurvePoint(1000, 2, new Dictionary<string, double> { ["semseg"] = double.NaN, ["depth"] = 0.1 + 0.2 }, 1.0 / 3, 1e-12));
        using var dir = Fixture.TempDir();
        var path = dir.File("logs/training_log.csv");
        TrainingLog.WriteCsv(path, points);

        var header = File.ReadLines(path).First();
        Assert.Equal("step,epoch,learning_rate,total_loss,loss_semseg,loss_human_parts,loss_sal,loss_normals,loss_depth", header);

        var read = TrainingLog.ReadCsv(path);
        Assert.Equal(points.Count, read.Count);
        for (int i = 0; i < points.Count; i++)
        {
            Assert.Equal(points[i].Step, read[i].Step);
            Assert.Equal(points[i].Epoch, read[i].Epoch);
            Assert.Equal(points[i].TotalLoss, read[i].TotalLoss);
            Assert.Equal(points[i].LearningRate, read[i].LearningRate);
            Assert.Equal(points[i].TaskLosses.OrderBy(k => k.Key), read[i].TaskLosses.OrderBy(k => k.Key));
        }
        Assert.True(double.IsNaN(read[^1].TaskLosses["semseg"]));
        Assert.False(read[^1].TaskLosses.ContainsKey("normals"));
    }

    [Fact]
    public void MalformedCsvNamesTheLineAndColumn()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("bad.csv");
        File.WriteAllText(path, "step,epoch,learning_rate,total_loss,loss_semseg\n1,0,0.001,2.5,1.0\n2,0,0.001,abc,1.0\n");
        var e = Assert.Throws<InvalidDataException>(() => TrainingLog.ReadCsv(path));
        Assert.Contains("line 3", e.Message);
        Assert.Contains("total_loss", e.Message);
        Assert.Contains(path, e.Message);

        File.WriteAllText(path, "step,epoch,lr,total_loss\n");
        Assert.Contains("learning_rate", Assert.Throws<InvalidDataException>(() => TrainingLog.ReadCsv(path)).Message);

        File.WriteAllText(path, "step,epoch,learning_rate,total_loss,semseg\n");
        Assert.Contains("loss_<task>", Assert.Throws<InvalidDataException>(() => TrainingLog.ReadCsv(path)).Message);

        File.WriteAllText(path, "step,epoch,learning_rate,total_loss\n1,0,0.1\n");
        Assert.Contains("line 2", Assert.Throws<InvalidDataException>(() => TrainingLog.ReadCsv(path)).Message);

        Assert.Throws<FileNotFoundException>(() => TrainingLog.ReadCsv(dir.File("missing.csv")));
        var comma = new TrainingCurvePoint(0, 0, new Dictionary<string, double> { ["a,b"] = 1 }, 1, 1);
        Assert.Throws<ArgumentException>(() => TrainingLog.WriteCsv(path, [comma]));
    }
}
