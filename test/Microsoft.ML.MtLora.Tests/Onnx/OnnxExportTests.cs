using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Onnx;
using Microsoft.ML.MtLora.Onnx.Protobuf;
using Microsoft.ML.MtLora.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Onnx;

/// <summary>
/// Configurations beyond the tiny4 fixture (MTLoRA+, window 5, a shifted last stage, the modes without task adapters,
/// partial LoRA placement, a task subset), with random weights everywhere (LoRA B and BatchNorm statistics included):
/// the exported graph run by ONNX Runtime against the TorchSharp forward of the same weights, which the reference
/// fixtures check (Modeling/MultiTaskSwinReferenceTests). Then the export's contract: metadata, opset, dynamic batch,
/// and refusals that write nothing.
/// </summary>
public class OnnxExportTests
{
    private static MtLoraNetworkOptions Tiny(Action<MtLoraNetworkOptions>? change = null)
    {
        var o = new MtLoraNetworkOptions
        {
            EmbedDim = 16, Depths = [2, 2, 2, 2], NumHeads = [1, 2, 2, 4], WindowSize = 4, ImageSize = 128,
            SharedRank = 8, TaskRank = 4, LoraDropout = 0.0, DecoderChannels = [8, 8, 16, 16],
        };
        change?.Invoke(o);
        return o;
    }

    public static TheoryData<string> Configurations => new()
    {
        "mtlora_plus", "window5", "shifted_last_stage", "task_agnostic_only", "full_finetune", "decoders_only",
        "lora_on_fc1_only", "lora_on_proj_only", "two_tasks_depth1", "per_stage_lists", "per_stage_lists_plus",
        "nyud_tasks", "custom_tasks",
    };

