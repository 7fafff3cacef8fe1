using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using MtLora.Cli;
using MtLora.Cli.Commands;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class EvaluateCommandTests
{
    private static (int Code, string Out, string Err) Run(string? predictions, string? baselines = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = EvaluateCommand.Run(predictions, baselines, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("metrics", "metrics_io.safetensors", "metrics_expected.json")]
    [InlineData("tiny4", "io.safetensors", "meta.json")]
    public void PrintsOneJsonObjectWithTheReferenceMetrics(string folder, string file, string expectedFile)
    {
        var (code, output, error) = Run(Fixture.Path(folder, file));
        Assert.True(code == 0, error);
        var json = JsonNode.Parse(output)!.AsObject();
        var expected = JsonNode.Parse(File.ReadAllText(Fixture.Path(folder, expectedFile)))!["metrics"]!;
        foreach (var (task, metric) in new[] { ("semseg", "mIoU"), ("human_parts", "mIoU"), ("sal", "mIoU"), ("sal", "maxF"), ("normals", "mean"), ("normals", "rmse") })
            Assert.Equal(expected[task]![metric]!.GetValue<double>(), json[task]![metric]!.GetValue<double>(), 1e-5);
        Assert.True(json.ContainsKey("delta_m"));
    }

    [Fact]
    public void BaselinesOptionChoosesTheTasksOfDeltaM()
    {
        var (code, output, _) = Run(Fixture.Path("metrics", "metrics_io.safetensors"), "none");
        Assert.Equal(0, code);
        Assert.False(JsonNode.Parse(output)!.AsObject().ContainsKey("delta_m"));

        (code, output, _) = Run(Fixture.Path("metrics", "metrics_io.safetensors"), "semseg=20");
        Assert.Equal(0, code);
        var json = JsonNode.Parse(output)!;
        double miou = json["semseg"]!["mIoU"]!.GetValue<double>();
        Assert.Equal((miou * 100 - 20) / 20 * 100, json["delta_m"]!.GetValue<double>(), 1e-9);
    }

    [Fact]
    public void BadInputGivesOneLineAndNonZeroExit()
    {
        var (code, output, error) = Run(null);
        Assert.Equal(2, code);
        Assert.Contains("--predictions", error);
        Assert.Empty(output);

        (code, _, error) = Run("/nonexistent/preds.safetensors");
        Assert.Equal(2, code); // bad input: one line, exit code 2 like every verb
        Assert.Contains("/nonexistent/preds.safetensors", error);

        (code, _, error) = Run(Fixture.Path("metrics", "metrics_io.safetensors"), "semseg:3");
        Assert.Equal(2, code);
        Assert.Contains("--baselines", error);

        using var dir = Fixture.TempDir();
        var path = dir.File("p.safetensors");
        using (var o = zeros(2, 21, 4, 4))
        using (var t = zeros(2, 1, 4, 5))
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["out.semseg"] = o, ["target.semseg"] = t });
        (code, output, error) = Run(path);
        Assert.Equal(2, code); // bad input: one line, exit code 2 like every verb
        Assert.Empty(output);
        Assert.Contains("target.semseg", error);
        Assert.Contains("(2, 1, 4, 5)", error);
        Assert.Single(error.Trim().Split('\n'));

        using (var o = zeros(2, 1, 4, 4))
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["out.sal"] = o });
        (code, _, error) = Run(path);
        Assert.Equal(2, code); // bad input: one line, exit code 2 like every verb
        Assert.Contains("target.sal", error);
    }

    [Fact]
    public void VerbIsRegistered()
    {
        var result = Program.BuildRoot().Parse(["evaluate", "--predictions", "x.safetensors", "--baselines", "none"]);
        Assert.Empty(result.Errors);
        Assert.Equal("evaluate", result.CommandResult.Command.Name);
    }
}
