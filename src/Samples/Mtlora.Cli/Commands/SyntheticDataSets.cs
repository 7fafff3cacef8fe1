using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Synthetic;

namespace MtLora.Cli.Commands;

/// <summary>
/// Writes a synthetic PASCAL-Context (make-synthetic, and the main job's cached set) into a temporary folder beside the
/// target and moves it into place when complete, so a full disk, an error or a kill never leaves a half-written data
/// set under the target's name; the temporary folder is removed on failure, and one left by a killed run is removed by
/// the next.
/// </summary>
internal static class SyntheticDataSets
{
    /// <summary>Bytes per pixel of a generated set (the JPEG, four label files and the context .mat): 0.35 at 640×480 and 0.70 at 160×120 measured, so this underestimates.</summary>
    private const double BytesPerPixel = 0.3;

    /// <summary>Refuses to start when the target's file system has clearly too little space for the set.</summary>
    public static void CheckFreeSpace(string option, string target, SyntheticPascalOptions options)
    {
        long bytes = (long)(((long)options.TrainCount + options.ValCount) * options.Width * options.Height * BytesPerPixel);
        OutputPaths.CheckFreeSpace(option, target, bytes, $"the synthetic data set ({options.TrainCount} + {options.ValCount} images of {options.Width}x{options.Height})");
    }

    /// <summary>Bytes per pixel of a synthetic NYUD-v2 set: float32 .npy depth (4), normals (12) and edges (4), plus the JPEG and PNG (21.5 measured at 64×48), so this underestimates.</summary>
    private const double NyudBytesPerPixel = 20;

    /// <summary>Refuses to start when the target's file system has clearly too little space for the NYUD-v2 set.</summary>
    public static void CheckFreeSpace(string option, string target, SyntheticNyudOptions options)
    {
        long bytes = (long)(((long)options.TrainCount + options.ValCount) * options.Width * options.Height * NyudBytesPerPixel);
        OutputPaths.CheckFreeSpace(option, target, bytes, $"the synthetic NYUD-v2 set ({options.TrainCount} + {options.ValCount} images of {options.Width}x{options.Height})");
    }

    /// <summary>
    /// Generates the set into a temporary folder, lets <paramref name="complete"/> add what marks it complete, and moves
    /// it to <paramref name="target"/> (which must not hold anything but what <paramref name="replace"/> allows to replace).
    /// </summary>
    /// <param name="target">The data set root.</param>
    /// <param name="options">What to generate.</param>
    /// <param name="complete">Called on the temporary folder once the set is written (e.g. to write a marker file).</param>
    /// <param name="replace">
    /// Decides, once the set is generated, what happens to an existing target: true to replace it, false to keep it and
    /// discard the new set (another run completed the same set first).
    /// </param>
    /// <returns>The summary of the generated set, with <see cref="SyntheticPascalSummary.Root"/> being the temporary folder.</returns>
    public static SyntheticPascalSummary Generate(string target, SyntheticPascalOptions options, Action<string>? complete, Func<bool> replace) =>
        Generate(target, tmp => SyntheticPascal.Generate(tmp, options), complete, replace);

    /// <summary>As the PASCAL overload, for any generator <paramref name="write"/> that fills the folder it is given.</summary>
    public static T Generate<T>(string target, Func<string, T> write, Action<string>? complete, Func<bool> replace)
    {
        target = Path.GetFullPath(target);
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        WriterTemporaries.RemoveStale(parent, Path.GetFileName(target));
        var tmp = WriterTemporaries.NameFor(target);
        try
        {
            var summary = write(tmp);
            complete?.Invoke(tmp);
            if (Directory.Exists(target))
            {
                if (!replace()) return summary;
                Directory.Delete(target, recursive: true);
            }
            Directory.Move(tmp, target);
            return summary;
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
    }
}
