using System.Reflection;

namespace Microsoft.ML.MtLora.Tests.Samples;

/// <summary>Runs a console sample (a referenced project with top-level statements) in this process, capturing its output.</summary>
internal static class SampleRunner
{
    /// <summary>Calls the sample's entry point with <paramref name="args"/>; returns its exit code and what it printed.</summary>
    public static (int ExitCode, string Out, string Error) Run(string sample, params string[] args)
    {
        var entry = Assembly.Load(new AssemblyName(sample)).EntryPoint
            ?? throw new InvalidOperationException($"{sample} has no entry point.");
        var (oldOut, oldError) = (Console.Out, Console.Error);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            var result = entry.Invoke(null, [args]);
            return ((int)result!, stdout.ToString(), stderr.ToString());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new InvalidOperationException($"{sample} {string.Join(' ', args)} threw; its output:\n{stdout}\n{stderr}", e.InnerException);
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldError);
        }
    }
}
