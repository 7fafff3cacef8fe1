using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using static TorchSharp.torch;

using static Microsoft.ML.MtLora.Tests.CliRunner;
namespace Microsoft.ML.MtLora.Tests.Modeling;

public class ModelingCommandsTests
{
    [Theory]
    [InlineData("mtlora_r64", "{}")]
    [InlineData("mtlora_plus_r8", "{\"mtlora_plus\": true, \"shared_rank\": 8, \"task_rank\": 8}")]
    [InlineData("decoders_only", "{\"mode\": \"decoders_only\"}")]
    [InlineData("single_task_sal", "{\"mode\": \"full_finetune\", \"tasks\": [\"sal\"]}")]
    public void DescribeReproducesReferenceCounts(string row, string config)
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, config);
        var (code, stdout, stderr) = Run("describe", "--config", path);
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        using var expected = JsonDocument.Parse(File.ReadAllText(Fixture.Path("param_counts_swin_tiny_448.json")));
        foreach (var key in new[] { "trainable", "lora", "decoder", "total" })
            Assert.Equal(expected.RootElement.GetProperty(row).GetProperty(key).GetInt64(), doc.RootElement.GetProperty(key).GetInt64());
        Assert.Equal(448, doc.RootElement.GetProperty("config").GetProperty("img_size").GetInt32());
        Assert.Equal(14, doc.RootElement.GetProperty("stages")[3].GetProperty("resolution").GetInt32());
    }

    [Fact]
    public void DescribeTiny4AndBadConfig()
    {
        var (code, stdout, stderr) = Run("describe", "--config", Fixture.Path("tiny4", "config.json"));
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(219842, doc.RootElement.GetProperty("trainable").GetInt64());
        Assert.Equal(746402, doc.RootElement.GetProperty("total").GetInt64());

        using var dir = Fixture.TempDir();
        var bad = dir.File("bad.json");
        File.WriteAllText(bad, "{\"embed_dims\": 96}");
        (code, stdout, stderr) = Run("describe", "--config", bad);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains("unknown key 'embed_dims' (did you mean 'embed_dim'?)", stderr);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("model.pth")]
    [InlineData("checkpoint_wrapped.pth")]
    public void CheckReferencePassesOnTiny4(string checkpoint)
    {
        var (code, stdout, stderr) = Run("check-reference", "--config", Fixture.Path("tiny4", "config.json"),
            "--checkpoint", Fixture.Path("tiny4", checkpoint), "--io", Fixture.Path("tiny4", "io.safetensors"));
        Assert.True(code == 0, stderr + stdout);
        using var doc = JsonDocument.Parse(stdout);
        Assert.True(doc.RootElement.GetProperty("passed").GetBoolean());
        Assert.Equal(1e-4, doc.RootElement.GetProperty("tolerance").GetDouble());
        foreach (var t in Tiny4.TaskOrder)
            Assert.InRange(doc.RootElement.GetProperty("tasks").GetProperty(t).GetProperty("max_abs_error").GetDouble(), 0, 1e-4);

        // The network's own outputs against the io file's targets: the reference's losses and metrics of its outputs.
        using var meta = JsonDocument.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json")));
        var losses = meta.RootElement.GetProperty("task_losses");
        foreach (var t in Tiny4.TaskOrder)
            Assert.Equal(losses.GetProperty(t).GetDouble(), doc.RootElement.GetProperty("tasks").GetProperty(t).GetProperty("loss").GetDouble(), 1e-4);
        Assert.Equal(losses.GetProperty("total").GetDouble(), doc.RootElement.GetProperty("loss_total").GetDouble(), 1e-3);
        var metrics = meta.RootElement.GetProperty("metrics");
        var ours = doc.RootElement.GetProperty("metrics");
        Assert.Equal(metrics.GetProperty("semseg").GetProperty("mIoU").GetDouble(), ours.GetProperty("semseg").GetProperty("mIoU").GetDouble(), 1e-4);
        Assert.Equal(metrics.GetProperty("human_parts").GetProperty("mIoU").GetDouble(), ours.GetProperty("human_parts").GetProperty("mIoU").GetDouble(), 1e-4);
        Assert.Equal(metrics.GetProperty("sal").GetProperty("maxF").GetDouble(), ours.GetProperty("sal").GetProperty("maxF").GetDouble(), 1e-3);
        Assert.Equal(metrics.GetProperty("normals").GetProperty("mean").GetDouble(), ours.GetProperty("normals").GetProperty("mean").GetDouble(), 1e-2);
    }

    [Fact]
    public void CheckReferenceFailsWhenAWeightIsPerturbed()
    {
        using var dir = Fixture.TempDir();
        var perturbed = dir.File("perturbed.safetensors");
        var sd = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try
        {
            using (no_grad()) sd["backbone.layers.3.blocks.1.mlp.fc1.lora_tasks_B.normals"].add_(0.05);
            SafeTensors.Save(perturbed, sd);
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        var (code, stdout, _) = Run("check-reference", "--config", Fixture.Path("tiny4", "config.json"),
            "--checkpoint", perturbed, "--io", Fixture.Path("tiny4", "io.safetensors"));
        Assert.Equal(1, code);
        using var doc = JsonDocument.Parse(stdout);
        Assert.False(doc.RootElement.GetProperty("passed").GetBoolean());
        var tasks = doc.RootElement.GetProperty("tasks");
        Assert.False(tasks.GetProperty("normals").GetProperty("passed").GetBoolean());
        Assert.True(tasks.GetProperty("semseg").GetProperty("passed").GetBoolean()); // only the normals branch changed
    }

    [Fact]
    public void CheckReferenceRejectsBadInput()
    {
        var (code, _, stderr) = Run("check-reference", "--config", Fixture.Path("tiny4", "config.json"),
            "--checkpoint", Fixture.Path("tiny4", "io.safetensors"), "--io", Fixture.Path("tiny4", "io.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("missing", stderr);
        Assert.Contains("backbone.patch_embed.proj.weight", stderr);

        (code, _, stderr) = Run("check-reference", "--config", Fixture.Path("tiny4", "config.json"),
            "--checkpoint", Fixture.Path("tiny4", "model.safetensors"), "--io", Fixture.Path("tiny4", "grads.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("has no tensor 'input'", stderr);
    }
}
