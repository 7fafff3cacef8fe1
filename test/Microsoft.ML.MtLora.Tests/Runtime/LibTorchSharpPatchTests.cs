namespace Microsoft.ML.MtLora.Tests.Runtime;

/// <summary>The build-time ELF edit (build/PatchLibTorchSharp.cs, compiled into this test assembly too).</summary>
public class LibTorchSharpPatchTests
{
    private static string ShippedLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void PatchTouchesTwoBytesAndIsIdempotent()
    {
        var shipped = ShippedLibrary();
        Assert.True(File.Exists(shipped), $"expected TorchSharp's library at {shipped}");
        var original = File.ReadAllBytes(shipped);
        var bytes = (byte[])original.Clone();

        Assert.True(LibTorchSharpElfPatch.Patch(bytes, out var report));
        Assert.StartsWith("patched", report);
        // Exactly the vernaux flags byte and the symbol's st_info byte change.
        Assert.Equal(2, original.Zip(bytes).Count(p => p.First != p.Second));

        var again = (byte[])bytes.Clone();
        Assert.False(LibTorchSharpElfPatch.Patch(again, out report));
        Assert.Equal("already patched", report);
        Assert.Equal(bytes, again);
    }

    [Fact]
    public void LibrariesWithoutTheVersionAreLeftAlone()
    {
        var libtorch = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libc10.so");
        Assert.True(File.Exists(libtorch));
        var bytes = File.ReadAllBytes(libtorch);
        Assert.False(LibTorchSharpElfPatch.Patch(bytes, out var report));
        Assert.Contains("does not need", report);
    }

    [Fact]
    public void NonElfInputIsRefused()
    {
        Assert.Throws<InvalidDataException>(() => LibTorchSharpElfPatch.Patch(new byte[100], out _));
    }

    [Fact]
    public void BuildOutputCopyIsPatchedOnlyWhenTheHostNeedsIt()
    {
        var copy = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"));
        var shipped = File.ReadAllBytes(ShippedLibrary());
        if (LibTorchSharpElfPatch.HostHasVersion())
            Assert.Equal(shipped, copy);
        else
            Assert.False(LibTorchSharpElfPatch.Patch(copy, out _)); // already patched by the build
        // The NuGet cache itself is never modified.
        Assert.True(LibTorchSharpElfPatch.Patch(shipped, out _));
    }
}
