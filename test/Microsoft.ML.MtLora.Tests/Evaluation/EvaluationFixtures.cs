using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

/// <summary>The reference's metric fixtures: raw outputs, targets and the metrics the reference computed from them.</summary>
internal sealed class MetricFixture : IDisposable
{
    private MetricFixture(Dictionary<string, Tensor> tensors, JsonObject expected)
    {
        Tensors = tensors;
        Expected = expected;
    }

    public Dictionary<string, Tensor> Tensors { get; }

    /// <summary>The reference's metrics by task name ("semseg", "human_parts", "sal", "normals").</summary>
    public JsonObject Expected { get; }

    public Tensor Out(DenseTask task) => Tensors[$"out.{task.ReferenceName()}"];

    public Tensor Target(DenseTask task) => Tensors[$"target.{task.ReferenceName()}"];

    public double ExpectedValue(DenseTask task, string metric) => Expected[task.ReferenceName()]![metric]!.GetValue<double>();

    /// <summary>test/Fixtures/reference/metrics: 3 images of 96×128 with well-spread predictions.</summary>
    public static MetricFixture Metrics() => new(
        SafeTensors.Load(Fixture.Path("metrics", "metrics_io.safetensors")),
        JsonNode.Parse(File.ReadAllText(Fixture.Path("metrics", "metrics_expected.json")))!["metrics"]!.AsObject());

    /// <summary>test/Fixtures/reference/tiny4: 2 images of 128×128 from the tiny MTLoRA model.</summary>
    public static MetricFixture Tiny4()
    {
        var all = SafeTensors.Load(Fixture.Path("tiny4", "io.safetensors"));
        all.Remove("input", out var input);
        input?.Dispose();
        return new(all, JsonNode.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json")))!["metrics"]!.AsObject());
    }

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}
