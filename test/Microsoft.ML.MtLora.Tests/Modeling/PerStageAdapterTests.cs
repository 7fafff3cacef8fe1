using System.Text.Json;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Modeling.Adapters;
using TorchSharp;
using static TorchSharp.torch;

using static Microsoft.ML.MtLora.Tests.CliRunner;
namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>
/// The reference's per-stage and per-task adapter lists (config.py::update_config: R, R_PER_TASK, SHARED_SCALE,
/// SCALE_PER_TASK, DROPOUT; docs/mtlora-reference.md §2.6) in the network config JSON.
/// </summary>
public class PerStageAdapterTests
{
    // Swin-T at 448 (the defaults) with a rank, scale and dropout that differ per stage and per task.
    private const string NonUniform = """
        {
          "shared_rank": [8, 16, 32, 64],
          "task_rank": { "semseg": [4, 4, 8, 8], "human_parts": 2, "sal": [1, 2, 3, 4], "normals": [4] },
          "lora_scale": { "shared": [1, 2, 3, 4], "sal": 2 },
          "lora_dropout": [0, 0.05, 0.1, 0.1]
        }
        """;

    // Expected counts, by the formulas of docs/mtlora-reference.md §3.4 (Swin-T: C_i = 96·2^i, depths 2-2-6-2), worked by hand:
    //   shared LoRA, per block 16·C·r (qkv 4Cr, proj 2Cr, fc1 5Cr, fc2 5Cr), r per stage 8, 16, 32, 64:
    //     2·16·96·8 + 2·16·192·16 + 6·16·384·32 + 2·16·768·64 = 24,576 + 98,304 + 1,179,648 + 1,572,864 = 2,875,392
    //   task LoRA, per stage and task 12·C·r_t (proj 2C, fc1 5C, fc2 5C) in the last block of each stage:
    //     semseg 12·(96·4 + 192·4 + 384·8 + 768·8) = 124,416; human_parts 12·2·1440 = 34,560;
    //     sal 12·(96·1 + 192·2 + 384·3 + 768·4) = 56,448; normals 12·4·1440 = 69,120; together 284,544
    //   LoRA = 3,159,936; extra (patch embed, norms, bias tables, merging reductions) 1,599,546; decoders 1,946,624
    //   trainable = 3,159,936 + 1,599,546 + 1,946,624 = 6,706,106
    //   total = frozen Swin-T body 27,517,818 + LoRA + decoders = 32,624,378
    // MTLoRA+ adds a shared LoRA of 6·C·r on the merging reductions of stages 0-2, whose weights are then frozen:
    //     6·(96·8 + 192·16 + 384·32) = 96,768; LoRA 3,256,704; extra 51,258 (without the reductions)
    //   trainable = 3,256,704 + 51,258 + 1,946,624 = 5,254,586; total = 27,517,818 + 3,256,704 + 1,946,624 = 32,721,146
    [Theory]
    [InlineData(false, 6_706_106L, 3_159_936L, 32_624_378L)]
    [InlineData(true, 5_254_586L, 3_256_704L, 32_721_146L)]
    public void NonUniformListsReproduceTheReferenceCounts(bool plus, long trainable, long lora, long total)
    {
        var o = MtLoraNetworkOptions.FromJson(NonUniform);
        o.MtLoraPlus = plus;
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(o, META);
        var c = model.CountParameters();
        Assert.Equal(trainable, c.Trainable);
        Assert.Equal(lora, c.Lora);
        Assert.Equal(1_946_624L, c.Decoder);
        Assert.Equal(total, c.Total);

        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(new long[] { 16, 192 }, shapes["backbone.layers.1.blocks.0.attn.qkv.lora_shared_A"]);
        Assert.Equal(new long[] { 384, 3 }, shapes["backbone.layers.2.blocks.5.mlp.fc2.lora_tasks_B.sal"]);
        Assert.Equal(new long[] { 2, 768 }, shapes["backbone.layers.3.blocks.1.attn.proj.lora_tasks_A.human_parts"]);
        if (plus) Assert.Equal(new long[] { 32, 4 * 384 }, shapes["backbone.layers.2.downsample.reduction.lora_shared_A"]);
    }

