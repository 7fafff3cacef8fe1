using System.Text.Json;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

/// <summary>The tiny4 reference fixture: config, meta, and a model loaded with the reference weights.</summary>
internal static class Tiny4
{
    public static MtLoraNetworkOptions Options() => MtLoraNetworkOptions.Load(Fixture.Path("tiny4", "config.json"));

    public static JsonElement Meta() => JsonDocument.Parse(File.ReadAllText(Fixture.Path("tiny4", "meta.json"))).RootElement;

    public static string[] TaskOrder => ["semseg", "human_parts", "sal", "normals"];

    /// <summary>The tiny4 model with the reference weights, in evaluation mode.</summary>
    public static MultiTaskSwin LoadModel()
    {
        manual_seed(0);
        var model = new MultiTaskSwin(Options());
        var sd = SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
        try { model.LoadStateDict(sd); }
        finally { foreach (var t in sd.Values) t.Dispose(); }
        model.eval();
        return model;
    }

    public static Dictionary<string, Tensor> Io() => SafeTensors.Load(Fixture.Path("tiny4", "io.safetensors"));

    public static float MaxAbs(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
