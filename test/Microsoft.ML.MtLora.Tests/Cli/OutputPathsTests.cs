using MtLora.Cli.Commands;

namespace Microsoft.ML.MtLora.Tests.Cli;

public class OutputPathsTests
{
    [Fact]
    public void FreeSpaceOfARelativeFolderNotYetMadeIsThatOfTheWorkingFolder()
    {
        // A relative folder that does not exist: its nearest existing ancestor is the working folder (this once looped forever:
        // the parent of "ck" is "", whose parent is null).
        var relative = Path.Combine($"mtlora-no-such-folder-{Guid.NewGuid():N}", "ck");
        OutputPaths.CheckFreeSpace("--checkpoint-dir", relative, 1, "a checkpoint");
        var e = Assert.Throws<CliCommon.UsageException>(() => OutputPaths.CheckFreeSpace("--checkpoint-dir", relative, long.MaxValue, "a checkpoint"));
        Assert.StartsWith("--checkpoint-dir: only ", e.Message);
        Assert.Contains($"free in '{Path.GetFullPath(".").TrimEnd(Path.DirectorySeparatorChar)}'", e.Message);
        Assert.False(Directory.Exists(Path.GetDirectoryName(relative)));
    }
}
