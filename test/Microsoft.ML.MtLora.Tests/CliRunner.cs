using System.CommandLine;

namespace Microsoft.ML.MtLora.Tests;

/// <summary>Runs an <c>mtlora</c> verb in-process with its own output writers (nothing global is redirected).</summary>
internal static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = global::MtLora.Cli.Program.BuildRoot().Parse(args).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        return (code, stdout.ToString(), stderr.ToString());
    }
}
