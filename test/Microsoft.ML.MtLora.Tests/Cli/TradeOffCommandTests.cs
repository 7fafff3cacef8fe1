using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Modeling;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests.Cli;

// Training seeds torch's global generator: run alone, so no other test's random draws move under it.
[Collection(SerialCollection.Name)]
public class TradeOffCommandTests
{
    private static long ExpectedTrainable(NetworkMode mode)
    {
        var options = MtLoraNetworkOptions.Load(Fixture.Path("tiny4", "config.json"));
        options.Mode = mode;
        using var meta = new MultiTaskSwin(options, torch.META);
        return meta.CountParameters().Trainable;
    }

    [Fact]
    public void TradeOffEvaluatesEveryModelAndPlotsTheirParametersAgainstDeltaM()
    {
        using var dir = Fixture.TempDir();
        var data = Path.Combine(dir.Path, "data");
        SyntheticPascal.Generate(data, new SyntheticPascalOptions { TrainCount = 8, ValCount = 4, Width = 64, Height = 48, Seed = 5 });
        var models = new Dictionary<string, NetworkMode> { ["mtlora"] = NetworkMode.MtLora, ["decoders_only"] = NetworkMode.DecodersOnly };
        foreach (var mode in models.Keys)
        {
            var (trainCode, _, trainErr) = CliVerbTests.Invoke("train", "--data", data, "--config", Fixture.Path("tiny4", "config.json"),
                "--mode", mode, "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--device", "cpu", "--seed", "1",
                "--out", Path.Combine(dir.Path, $"{mode}.zip"));
            Assert.True(trainCode == 0, trainErr);
        }
        string a = Path.Combine(dir.Path, "mtlora.zip"), b = Path.Combine(dir.Path, "decoders_only.zip");
        var html = Path.Combine(dir.Path, "tradeoff.html");

        var (code, stdout, stderr) = CliVerbTests.Invoke("tradeoff", "--model", a, "--model", b, "--label", "mtlora.zip=MTLoRA r=8",
            "--data", data, "--out", html);

        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal(html, json["out"]!.GetValue<string>());
        var rows = json["models"]!.AsArray().Select(r => r!.AsObject()).ToArray();
        Assert.Equal([a, b], rows.Select(r => r["model"]!.GetValue<string>()));
        Assert.Equal(["MTLoRA r=8", "decoders_only"], rows.Select(r => r["label"]!.GetValue<string>()));
        long[] trainable = rows.Select(r => r["trainable"]!.GetValue<long>()).ToArray();
        Assert.Equal([ExpectedTrainable(NetworkMode.MtLora), ExpectedTrainable(NetworkMode.DecodersOnly)], trainable);
        Assert.NotEqual(trainable[0], trainable[1]);
        foreach (var row in rows)
        {
            double deltaM = row["delta_m"]!.GetValue<double>();
            Assert.True(double.IsFinite(deltaM), $"delta_m is {deltaM}");
            // The plotted Δm is the one of the metrics (against the paper's baselines by default).
            Assert.Equal(row["metrics"]!["delta_m"]!.GetValue<double>(), deltaM);
            Assert.True(row["metrics"]!.AsObject().ContainsKey("semseg"));
        }
        var text = File.ReadAllText(html);
        Assert.Contains("<html", text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("MTLoRA r=8", text);
        Assert.Contains("decoders_only", text);

        // No baseline, no Δm to plot: a clear error rather than a point at 0.
        var noBaselineHtml = Path.Combine(dir.Path, "none.html");
        (code, stdout, stderr) = CliVerbTests.Invoke("tradeoff", "--model", a, "--data", data, "--baselines", "none", "--out", noBaselineHtml);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains("delta_m", stderr);
        Assert.False(File.Exists(noBaselineHtml));
    }

    [Theory]
    [InlineData("--model {missing} --data {dir} --out {dir}/t.html", "does not exist")]
    [InlineData("--model {damaged} --data {missing} --out {dir}/t.html", "--data")]
    [InlineData("--model {damaged} --data {dir} --out {dir}/t.html", "not a readable")]
    [InlineData("--model {damaged} --label other.zip=x --data {dir} --out {dir}/t.html", "--label")]
    [InlineData("--model {damaged} --data {dir} --baselines semseg=abc --out {dir}/t.html", "--baselines")]
    public void UserErrorsGiveOneLineAndExitCode2(string command, string expected)
    {
        using var dir = Fixture.TempDir();
        var damaged = Path.Combine(dir.Path, "damaged.zip");
        File.WriteAllText(damaged, "not a zip");
        var args = command.Split(' ').Select(s => s
            .Replace("{missing}", Path.Combine(dir.Path, "missing.zip"))
            .Replace("{damaged}", damaged)
            .Replace("{dir}", dir.Path)).Prepend("tradeoff").ToArray();
        var (code, stdout, stderr) = CliVerbTests.Invoke(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, line);
        Assert.False(File.Exists(Path.Combine(dir.Path, "t.html")));
    }
}