    [Fact]
    public void DescribeCountsTheLists()
    {
        using var dir = Fixture.TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, NonUniform);
        var (code, stdout, stderr) = Run("describe", "--config", path);
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(6_706_106L, doc.RootElement.GetProperty("trainable").GetInt64());
        Assert.Equal(3_159_936L, doc.RootElement.GetProperty("lora").GetInt64());
        var config = doc.RootElement.GetProperty("config");
        Assert.Equal(new[] { 8, 16, 32, 64 }, config.GetProperty("shared_rank").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2, config.GetProperty("task_rank").GetProperty("human_parts").GetInt32());
        Assert.Equal(4, config.GetProperty("task_rank").GetProperty("normals").GetInt32());   // [4] is the shorthand
        Assert.Equal(2.0, config.GetProperty("lora_scale").GetProperty("sal").GetDouble());
    }

    [Fact]
    public void EachLayerGetsItsStagesRankScaleAndDropout()
    {
        var o = Tiny4.Options();
        o.SharedRankPerStage = [2, 3, 4, 5];
        o.TaskRankPerTask = new Dictionary<string, IReadOnlyList<int>> { [DenseTask.Saliency.ReferenceName()] = [1, 2, 3, 4] };
        o.TaskRank = 2;
        o.LoraScalePerStage = [1.5, 2.5, 3.5, 4.5];
        o.TaskScalePerTask = new Dictionary<string, IReadOnlyList<double>> { [DenseTask.SemanticSegmentation.ReferenceName()] = [8, 8, 9, 9] };
        o.LoraDropoutPerStage = [0.0, 0.1, 0.2, 0.3];
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(o, META);
        var layers = model.named_modules().Where(m => m.module is MtLoraLinear).ToDictionary(m => m.name, m => (MtLoraLinear)m.module);
        for (int i = 0; i < 4; i++)
        {
            var qkv = layers[$"backbone.layers.{i}.blocks.0.attn.qkv"];
            Assert.Equal(2 + i, qkv.SharedRank);
            Assert.Equal(1.5 + i, qkv.Scale);
            Assert.Equal(0.1 * i, qkv.Dropout, 12);
            Assert.Empty(qkv.TaskAdapters);
            var fc1 = layers[$"backbone.layers.{i}.blocks.1.mlp.fc1"];
            var adapters = fc1.TaskAdapters.ToDictionary(a => a.Name);
            Assert.Equal(new TaskAdapter("semseg", 2, i < 2 ? 8 : 9), adapters["semseg"]);
            Assert.Equal(new TaskAdapter("sal", 1 + i, 1.5 + i), adapters["sal"]);           // no task scale: the stage's shared scale
            Assert.Equal(new TaskAdapter("normals", 2, 1.5 + i), adapters["normals"]);
        }
    }

    [Fact]
    public void TaskOutputsUseTheirOwnScale()
    {
        // y_t = W·x + b + s_t·B_t·A_t·x (§2.4, no task inputs, evaluation mode): checked against the formula with plain matmuls.
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var layer = new MtLoraLinear(6, 5, true, 3, 4.0, [new TaskAdapter("a", 2, 0.5), new TaskAdapter("b", 1, 3.0)], 0.0);
        layer.eval();
        using (no_grad())
            foreach (var (_, p) in layer.named_parameters()) p.copy_(randn(p.shape));
        var x = randn(7, 6);
        var (shared, tasks) = layer.Forward(x);
        var p2 = layer.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var y0 = nn.functional.linear(x, p2["linear.weight"], p2["linear.bias"]);
        Tensor Delta(string a, string b, double s)
        {
            using var scale = s.ToScalar();
            return x.matmul(p2[a].t()).matmul(p2[b].t()).mul(scale);
        }
        Assert.True(shared.allclose(y0.add(Delta("lora_shared_A", "lora_shared_B", 4.0), TorchScalars.One), 1e-5, 1e-5));
        Assert.True(tasks!["a"].allclose(y0.add(Delta("lora_tasks_A.a", "lora_tasks_B.a", 0.5), TorchScalars.One), 1e-5, 1e-5));
        Assert.True(tasks["b"].allclose(y0.add(Delta("lora_tasks_A.b", "lora_tasks_B.b", 3.0), TorchScalars.One), 1e-5, 1e-5));
    }

    [Fact]
    public void ListsRoundTripAndUniformConfigsKeepTheirNumbers()
    {
        var o = MtLoraNetworkOptions.FromJson(NonUniform);
        var again = MtLoraNetworkOptions.FromJson(o.ToJson());
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(o.SharedRankAt(i), again.SharedRankAt(i));
            Assert.Equal(o.SharedScaleAt(i), again.SharedScaleAt(i));
            Assert.Equal(o.LoraDropoutAt(i), again.LoraDropoutAt(i));
            foreach (var t in DenseTasks.All)
            {
                Assert.Equal(o.TaskRankAt(i, t), again.TaskRankAt(i, t));
                Assert.Equal(o.TaskScaleAt(i, t), again.TaskScaleAt(i, t));
            }
        }
        Assert.Equal(o.ToJson(), again.ToJson());

        // Today's single values are written as they always were: a model.zip saved now reads in an older build, and back.
        var uniform = JsonDocument.Parse(new MtLoraNetworkOptions().ToJson()).RootElement;
        Assert.Equal("64", uniform.GetProperty("shared_rank").GetRawText());
        Assert.Equal("4", uniform.GetProperty("task_rank").GetRawText());
        Assert.Equal("4", uniform.GetProperty("lora_scale").GetRawText());
        Assert.Equal("0.05", uniform.GetProperty("lora_dropout").GetRawText());
        // A list whose stages agree is the shorthand.
        var same = MtLoraNetworkOptions.FromJson("""{"shared_rank": [16, 16, 16, 16], "task_rank": {"semseg": 4, "human_parts": 4, "sal": 4, "normals": [4, 4, 4, 4]}}""");
        var sameJson = JsonDocument.Parse(same.ToJson()).RootElement;
        Assert.Equal("16", sameJson.GetProperty("shared_rank").GetRawText());
        Assert.Equal("4", sameJson.GetProperty("task_rank").GetRawText());
    }

    [Theory]
    [InlineData("""{"shared_rank": [8, 16, 32]}""", "'shared_rank' must be a number or a list of 4 numbers, one per stage; got 3 values")]
    [InlineData("""{"task_rank": {"semseg": 4, "human_parts": 4, "sal": 4}}""", "'task_rank' is an object without an entry for 'normals'")]
    [InlineData("""{"task_rank": {"semseg": 4, "human_parts": 4, "sal": 4, "normals": 4, "depth": 4}}""", "'task_rank' has the key 'depth', which is not a task")]
    [InlineData("""{"lora_scale": {"shared": 4, "edges": 2}}""", "'lora_scale' has the key 'edges', which is not a task of this network; expected one of semseg, human_parts, sal, normals or 'shared'")]
    [InlineData("""{"shared_rank": [8, 0, 32, 64]}""", "'shared_rank[1]' must be positive, got 0")]
    [InlineData("""{"task_rank": {"semseg": [4, 4, 4, 800], "human_parts": 4, "sal": 4, "normals": 4}}""", "'task_rank.semseg[3]' 800 is larger than the narrowest layer it adapts (768 features in stage 3)")]
    [InlineData("""{"lora_dropout": [0, 0.1, 1.5, 0]}""", "'lora_dropout'[2] must be a number in [0, 1), got 1.5")]
    [InlineData("""{"task_rank": {"semseg": "four"}}""", "'task_rank.semseg' must be an integer")]
    public void BadListsNameTheKey(string json, string message)
    {
        var e = Assert.Throws<FormatException>(() => MtLoraNetworkOptions.FromJson(json, "c.json"));
        Assert.Contains("config 'c.json'", e.Message);
        Assert.Contains(message, e.Message);
    }
}
