using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Onnx;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora export-onnx --model model.zip --out model.onnx</c>, or <c>mtlora export-onnx --config c.json --checkpoint
/// model.(pth|safetensors) --out model.onnx</c> for a checkpoint trained by the reference code (read as
/// <c>check-reference</c> reads it): writes the network as an ONNX model (input <c>input</c>, one output per task, MTLoRA
/// metadata; see <see cref="MtLoraOnnxExporter"/>), atomically. Prints <c>{"out", "bytes", "source", "tasks", "kinds",
/// "image_size", "mean", "std", ...}</c>.
/// </summary>
internal static class ExportOnnxCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "A model.zip written by 'mtlora train' (or mlContext.Model.Save)." };
        var config = new Option<string>("--config") { Description = "Network config JSON of a reference checkpoint (with --checkpoint)." };
        var checkpoint = new Option<string>("--checkpoint") { Description = "A reference MTLoRA state dict (.pth or .safetensors), with --config." };
        var output = new Option<string>("--out") { Description = "The model.onnx to write (replaced atomically if it exists).", Required = true };
        var cmd = new Command("export-onnx",
            "Export a trained model (model.zip, or a reference checkpoint with its config) to ONNX for ONNX Runtime and ML.NET's ApplyOnnxModel.");
        foreach (var o in new Option[] { model, config, checkpoint, output }) cmd.Options.Add(o);
        cmd.SetAction(parseResult => Run(parseResult.GetValue(model), parseResult.GetValue(config), parseResult.GetValue(checkpoint),
            parseResult.GetValue(output), parseResult.InvocationConfiguration.Output, parseResult.InvocationConfiguration.Error));
        return cmd;
    }

    /// <summary>Runs the verb: 0 on success, 2 on a user error (one line on <paramref name="stderr"/>).</summary>
    internal static int Run(string? modelPath, string? configPath, string? checkpointPath, string? outPath, TextWriter stdout, TextWriter stderr) =>
        CliCommon.Guard("export-onnx", stderr, () =>
        {
            if (string.IsNullOrWhiteSpace(outPath)) throw new CliCommon.UsageException("give --out <model.onnx>.");
            bool fromZip = !string.IsNullOrWhiteSpace(modelPath);
            bool fromCheckpoint = !string.IsNullOrWhiteSpace(configPath) || !string.IsNullOrWhiteSpace(checkpointPath);
            if (fromZip == fromCheckpoint)
                throw new CliCommon.UsageException("give either --model <model.zip>, or --config <c.json> with --checkpoint <model.pth|model.safetensors>.");
            string source;
            try
            {
                source = fromZip ? ExportModelZip(modelPath!, outPath) : ExportCheckpoint(configPath, checkpointPath, outPath);
            }
            catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
            {
                // The export is written to a temporary file beside --out and moved into place, so a failed write leaves nothing.
                throw new CliCommon.UsageException($"--out: cannot write '{outPath}': {e.Message}");
            }
            var result = new JsonObject
            {
                ["out"] = Path.GetFullPath(outPath),
                ["bytes"] = new FileInfo(outPath).Length,
                ["source"] = source,
            };
            foreach (var (k, v) in ReadMetadata(outPath).ToJson()) result[k] = v?.DeepClone();
            CliCommon.WriteJson(result, stdout);
            return 0;
        });

    private static string ExportModelZip(string modelPath, string outPath)
    {
        var ml = new MLContext(seed: 0);
        var loaded = CliCommon.LoadModel(ml, modelPath, out _);
        try
        {
            var mtlora = CliCommon.FindMtLora(loaded) ?? throw new CliCommon.UsageException($"--model: '{modelPath}' holds no MTLoRA transformer.");
            mtlora.ExportOnnx(outPath);
            return Path.GetFullPath(modelPath);
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    private static string ExportCheckpoint(string? configPath, string? checkpointPath, string outPath)
    {
        if (string.IsNullOrWhiteSpace(configPath)) throw new CliCommon.UsageException("--checkpoint needs --config <c.json>, the network configuration it was trained with.");
        if (string.IsNullOrWhiteSpace(checkpointPath)) throw new CliCommon.UsageException("--config needs --checkpoint <model.pth|model.safetensors>.");
        var options = MtLoraNetworkOptions.Load(configPath);
        TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH
        var weights = StateDictFile.Load(checkpointPath);
        try
        {
            MtLoraOnnxExporter.Export(options, weights, outPath);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"checkpoint '{checkpointPath}': {e.Message}", e);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
        return Path.GetFullPath(checkpointPath);
    }

    /// <summary>The metadata of the file just written, read back through ONNX Runtime (which also proves it loads).</summary>
    private static MtLoraOnnxMetadata ReadMetadata(string path)
    {
        using var model = MtLoraOnnxModel.Load(path, threads: 1);
        return model.Metadata;
    }
}
