using System.Globalization;
using Microsoft.ML.MtLora.Data.Formats;

namespace MtLora.Cli.Commands;

/// <summary>
/// The files and folders a verb writes: checked before any work starts (a folder where a file is expected, a folder that
/// cannot be created or written, too little free space), then written through the library's <see cref="AtomicFile"/>
/// (a temporary file beside the target, then a move; the temporary file is removed on any failure), with a failure
/// reported as one line that names the file and the cause.
/// </summary>
internal static class OutputPaths
{
    /// <summary>
    /// Test seam: wraps every output stream the verbs open (the target path and the stream), e.g. in one that fails like
    /// a full disk. Null in normal runs.
    /// </summary>
    internal static readonly AsyncLocal<Func<string, Stream, Stream>?> StreamFilter = new();

    /// <summary>
    /// Checks a file the verb will write: not an existing folder, its folder exists and can be written.
    /// </summary>
    /// <param name="option">The option that names it, for the message.</param>
    /// <param name="path">The path as given.</param>
    /// <returns>The full path.</returns>
    /// <exception cref="CliCommon.UsageException">The file cannot be written there.</exception>
    public static string CheckFile(string option, string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new CliCommon.UsageException($"{option}: '{path}' is a folder; give a file name, e.g. '{Path.Combine(path, "model.zip")}'.");
        var folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new CliCommon.UsageException($"{option}: folder '{folder}' does not exist.");
        CheckWritable(option, folder);
        return full;
    }

    /// <summary>
    /// Checks a folder the verb will write into (created when it first writes): not an existing file, and the nearest
    /// existing folder above it can be written.
    /// </summary>
    /// <param name="option">The option that names it, for the message.</param>
    /// <param name="path">The path as given.</param>
    /// <returns>The full path.</returns>
    /// <exception cref="CliCommon.UsageException">The folder cannot be created or written.</exception>
    public static string CheckFolder(string option, string path)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(full)) throw new CliCommon.UsageException($"{option}: '{path}' is a file; expected a folder.");
        var existing = full;
        while (!Directory.Exists(existing))
        {
            if (File.Exists(existing))
                throw new CliCommon.UsageException($"{option}: cannot create folder '{full}': '{existing}' is a file.");
            existing = Path.GetDirectoryName(existing)
                ?? throw new CliCommon.UsageException($"{option}: cannot create folder '{full}'.");
        }
        CheckWritable(option, existing);
        return full;
    }

    /// <summary>
    /// Removes the temporary files (<c>&lt;target&gt;.tmp-&lt;pid&gt;-&lt;guid&gt;</c>) that an earlier run killed while writing
    /// left beside the targets matching <paramref name="targetPattern"/>; a live writer's are kept.
    /// </summary>
    public static void RemoveStaleTemporaries(string folder, string targetPattern) => WriterTemporaries.RemoveStale(folder, targetPattern);

    /// <summary>Refuses to start when the file system of <paramref name="folder"/> has less free space than <paramref name="bytes"/>.</summary>
    /// <param name="option">The option that names the folder, for the message.</param>
    /// <param name="folder">The folder (or the nearest existing one above it).</param>
    /// <param name="bytes">The space needed.</param>
    /// <param name="what">What needs it, e.g. "the model".</param>
    public static void CheckFreeSpace(string option, string folder, long bytes, string what)
    {
        // From the full path: a relative "ck" has the parent "", whose parent is null (the loop once never ended there).
        var existing = Path.GetFullPath(folder);
        while (!Directory.Exists(existing))
        {
            if (Path.GetDirectoryName(existing) is not { Length: > 0 } parent) return; // no existing ancestor: the writes will tell
            existing = parent;
        }
        long free;
        try { free = new DriveInfo(existing).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return; } // unknown: the writes will tell
        if (free < bytes)
            throw new CliCommon.UsageException($"{option}: only {Size(free)} free in '{existing}'; {what} needs about {Size(bytes)}.");
    }

    /// <summary>Writes a file atomically; a failure is one line naming the file and the cause.</summary>
    /// <param name="path">The file.</param>
    /// <param name="write">Writes the content into the stream.</param>
    /// <exception cref="CliCommon.UsageException">The file could not be written (nothing is left behind).</exception>
    public static void Write(string path, Action<Stream> write)
    {
        if (TryWrite(path, write) is { } cause) throw new CliCommon.UsageException($"cannot write '{path}': {cause}.");
    }

    /// <summary>Writes a file atomically.</summary>
    /// <param name="path">The file.</param>
    /// <param name="write">Writes the content into the stream.</param>
    /// <returns>Null when written, else the cause (e.g. "No space left on device"); nothing is left behind then.</returns>
    public static string? TryWrite(string path, Action<Stream> write)
    {
        try
        {
            AtomicFile.Write(path, stream =>
            {
                var filtered = Filter(path, stream);
                write(filtered);
                if (filtered.CanWrite) filtered.Flush(); // a writer may have closed it (it then flushed)
            });
            return null;
        }
        catch (Exception e) when (InnerIoFailure(e) is { } io)
        {
            return Cause(io);
        }
    }

    /// <summary>
    /// The I/O failure behind an exception (a writer such as ML.NET's model saver may wrap it), or null. .NET reports a
    /// write past the process's file-size limit (EFBIG, e.g. under <c>ulimit -f</c>) as an
    /// <see cref="ArgumentOutOfRangeException"/>, and a full disk (ENOSPC) as an <see cref="IOException"/>.
    /// </summary>
    private static Exception? InnerIoFailure(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException) return e;
        return null;
    }

    /// <summary>Opens a file for appending (created when missing), through <see cref="StreamFilter"/>.</summary>
    public static Stream OpenAppend(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        return Filter(path, new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read));
    }

    /// <summary>The cause of an I/O failure without the path the runtime appends (it may be a temporary name).</summary>
    public static string Cause(Exception e) => IoFailure.Describe(e);

    /// <summary>A byte count as KB, MB or GB (decimal units, as df -H prints them).</summary>
    public static string Size(long bytes) => bytes switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:0.0} GB"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:0.0} MB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e3:0.0} KB"),
    };

    private static Stream Filter(string path, Stream stream) => StreamFilter.Value is { } filter ? filter(path, stream) : stream;

    private static void CheckWritable(string option, string folder)
    {
        var probe = Path.Combine(folder, $".mtlora-write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliCommon.UsageException($"{option}: cannot write in folder '{folder}' ({Cause(e)}).");
        }
    }
}
