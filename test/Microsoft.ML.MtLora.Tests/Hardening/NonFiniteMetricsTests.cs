using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// Issue #15: a network that outputs NaN gives metrics that are not numbers; the JSON writer says so (null and a
/// <c>non_finite</c> note) instead of failing with .NET's "cannot write NaN as JSON" after a whole evaluation.
/// </summary>
public class NonFiniteMetricsTests
{
    [Fact]
    public void NanOutputsGiveNullMetricsWithANoteInsteadOfAJsonFailure()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("nan.safetensors");
        using (var output = full(2, 3, 4, 4, float.NaN))
        using (var target = zeros(2, 3, 4, 4))
        {
            target[.., 2] = tensor(1f); // valid unit normals (0, 0, 1)
            SafeTensors.Save(path, new Dictionary<string, Tensor> { ["out.normals"] = output, ["target.normals"] = target });
        }
        var (code, stdout, stderr) = CliRunner.Run("evaluate", "--predictions", path, "--baselines", "normals=17.97");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Null(json["normals"]!["mean"]);
        Assert.Null(json["delta_m"]);
        var notes = json["non_finite"]!.AsObject();
        Assert.Equal("NaN", notes["normals.mean"]!.GetValue<string>());
        Assert.Equal("NaN", notes["delta_m"]!.GetValue<string>());
        // Finite metrics are written as numbers: the share of pixels within 11.25° is 0 %.
        Assert.Equal(0, json["normals"]!["11.25"]!.GetValue<double>());
    }
}
