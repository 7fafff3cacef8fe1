using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora convert --checkpoint in.pth --out out.safetensors</c>: reads a PyTorch checkpoint (safely, weights only) or a
/// safetensors file, unwraps <c>{"model": ...}</c> and the <c>module.</c> prefix, and writes the state dict as safetensors.
/// Prints <c>{"tensors": n, "parameters": elements, "out": path}</c>.
/// </summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<FileInfo>("--checkpoint")
        {
            Description = "The weights to read: a torch.save checkpoint (.pth/.pt) or a .safetensors file.",
            Required = true,
        };
        var output = new Option<FileInfo>("--out")
        {
            Description = "The .safetensors file to write (replaced atomically if it exists).",
            Required = true,
        };
        var cmd = new Command("convert", "Convert a PyTorch checkpoint's state dict to safetensors, without running any pickled code.");
        cmd.Options.Add(checkpoint);
        cmd.Options.Add(output);
        cmd.SetAction(parseResult =>
        {
            var config = parseResult.InvocationConfiguration;
            return Run(parseResult.GetValue(checkpoint)!.FullName, parseResult.GetValue(output)!.FullName, config.Output, config.Error);
        });
        return cmd;
    }

    private static int Run(string input, string output, TextWriter stdout, TextWriter stderr)
    {
        Dictionary<string, TorchSharp.torch.Tensor> tensors;
        try
        {
            TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH
            tensors = StateDictFile.Load(input);
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException or UnauthorizedAccessException or IOException)
        {
            stderr.WriteLine($"mtlora convert: error: {CliCommon.OneLine(e.Message)}");
            return 2;
        }

        try
        {
            long parameters = tensors.Values.Sum(t => t.numel());
            stderr.WriteLine($"Writing {tensors.Count} tensors ({parameters} elements) to '{output}'.");
            SafeTensors.Save(output, tensors, new Dictionary<string, string> { ["format"] = "pt", ["source"] = Path.GetFileName(input) });
            var summary = new JsonObject
            {
                ["tensors"] = tensors.Count,
                ["parameters"] = parameters,
                ["out"] = output,
            };
            stdout.WriteLine(summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            stderr.WriteLine($"mtlora convert: error: cannot write '{output}': {CliCommon.OneLine(e.Message)}");
            return 2;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
