using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// Names of the temporary files and folders that are written beside their target and then moved into place
/// (<see cref="AtomicFile"/>, training checkpoints, generated data sets): <c>&lt;target&gt;.tmp-&lt;pid&gt;-&lt;guid&gt;</c>. The
/// writer's process id lets a later run remove what a killed writer left behind without touching a live writer's.
/// </summary>
internal static partial class WriterTemporaries
{
    /// <summary>What separates the target's name from the writer's tag.</summary>
    public const string Marker = ".tmp-";

    /// <summary>A fresh temporary name beside <paramref name="target"/>, tagged with this process's id.</summary>
    public static string NameFor(string target) =>
        string.Create(CultureInfo.InvariantCulture, $"{target}{Marker}{Environment.ProcessId}-{Guid.NewGuid():N}");

    /// <summary>
    /// Removes the temporaries in <paramref name="folder"/> whose target name matches <paramref name="targetPattern"/>
    /// (a file-name pattern such as <c>.step-*</c> or <c>model.zip</c>) and whose writer is gone: its process is not
    /// running, or the name carries no process id (written before ids were recorded).
    /// </summary>
    /// <returns>How many files and folders were removed.</returns>
    public static int RemoveStale(string folder, string targetPattern)
    {
        if (!Directory.Exists(folder)) return 0;
        int removed = 0;
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder, targetPattern + Marker + "*"))
        {
            var name = Path.GetFileName(entry);
            var tag = Tag().Match(name[(name.LastIndexOf(Marker, StringComparison.Ordinal) + Marker.Length)..]);
            if (!tag.Success) continue; // not one of ours
            if (tag.Groups["pid"].Success && int.TryParse(tag.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
                && (pid == Environment.ProcessId || IsRunning(pid)))
                continue;
            try
            {
                if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                else File.Delete(entry);
                removed++;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
            {
                // Removed by someone else meanwhile.
            }
        }
        return removed;
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    [GeneratedRegex("^(?:(?<pid>[0-9]+)-)?[0-9a-f]{32}$")]
    private static partial Regex Tag();
}