    private static MtLoraNetworkOptions Configuration(string name) => name switch
    {
        "mtlora_plus" => Tiny(o => o.MtLoraPlus = true),
        // img_size a multiple of patch·8·window = 160: grids 40, 20, 10, 5 (the last stage is one window, unshifted).
        "window5" => Tiny(o => { o.WindowSize = 5; o.ImageSize = 160; }),
        // grids 64, 32, 16, 8 with window 4: the last stage shifts too, as Swin-T at 448 does (§1.2).
        "shifted_last_stage" => Tiny(o => o.ImageSize = 256),
        "task_agnostic_only" => Tiny(o => o.Mode = NetworkMode.TaskAgnosticOnly),
        "full_finetune" => Tiny(o => o.Mode = NetworkMode.FullFineTune),
        "decoders_only" => Tiny(o => o.Mode = NetworkMode.DecodersOnly),
        // Task streams that start in the MLP (proj shared), or only in proj (the MLP maps each stream with plain linears).
        "lora_on_fc1_only" => Tiny(o => o.LoraOn = new LoraTargets { Qkv = false, Proj = false, Fc1 = true, Fc2 = false }),
        "lora_on_proj_only" => Tiny(o => o.LoraOn = new LoraTargets { Qkv = true, Proj = true, Fc1 = false, Fc2 = false }),
        "two_tasks_depth1" => Tiny(o => { o.Tasks = [DenseTask.Saliency, DenseTask.SurfaceNormals]; o.Depths = [1, 1, 1, 1]; }),
        // Ranks and scales per stage and per task (reference R_PER_TASK, SCALE_PER_TASK; docs/mtlora-reference.md §2.6).
        "per_stage_lists" => Tiny(PerStageLists),
        "per_stage_lists_plus" => Tiny(o => { PerStageLists(o); o.MtLoraPlus = true; }),
        // Descriptor tasks: NYUD-v2's (40-class semseg, depth, normals, edge) and tasks of your own of every kind.
        "nyud_tasks" => Tiny(o => o.Tasks = DenseTaskDescriptor.Nyud.ToArray()),
        "custom_tasks" => Tiny(o => o.Tasks = [DenseTaskDescriptor.Segmentation("defects", classes: 5), DenseTaskDescriptor.Depth("range"),
            DenseTaskDescriptor.BinaryMap("cracks", positiveWeight: 0.9f), DenseTaskDescriptor.SurfaceNormals("surface")]),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static void PerStageLists(MtLoraNetworkOptions o)
    {
        o.SharedRankPerStage = [2, 4, 6, 8];
        o.LoraScalePerStage = [1, 2, 3, 4];
        o.TaskRankPerTask = new Dictionary<string, IReadOnlyList<int>> { [DenseTask.HumanParts.ReferenceName()] = [1, 2, 3, 4] };
        o.TaskScalePerTask = new Dictionary<string, IReadOnlyList<double>> { [DenseTask.SurfaceNormals.ReferenceName()] = [0.5, 1, 1.5, 2] };
    }

    /// <summary>A network with every tensor random (B = 0 and identity BatchNorm statistics would hide paths), in evaluation mode.</summary>
    internal static MultiTaskSwin RandomNetwork(MtLoraNetworkOptions options, int seed)
    {
        manual_seed(seed);
        var net = new MultiTaskSwin(options);
        using (no_grad())
        {
            foreach (var (name, t) in net.state_dict())
            {
                if (!t.is_floating_point() || name.EndsWith("attn_mask", StringComparison.Ordinal)) continue;
                if (name.EndsWith("running_var", StringComparison.Ordinal)) t.uniform_(0.5, 1.5);
                else if (name.Contains("lora_", StringComparison.Ordinal) || name.EndsWith("bias", StringComparison.Ordinal)
                    || name.Contains("norm", StringComparison.Ordinal) || name.EndsWith("running_mean", StringComparison.Ordinal))
                    t.add_(randn_like(t).mul_(0.1.ToScalar()));
            }
        }
        net.eval();
        return net;
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void OnnxRuntimeReproducesTheTorchSharpForward(string configuration)
    {
        using var scope = NewDisposeScope();
        var options = Configuration(configuration);
        using var net = RandomNetwork(options, seed: 7);
        var input = randn(2, 3, options.ImageSize, options.ImageSize, generator: new torch.Generator(11));
        Dictionary<string, Tensor> expected;
        using (no_grad()) expected = net.forward(input);

        using var stream = new MemoryStream();
        MtLoraOnnxExporter.Export(net, stream);
        var outputs = OnnxRunner.Run(stream.ToArray(), input);

        Assert.Equal(net.TaskNames.Order(), outputs.Keys.Order());
        foreach (var t in net.TaskNames)
        {
            Assert.Equal(expected[t].shape, outputs[t].shape);
            float scale = Math.Max(1f, expected[t].abs().max().item<float>());
            float err = Tiny4.MaxAbs(outputs[t], expected[t]) / scale;
            Assert.True(err < 1e-4f, $"{configuration} {t}: max abs error {err} (relative to {scale})");
        }
    }

    [Fact]
    public void TheModelDeclaresOpset17StandardOperatorsADynamicBatchAndItsMetadata()
    {
        using var scope = NewDisposeScope();
        var options = Tiny4.Options();
        var sd = SafeTensorsLoad();
        using var stream = new MemoryStream();
        MtLoraOnnxExporter.Export(options, sd, stream);
        var bytes = stream.ToArray();
        var model = ModelProto.Parser.ParseFrom(bytes);

        Assert.Equal(OnnxGraph.IrVersion, model.IrVersion);
        var opset = Assert.Single(model.OpsetImport);
        Assert.Equal("", opset.Domain);
        Assert.Equal(17, opset.Version);
        Assert.All(model.Graph.Node, n => Assert.Equal("", n.Domain));
        var input = Assert.Single(model.Graph.Input);
        Assert.Equal("input", input.Name);
        Assert.Equal("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal([3L, 128, 128], input.Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimValue));
        Assert.Equal(Tiny4.TaskOrder, model.Graph.Output.Select(o => o.Name));
        Assert.Equal([21L, 7, 1, 3], model.Graph.Output.Select(o => o.Type.TensorType.Shape.Dim[1].DimValue));

        // The metadata as ONNX Runtime reads it.
        var metadata = MtLoraOnnxMetadata.FromProperties(OnnxRunner.Metadata(bytes), "tiny4.onnx");
        Assert.Equal(DenseTasks.All.Select(t => t.ToDescriptor()), metadata.Tasks);
        Assert.Equal(128, metadata.ImageSize);
        Assert.Equal([0.485f, 0.456f, 0.406f], metadata.Mean);
        Assert.Equal([0.229f, 0.224f, 0.225f], metadata.Std);
        Assert.Equal("bicubic", metadata.Interpolation);
        Assert.Equal(options.ToJson(), metadata.Network.ToJson());
        Assert.False(string.IsNullOrEmpty(metadata.LibraryVersion));
        var props = OnnxRunner.Metadata(bytes);
        Assert.Equal("semseg:21,human_parts:7,sal:1,normals:3", props[MtLoraOnnxMetadata.OutputsKey]);
        Assert.StartsWith("[\"background\",\"aeroplane\",", props[MtLoraOnnxMetadata.ClassesKeyPrefix + "semseg"]);
        Assert.Equal("semseg:segmentation,human_parts:segmentation,sal:binary_map,normals:surface_normals", props[MtLoraOnnxMetadata.KindsKey]);
        // A model exported before the kinds were written reads as before (its network JSON carries the tasks); a kind list
        // that contradicts the network JSON is refused, naming the key.
        props.Remove(MtLoraOnnxMetadata.KindsKey);
        Assert.Equal(metadata.Tasks, MtLoraOnnxMetadata.FromProperties(props, "old.onnx").Tasks);
        props[MtLoraOnnxMetadata.KindsKey] = "semseg:depth,human_parts:segmentation,sal:binary_map,normals:surface_normals";
        var bad = Assert.Throws<InvalidDataException>(() => MtLoraOnnxMetadata.FromProperties(props, "bad.onnx"));
        Assert.StartsWith("'bad.onnx': metadata 'mtlora.kinds' (semseg:depth,", bad.Message);

        // Batch 1 and batch 3 give each image the same outputs.
        var x = randn(3, 3, 128, 128, generator: new torch.Generator(5));
        var all = OnnxRunner.Run(bytes, x);
        var one = OnnxRunner.Run(bytes, x.narrow(0, 2, 1));
        foreach (var t in Tiny4.TaskOrder)
            Assert.True(Tiny4.MaxAbs(all[t].narrow(0, 2, 1), one[t]) < 1e-5f, t);
    }

    [Fact]
    public void AModuleTheExporterDoesNotKnowFailsNamingItAndWritesNothing()
    {
        using var scope = NewDisposeScope();
        using var dir = Fixture.TempDir();
        var sd = SafeTensorsLoad();
        sd["backbone.layers.1.blocks.0.attn.gate.weight"] = ones(4);
        var path = dir.File("model.onnx");
        var e = Assert.Throws<NotSupportedException>(() => MtLoraOnnxExporter.Export(Tiny4.Options(), sd, path));
        Assert.Contains("'backbone.layers.1.blocks.0.attn.gate'", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));

        // The same for a stream: nothing is written to it.
        using var stream = new MemoryStream();
        Assert.Throws<NotSupportedException>(() => MtLoraOnnxExporter.Export(Tiny4.Options(), sd, stream));
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public void AMissingOrMisshapenTensorFailsNamingItAndWritesNothing()
    {
        using var scope = NewDisposeScope();
        using var dir = Fixture.TempDir();
        var path = dir.File("model.onnx");
        var sd = SafeTensorsLoad();
        sd.Remove("backbone.layers.2.blocks.1.mlp.fc1.lora_tasks_A.sal");
        var e = Assert.Throws<InvalidDataException>(() => MtLoraOnnxExporter.Export(Tiny4.Options(), sd, path));
        Assert.Contains("'backbone.layers.2.blocks.1.mlp.fc1.lora_tasks_A.sal'", e.Message);

        sd = SafeTensorsLoad();
        sd["decoders.decoders.normals.last_layer.3.weight"] = zeros(2, 432, 1, 1);
        e = Assert.Throws<InvalidDataException>(() => MtLoraOnnxExporter.Export(Tiny4.Options(), sd, path));
        Assert.Contains("'decoders.decoders.normals.last_layer.3.weight' has shape [2, 432, 1, 1]", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AMergedNetworkIsRefused()
    {
        using var scope = NewDisposeScope();
        using var net = Tiny4.LoadModel();
        net.MergeLora();
        using var stream = new MemoryStream();
        var e = Assert.Throws<NotSupportedException>(() => MtLoraOnnxExporter.Export(net, stream));
        Assert.Contains("UnmergeLora", e.Message);
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public void AnUnwritableOutputLeavesNoFile()
    {
        using var scope = NewDisposeScope();
        using var dir = Fixture.TempDir();
        File.WriteAllText(dir.File("blocker"), "a file where a folder should be");
        var path = Path.Combine(dir.File("blocker"), "model.onnx");
        Assert.ThrowsAny<IOException>(() => MtLoraOnnxExporter.Export(Tiny4.Options(), SafeTensorsLoad(), path));
        Assert.Equal([dir.File("blocker")], Directory.GetFileSystemEntries(dir.Path));
    }

    private static Dictionary<string, Tensor> SafeTensorsLoad() => Microsoft.ML.MtLora.Checkpoints.SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors"));
}
