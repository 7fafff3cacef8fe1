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
