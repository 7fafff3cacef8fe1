using Microsoft.ML.MtLora.Modeling.Adapters;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class MtLoraLinearTests
{
    private static MtLoraLinear Make(double dropout = 0)
    {
        manual_seed(7);
        var layer = new MtLoraLinear(6, 5, true, sharedRank: 3, taskRank: 2, ["a", "b"], scale: 4.0, dropout: dropout);
        using var _ = no_grad();
        // B is zero at init; randomise every tensor so each path matters.
        foreach (var (_, p) in layer.named_parameters()) p.copy_(randn(p.shape));
        return layer;
    }

    private static Tensor P(MtLoraLinear l, string name) => l.named_parameters().Single(p => p.name == name).parameter;

    [Fact]
    public void InitialisationFollowsReference()
    {
        manual_seed(1);
        using var layer = new MtLoraLinear(64, 32, true, 8, 4, ["semseg"], 4.0, 0.05);
        var a = P(layer, "lora_shared_A");
        Assert.Equal(new long[] { 8, 64 }, a.shape);
        Assert.True(a.abs().max().item<float>() <= 1f / 8f);            // U(-1/√in, 1/√in)
        Assert.Equal(0f, P(layer, "lora_shared_B").abs().max().item<float>());
        Assert.Equal(0f, P(layer, "lora_tasks_B.semseg").abs().max().item<float>());
        Assert.Equal(new long[] { 4, 64 }, P(layer, "lora_tasks_A.semseg").shape);
        Assert.Equal(0f, P(layer, "linear.bias").abs().max().item<float>());
        Assert.InRange(P(layer, "linear.weight").std().item<float>(), 0.015f, 0.025f);
    }

    [Fact]
    public void ForwardMatchesMatrixModeEquations()
    {
        using var scope = NewDisposeScope();
        using var layer = Make();
        layer.eval();
        var x = randn(2, 3, 6);
        var xb = randn(2, 3, 6);
        var (shared, tasks) = layer.Forward(x, new Dictionary<string, Tensor> { ["b"] = xb });
        var w = P(layer, "linear.weight");
        var bias = P(layer, "linear.bias");
        var y0 = x.matmul(w.t()) + bias;
        Tensor Delta(Tensor u, string a, string b) => u.matmul(P(layer, a).t()).matmul(P(layer, b).t()) * 4.0;
        Assert.True(Tiny4.MaxAbs(shared, y0 + Delta(x, "lora_shared_A", "lora_shared_B")) < 1e-4f);
        // Task outputs: frozen path on the shared input, no shared delta; task "a" has no own input so it uses x.
        Assert.True(Tiny4.MaxAbs(tasks!["a"], y0 + Delta(x, "lora_tasks_A.a", "lora_tasks_B.a")) < 1e-4f);
        Assert.True(Tiny4.MaxAbs(tasks["b"], y0 + Delta(xb, "lora_tasks_A.b", "lora_tasks_B.b")) < 1e-4f);
    }

    [Fact]
    public void DropoutHitsOnlyTheSharedInput()
    {
        using var scope = NewDisposeScope();
        using var layer = Make(dropout: 0.5);
        var x = randn(4, 6);
        var xa = randn(4, 6);
        layer.eval();
        var (sharedEval, tasksEval) = layer.Forward(x, new Dictionary<string, Tensor> { ["a"] = xa });
        layer.train();
        manual_seed(3);
        var (sharedTrain, tasksTrain) = layer.Forward(x, new Dictionary<string, Tensor> { ["a"] = xa });
        Assert.True(Tiny4.MaxAbs(sharedEval, sharedTrain) > 1e-3f);
        Assert.True(Tiny4.MaxAbs(tasksEval!["a"], tasksTrain!["a"]) < 1e-6f); // a task-specific input gets no dropout
        Assert.True(Tiny4.MaxAbs(tasksEval["b"], tasksTrain["b"]) > 1e-3f);   // "b" reuses the dropped shared input
    }

    [Fact]
    public void MergeMatchesUnmergedAndUnmergeRestoresExactly()
    {
        using var scope = NewDisposeScope();
        using var layer = Make();
        layer.eval();
        var x = randn(3, 6);
        var before = layer.Forward(x);
        var w0 = P(layer, "linear.weight").clone();
        layer.Merge();
        Assert.True(layer.IsMerged);
        Assert.True(Tiny4.MaxAbs(P(layer, "linear.weight"), w0) > 1e-3f);
        var after = layer.Forward(x);
        Assert.True(Tiny4.MaxAbs(before.Shared, after.Shared) < 1e-4f);
        foreach (var t in new[] { "a", "b" }) Assert.True(Tiny4.MaxAbs(before.Tasks![t], after.Tasks![t]) < 1e-4f, t);
        layer.Unmerge();
        Assert.False(layer.IsMerged);
        Assert.True(P(layer, "linear.weight").eq(w0).all().item<bool>());
    }

    [Fact]
    public void MergeRequiresEvaluationMode()
    {
        using var layer = Make();
        layer.train();
        Assert.Throws<InvalidOperationException>(() => layer.Merge());
        layer.eval();
        layer.Merge();
        layer.train();
        using var x = randn(1, 6);
        Assert.Throws<InvalidOperationException>(() => layer.Forward(x));
    }
}
