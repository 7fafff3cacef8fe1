namespace Microsoft.ML.MtLora.Tests;

/// <summary>Paths of the reference fixtures copied next to the test assembly (test/Fixtures/reference).</summary>
internal static class Fixture
{
    public static string Root => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "reference");

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>The repository root (where MtLora.sln is), found from the test assembly's folder.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "MtLora.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"MtLora.sln was not found above {AppContext.BaseDirectory}; the test runs from a build inside the repository.");
    }

    /// <summary>A fresh empty folder under the system temp folder, removed by the caller's <c>using</c>.</summary>
    public static TempDir TempDir() => new();
}

/// <summary>A temporary folder deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mtlora-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
