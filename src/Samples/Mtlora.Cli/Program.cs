using System.CommandLine;
using MtLora.Cli.Commands;

namespace MtLora.Cli;

/// <summary>The <c>mtlora</c> command line: one verb per file under Commands/.</summary>
public static class Program
{
    /// <summary>Builds the root command with every verb.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("mtlora: multi-task LoRA (MTLoRA) for Swin Transformers on dense vision tasks, in .NET.");
        foreach (var verb in Verbs()) root.Subcommands.Add(verb);
        return root;
    }

    private static IEnumerable<Command> Verbs()
    {
        // Keep one line per verb.
        yield return VersionCommand.Create();
        yield return EvaluateCommand.Create();
        yield return InspectDataCommand.Create();
        yield return MakeSyntheticCommand.Create();
        yield return ConvertCommand.Create();
        yield return DescribeCommand.Create();
        yield return CheckReferenceCommand.Create();
        yield return TrainCommand.Create();
        yield return PredictCommand.Create();
        yield return TradeOffCommand.Create();
        yield return ExportOnnxCommand.Create();
    }

    /// <summary>Entry point. User errors (bad files, options, data) print one clear line on stderr and exit with 2.</summary>
    public static int Main(string[] args)
    {
        try
        {
            // No ProcessTerminationTimeout: System.CommandLine would end the process two seconds after Ctrl+C, cutting a
            // training step or a checkpoint write short; the verbs that must stop cleanly listen themselves (StopSignals).
            return BuildRoot().Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception e) when (CliCommon.UserError(e) is { } user)
        {
            Console.Error.WriteLine($"mtlora: error: {CliCommon.OneLine(user.Message)}");
            return 2;
        }
    }

    /// <summary>
    /// Errors caused by input (files, options, data) or the machine (a full disk, a missing native library), as opposed
    /// to bugs, which keep their stack trace. <see cref="IOException"/> covers damaged dataset files
    /// (<c>PascalSampleException</c>), truncated streams and failed writes.
    /// </summary>
    internal static bool IsUserError(Exception e) => e is ArgumentException or IOException or InvalidDataException
        or DllNotFoundException or FormatException or NotSupportedException or InvalidOperationException
        or UnauthorizedAccessException or OperationCanceledException;
}
