using System.CommandLine;
using Microsoft.ML.MtLora;
using TorchSharp;

namespace MtLora.Cli.Commands;

/// <summary><c>mtlora version</c>: library, TorchSharp and libtorch versions, and whether CUDA is usable.</summary>
internal static class VersionCommand
{
    public static Command Create()
    {
        var cmd = new Command("version", "Print the library, TorchSharp and libtorch versions, and the devices available.");
        cmd.SetAction(_ =>
        {
            TorchRuntime.Initialize();
            var lib = typeof(TorchRuntime).Assembly.GetName().Version;
            Console.WriteLine($"Microsoft.ML.MtLora {lib}");
            Console.WriteLine($"libtorch {torch.__version__} (from {TorchRuntime.LibTorchDirectory ?? "the application's backend package"})");
            Console.WriteLine($"CUDA available: {TorchRuntime.IsCudaAvailable()}");
            return 0;
        });
        return cmd;
    }
}
