using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using System.Xml.Linq;
using Microsoft.ML.Data;

namespace Microsoft.ML.MtLora.Tests.Packaging;

/// <summary>Runs alone: it starts dotnet pack/build, which compete for the CPU with everything else.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PackagingCollection
{
    /// <summary>The collection name.</summary>
    public const string Name = "Packaging";
}

/// <summary>A fact that runs on Linux x64 only (the consumer app references libtorch-cpu-linux-x64).</summary>
public sealed class LinuxX64FactAttribute : FactAttribute
{
    /// <summary>Skips the fact elsewhere.</summary>
    public LinuxX64FactAttribute()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64)
            Skip = "needs Linux x64 (the consumer app uses libtorch-cpu-linux-x64)";
    }
}

/// <summary>
/// Packs Microsoft.ML.MtLora, checks the package, then builds a fresh console app (test/PackageConsumer) against that
/// package alone — no project reference, none of this repository's Directory.Build files — and runs it: it trains a
/// tiny model and saves model.zip through the public API.
/// </summary>
[Collection(PackagingCollection.Name)]
public class PackageConsumerTests
{
    private const string PackageId = "Microsoft.ML.MtLora";

    [LinuxX64Fact]
    public void PackedLibraryBuildsAConsumerThatTrainsAndSavesAModel()
    {
        var repo = Fixture.RepoRoot();
        using var temp = Fixture.TempDir();
        // A version no earlier run can have put in a package cache.
        var version = $"0.1.0-packagetest.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        var feed = Directory.CreateDirectory(temp.File("feed")).FullName;

        // 1. dotnet pack
        var pack = Dotnet(repo, null, "pack", "src/Microsoft.ML.MtLora/Microsoft.ML.MtLora.csproj", "-c", "Release", "-o", feed,
            $"-p:PackageVersion={version}");
        Assert.True(pack.ExitCode == 0, $"dotnet pack failed:\n{pack.Output}");
        var nupkg = Path.Combine(feed, $"{PackageId}.{version}.nupkg");
        CheckPackage(repo, nupkg, version);
        using (var symbols = ZipFile.OpenRead(Path.ChangeExtension(nupkg, ".snupkg")))
            Assert.Contains(symbols.Entries, e => e.FullName == $"lib/net10.0/{PackageId}.pdb");

        // 2. A fresh console app in its own folder, restored from the local feed (plus nuget.org for the dependencies).
        var app = Directory.CreateDirectory(temp.File("app")).FullName;
        foreach (var file in new[] { "PackageConsumer.csproj", "Program.cs" })
            File.Copy(Path.Combine(repo, "test", "PackageConsumer", file), Path.Combine(app, file));
        // Empty Directory.Build.* so that nothing of this repository (which imports build/ directly) can leak in:
        // the LibTorchSharp fix must come from the package's buildTransitive folder.
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            File.WriteAllText(Path.Combine(app, file), "<Project />\n");
        // The machine's package folder serves everything already downloaded (libtorch is 600 MB) as a fallback folder;
        // what is new (this package) is extracted into a folder that is deleted with the test's.
        var shared = SharedPackagesFolder();
        var packages = temp.File("packages");
        File.WriteAllText(Path.Combine(app, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <fallbackPackageFolders>
                <clear />
                <add key="shared" value="{shared}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        var build = Dotnet(app, packages, "build", "-c", "Release", $"-p:MtLoraPackageVersion={version}", "-v:n");
        Assert.True(build.ExitCode == 0, $"the consumer app did not build:\n{Tail(build.Output)}");

        // Built against the package, not the project.
        var assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
        using (var json = JsonDocument.Parse(assets))
        {
            var library = json.RootElement.GetProperty("libraries").GetProperty($"{PackageId}/{version}");
            Assert.Equal("package", library.GetProperty("type").GetString());
        }
        Assert.True(File.Exists(Path.Combine(packages, PackageId.ToLowerInvariant(), version, "buildTransitive", $"{PackageId}.targets")));

        // The package's build logic ran on the copy in the output, and only there.
        var output = Path.Combine(app, "bin", "Release", "net10.0");
        var copied = Path.Combine(output, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(copied), $"TorchSharp's native library is missing from the consumer's output ({copied})");
        LibTorchSharpElfPatch.Patch(File.ReadAllBytes(copied), out var outputState);
        if (LibTorchSharpElfPatch.HostHasVersion())
            Assert.StartsWith("patched", outputState);          // this host's libstdc++ is new enough: left as shipped
        else
        {
            Assert.Equal("already patched", outputState);       // patched in the output ...
            Assert.Contains($"{PackageId}: {copied}: patched", build.Output);
        }
        var cached = Path.Combine(shared, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (File.Exists(cached))
        {
            LibTorchSharpElfPatch.Patch(File.ReadAllBytes(cached), out var cacheState);
            Assert.StartsWith("patched", cacheState);           // ... and never in the package cache
        }

        // 3. Run it: loads TorchSharp, trains, saves model.zip, reloads it and scores the validation split.
        var work = temp.File("work");
        var run = Run("dotnet", output, null, [Path.Combine(output, "PackageConsumer.dll"), work], TimeSpan.FromMinutes(5));
        Assert.True(run.ExitCode == 0, $"the consumer app failed:\n{Tail(run.Output)}");
        var result = JsonDocument.Parse(run.StdOut.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal("0.107.0.0", result.GetProperty("torchSharp").GetString());
        Assert.Equal(2, result.GetProperty("steps").GetInt32());   // 4 images, batch 2, 1 epoch
        Assert.All(result.GetProperty("losses").EnumerateArray(), l => Assert.True(double.IsFinite(l.GetDouble()) && l.GetDouble() > 0));
        Assert.Equal(2, result.GetProperty("valRows").GetInt32());
        Assert.Equal(0, result.GetProperty("reloadMaxScoreDifference").GetDouble());

        var modelZip = Path.Combine(work, "model.zip");
        Assert.Equal(modelZip, result.GetProperty("modelZip").GetString());
        using (var zip = ZipFile.OpenRead(modelZip))
            Assert.Contains(zip.Entries, e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal) && e.Length > 0);

        // The model.zip of the packaged library loads and predicts in this build of the library too.
        var ml = new MLContext(seed: 1);
        var loaded = ml.Model.Load(modelZip, out _);
        try
        {
            var val = ml.Data.LoadPascalContext(Path.Combine(work, "PASCAL_MT"), "val");
            var scored = loaded.Transform(val);
            foreach (var task in DenseTasks.All)
                Assert.NotNull(scored.Schema.GetColumnOrNull(task.PredictionColumnName()));
            var heights = scored.GetColumn<int>(MtLoraColumnNames.Height).ToArray();
            var widths = scored.GetColumn<int>(MtLoraColumnNames.Width).ToArray();
            var semseg = scored.GetColumn<byte[]>(DenseTask.SemanticSegmentation.PredictionColumnName()).ToArray();
            Assert.Equal(2, semseg.Length);
            for (int i = 0; i < semseg.Length; i++)
            {
                Assert.Equal(heights[i] * widths[i], semseg[i].Length);
                Assert.All(semseg[i], c => Assert.InRange(c, 0, 20));
            }
        }
        finally { (loaded as IDisposable)?.Dispose(); }
    }

    /// <summary>Contents and metadata of the .nupkg: the library, its docs, build logic, readme, licence, dependencies.</summary>
    private static void CheckPackage(string repo, string nupkg, string version)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var files = zip.Entries.Select(e => e.FullName).Where(n => !n.StartsWith("_rels/", StringComparison.Ordinal)
            && !n.StartsWith("package/", StringComparison.Ordinal) && n != "[Content_Types].xml").Order(StringComparer.Ordinal).ToArray();
        // The build logic ships as written in build/, in buildTransitive/ (and build/ for older NuGet clients).
        var buildLogic = Directory.GetFiles(Path.Combine(repo, "build")).Select(Path.GetFileName).ToArray();
        Assert.Contains("Microsoft.ML.MtLora.targets", buildLogic);
        Assert.Contains("PatchLibTorchSharp.cs", buildLogic);
        string[] expected =
        [
            "LICENSE",
            "README.md",
            "lib/net10.0/Microsoft.ML.MtLora.dll",
            "lib/net10.0/Microsoft.ML.MtLora.xml",
            "Microsoft.ML.MtLora.nuspec",
            .. buildLogic.Select(f => "build/" + f),
            .. buildLogic.Select(f => "buildTransitive/" + f),
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), files);
        foreach (var dir in new[] { "build", "buildTransitive" })
            foreach (var name in buildLogic)
                Assert.Equal(File.ReadAllText(Path.Combine(repo, "build", name!)), ReadEntry(zip, $"{dir}/{name}"));
        Assert.Equal(File.ReadAllText(Path.Combine(repo, "LICENSE")), ReadEntry(zip, "LICENSE"));
        Assert.Contains("<member name=\"T:Microsoft.ML.MtLora.MtLoraEstimator\">", ReadEntry(zip, "lib/net10.0/Microsoft.ML.MtLora.xml"));

        var nuspec = XDocument.Parse(ReadEntry(zip, "Microsoft.ML.MtLora.nuspec"));
        XNamespace ns = nuspec.Root!.Name.Namespace;
        var metadata = nuspec.Root.Element(ns + "metadata")!;
        string Meta(string name) => metadata.Element(ns + name)?.Value ?? "";
        Assert.Equal(PackageId, Meta("id"));
        Assert.Equal(version, Meta("version"));
        Assert.Equal("MIT", Meta("license"));
        Assert.Equal("expression", metadata.Element(ns + "license")!.Attribute("type")!.Value);
        Assert.Equal("README.md", Meta("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Meta("description")));
        Assert.Contains("MTLoRA", Meta("tags"));
        Assert.StartsWith("https://", Meta("projectUrl"));
        Assert.StartsWith("https://", metadata.Element(ns + "repository")!.Attribute("url")!.Value);

        var dependencies = metadata.Descendants(ns + "dependency").ToDictionary(d => d.Attribute("id")!.Value, d => d.Attribute("version")!.Value);
        Assert.Equal("0.107.0", dependencies["TorchSharp"]);
        Assert.Equal("[5.0.1]", dependencies["Microsoft.ML"]);             // built against ML.NET 5.0.1's internals
        Assert.Equal("[5.0.1]", dependencies["Microsoft.ML.ImageAnalytics"]);
        foreach (var id in new[] { "Microsoft.Data.Analysis", "SkiaSharp", "Plotly.NET" })
            Assert.True(dependencies.ContainsKey(id), $"the package does not depend on {id}");
        // Compile-time only: the publicizer tool, the libtorch backend (the application's choice), test packages.
        Assert.DoesNotContain(dependencies.Keys, id => id.Contains("Publicize", StringComparison.OrdinalIgnoreCase)
            || id.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase) || id.StartsWith("xunit", StringComparison.OrdinalIgnoreCase)
            || id == "Microsoft.NET.Test.Sdk");
        // Every dependency is a plain lower bound or an exact pin, on a released version.
        Assert.All(dependencies.Values, v => Assert.Matches(@"^(\d+(\.\d+){1,3}|\[\d+(\.\d+){1,3}\])$", v));
    }

    private static string ReadEntry(ZipArchive zip, string name)
    {
        using var reader = new StreamReader(zip.GetEntry(name)?.Open() ?? throw new FileNotFoundException($"{name} is not in the package"));
        return reader.ReadToEnd();
    }

    private static string SharedPackagesFolder() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static string Tail(string text, int chars = 8000) => text.Length <= chars ? text : "...\n" + text[^chars..];

    private sealed record Result(int ExitCode, string StdOut, string Output);

    /// <summary>Runs the dotnet CLI with no build servers left behind (they would hold the output pipes open).</summary>
    private static Result Dotnet(string workingDirectory, string? packagesFolder, params string[] args) =>
        Run("dotnet", workingDirectory, packagesFolder, [.. args, "-nodeReuse:false", "-p:UseSharedCompilation=false"], TimeSpan.FromMinutes(5));

    private static Result Run(string fileName, string workingDirectory, string? packagesFolder, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Nothing of the test host's own MSBuild/SDK context leaks into the child.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        if (packagesFolder != null) psi.Environment["NUGET_PACKAGES"] = packagesFolder;

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        var all = new System.Text.StringBuilder();
        var stdout = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (all) { all.AppendLine(e.Data); stdout.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (all) all.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', args)} did not finish in {timeout.TotalMinutes} min:\n{Tail(all.ToString())}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        lock (all) return new Result(process.ExitCode, stdout.ToString(), all.ToString());
    }
}
