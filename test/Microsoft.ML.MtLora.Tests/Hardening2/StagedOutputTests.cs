using System.Diagnostics;
using Microsoft.ML.MtLora.Data.Synthetic;
using Microsoft.ML.MtLora.Tests.Cli;
using MtLora.Cli.Commands;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// make-synthetic (and the main job's cached set) writes into a temporary folder and moves it into place, so a failure
/// leaves no partial data set; temporaries that a killed run left are removed by the next run, a live writer's are not.
/// </summary>
[Collection(SerialCollection.Name)]
public class StagedOutputTests
{
    private static readonly SyntheticPascalOptions Small = new() { TrainCount = 2, ValCount = 1, Width = 48, Height = 40 };

    [Fact]
    public void AFailureWhileGeneratingLeavesNeitherTheSetNorItsTemporaryFolder()
    {
        using var dir = Fixture.TempDir();
        var target = Path.Combine(dir.Path, "set");
        // The disk fills up as the set is completed (after its images were written into the temporary folder).
        var e = Assert.Throws<IOException>(() => SyntheticDataSets.Generate(target, Small,
            complete: _ => throw new IOException("No space left on device : '/x'"), replace: () => true));
        Assert.StartsWith("No space left on device", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void MakeSyntheticMovesAWholeSetIntoPlaceAndRefusesAFolderThatIsNotEmpty()
    {
        using var dir = Fixture.TempDir();
        var target = Path.Combine(dir.Path, "set");
        var (code, stdout, stderr) = CliVerbTests.Invoke("make-synthetic", "--out", target, "--train", "2", "--val", "1", "--size", "48x40");
        Assert.True(code == 0, stderr);
        Assert.Contains($"\"root\":\"{target}\"", stdout);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(target, "JPEGImages")).Length);
        Assert.Equal(["set"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));

        (code, stdout, stderr) = CliVerbTests.Invoke("make-synthetic", "--out", target, "--train", "2", "--val", "1", "--size", "48x40");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains($"--out: folder '{target}' is not empty", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void TemporariesOfAKilledWriterAreRemovedAndALiveWritersAreKept()
    {
        using var dir = Fixture.TempDir();
        using var exited = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        exited.WaitForExit();
        string Tag(int pid) => $".tmp-{pid}-{Guid.NewGuid():N}";
        var deadSet = Path.Combine(dir.Path, "set" + Tag(exited.Id));
        var liveSet = Path.Combine(dir.Path, "set" + Tag(1));
        var deadModel = Path.Combine(dir.Path, "model.zip" + Tag(exited.Id));
        var legacyModel = Path.Combine(dir.Path, $"model.zip.tmp-{Guid.NewGuid():N}");
        var userFile = Path.Combine(dir.Path, "model.zip.tmp-mine"); // not a writer's tag: never touched
        Directory.CreateDirectory(deadSet);
        Directory.CreateDirectory(liveSet);
        foreach (var f in new[] { deadModel, legacyModel, userFile }) File.WriteAllText(f, "partial");

        SyntheticDataSets.Generate(Path.Combine(dir.Path, "set"), Small, complete: null, replace: () => true);
        Assert.False(Directory.Exists(deadSet));
        Assert.True(Directory.Exists(liveSet));

        OutputPaths.RemoveStaleTemporaries(dir.Path, "model.zip");
        Assert.False(File.Exists(deadModel));
        Assert.False(File.Exists(legacyModel));
        Assert.True(File.Exists(userFile));
    }
}
