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
        yield return ConvertCommand.Create();
        yield return InspectDataCommand.Create();
        yield return EvaluateCommand.Create();
    }

    /// <summary>Entry point.</summary>
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();
}
