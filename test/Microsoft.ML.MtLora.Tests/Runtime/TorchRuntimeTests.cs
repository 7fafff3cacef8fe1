namespace Microsoft.ML.MtLora.Tests.Runtime;

public class TorchRuntimeTests
{
    private static string NativeFolder => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");

    [Fact]
    public void LibTorchFolderFromEnvironmentIsUsed()
    {
        // Any libtorch folder works the same way; the CPU package's folder stands in for a PyTorch install's torch/lib.
        var r = ChildProcess.RunCli(["version"], new Dictionary<string, string?> { [TorchRuntime.LibTorchDirectoryVariable] = NativeFolder });
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains("libtorch 2.10", r.StdOut);
        Assert.Contains($"from {NativeFolder}", r.StdOut);
        Assert.Contains("CUDA available: False", r.StdOut);
    }

    [Fact]
    public void LibTorchFolderFromRuntimeConfigIsUsed()
    {
        // What the MSBuild property MtLoraLibTorchDirectory writes: a configProperties entry in the app's runtimeconfig.json.
        using var dir = Fixture.TempDir();
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "mtlora.runtimeconfig.json")))!;
        var runtime = config["runtimeOptions"]!.AsObject();
        if (runtime["configProperties"] is null) runtime["configProperties"] = new System.Text.Json.Nodes.JsonObject();
        runtime["configProperties"]![TorchRuntime.LibTorchDirectoryRuntimeOption] = NativeFolder;
        var file = dir.File("mtlora.runtimeconfig.json");
        File.WriteAllText(file, config.ToJsonString());
        var r = ChildProcess.RunCli(["version"], runtimeConfig: file);
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Contains($"from {NativeFolder}", r.StdOut);
    }

    [Fact]
    public void MsBuildPropertyWritesTheRuntimeOption()
    {
        var targets = File.ReadAllText(Path.Combine(RepoRoot(), "build", "Microsoft.ML.MtLora.targets"));
        Assert.Contains($"<RuntimeHostConfigurationOption Include=\"{TorchRuntime.LibTorchDirectoryRuntimeOption}\" Value=\"$(MtLoraLibTorchDirectory)\" />", targets);
    }

    private static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "MtLora.sln"))) d = d.Parent;
        return d?.FullName ?? throw new DirectoryNotFoundException("repository root (MtLora.sln) not found above the test folder");
    }

    [Fact]
    public void MissingLibTorchFolderIsAClearError()
    {
        var r = ChildProcess.RunCli(["version"], new Dictionary<string, string?> { [TorchRuntime.LibTorchDirectoryVariable] = "/nonexistent/torch/lib" });
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("MTLORA_LIBTORCH", r.StdErr);
        Assert.Contains("/nonexistent/torch/lib", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr); // a message, not a stack trace
    }

    [Fact]
    public void FolderWithoutLibTorchIsAClearError()
    {
        using var dir = Fixture.TempDir();
        var r = ChildProcess.RunCli(["version"], new Dictionary<string, string?> { [TorchRuntime.LibTorchDirectoryVariable] = dir.Path });
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("holds no libtorch.so", r.StdErr);
    }

    [Fact]
    public void DeviceNamesResolve()
    {
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchRuntime.ResolveDevice("cpu").type);
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchRuntime.ResolveDevice("auto").type);
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchRuntime.ResolveDevice("cuda", fallbackToCpu: true).type);
        var e = Assert.Throws<InvalidOperationException>(() => TorchRuntime.ResolveDevice("cuda"));
        Assert.Contains("MTLORA_LIBTORCH", e.Message);
        Assert.Throws<ArgumentException>(() => TorchRuntime.ResolveDevice("gpu0"));
    }
}
