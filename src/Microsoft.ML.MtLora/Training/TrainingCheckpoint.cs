using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Formats;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Training;

/// <summary>Where a training run stands: enough, with the model and optimizer tensors, to continue it exactly.</summary>
/// <param name="GlobalStep">Optimizer steps done.</param>
/// <param name="Epoch">The epoch of the next step.</param>
/// <param name="BatchInEpoch">The position in that epoch of the next batch.</param>
/// <param name="BatchesPerEpoch">Batches per epoch of the data the run was trained on.</param>
/// <param name="Seed">The run's seed (the per-step random state derives from it and the step).</param>
internal sealed record TrainingPosition(long GlobalStep, int Epoch, int BatchInEpoch, int BatchesPerEpoch, int Seed)
{
    /// <summary>The run's settings by key (<see cref="RunSettings"/>), compared on resume; null when none are recorded
    /// (a checkpoint of an earlier version, or a trainer given none).</summary>
    public IReadOnlyDictionary<string, string>? Settings { get; init; }
}

/// <summary>
/// Training checkpoints: one folder per checkpoint, <c>step-000001234/</c>, holding
/// <c>model.safetensors</c> (the model's state dict: parameters and persistent buffers, float32),
/// <c>optimizer.safetensors</c> (AdamW's <c>exp_avg/NAME</c>, <c>exp_avg_sq/NAME</c> and <c>step/NAME</c> per trainable
/// parameter) and <c>manifest.json</c> (format version, position, SHA-256 of each file, and the run's settings:
/// <see cref="RunSettings"/>).
/// </summary>
/// <remarks>
/// A checkpoint is written into a temporary folder beside the target and moved into place when complete, so a crash
/// never leaves a half-written checkpoint under a final name. No random-generator state is stored: the trainer reseeds
/// torch's generators at every step from (seed, step), which makes resumption exact on CPU and CUDA alike.
/// </remarks>
internal static class TrainingCheckpoint
{
    /// <summary>The manifest format this code writes and the newest it reads.</summary>
    public const int FormatVersion = 1;

    /// <summary>The manifest's file name.</summary>
    public const string ManifestFileName = "manifest.json";

    /// <summary>The model state file name.</summary>
    public const string ModelFileName = "model.safetensors";

    /// <summary>The optimizer state file name.</summary>
    public const string OptimizerFileName = "optimizer.safetensors";

    private const string FolderPrefix = "step-";
    private const string FormatName = "Microsoft.ML.MtLora training checkpoint";

    /// <summary>The folder name of the checkpoint at a global step.</summary>
    public static string FolderName(long globalStep) => FolderPrefix + globalStep.ToString("D9", CultureInfo.InvariantCulture);

    /// <summary>Writes a checkpoint under <paramref name="root"/> and keeps only the newest <paramref name="keep"/>.</summary>
    /// <param name="root">The checkpoint root folder (created if needed).</param>
    /// <param name="position">The run's position.</param>
    /// <param name="modelState">The model's state dict (any device, float32 preferred).</param>
    /// <param name="optimizerState">The optimizer tensors by name.</param>
    /// <param name="keep">How many checkpoints to keep.</param>
    /// <returns>The checkpoint folder.</returns>
    public static string Save(string root, TrainingPosition position, IEnumerable<KeyValuePair<string, Tensor>> modelState,
        IEnumerable<KeyValuePair<string, Tensor>> optimizerState, int keep)
    {
        root = Path.GetFullPath(root);
        Directory.CreateDirectory(root);
        RemoveStaleTemporaries(root);
        var final = Path.Combine(root, FolderName(position.GlobalStep));
        var tmp = WriterTemporaries.NameFor(Path.Combine(root, "." + FolderName(position.GlobalStep)));
        try
        {
            Directory.CreateDirectory(tmp);
            SafeTensors.Save(Path.Combine(tmp, ModelFileName), modelState);
            SafeTensors.Save(Path.Combine(tmp, OptimizerFileName), optimizerState);
            var files = new JsonObject();
            foreach (var name in new[] { ModelFileName, OptimizerFileName })
            {
                var file = Path.Combine(tmp, name);
                files[name] = new JsonObject { ["bytes"] = new FileInfo(file).Length, ["sha256"] = Sha256(file) };
            }
            var manifest = new JsonObject
            {
                ["format"] = FormatName,
                ["formatVersion"] = FormatVersion,
                ["globalStep"] = position.GlobalStep,
                ["epoch"] = position.Epoch,
                ["batchInEpoch"] = position.BatchInEpoch,
                ["batchesPerEpoch"] = position.BatchesPerEpoch,
                ["seed"] = position.Seed,
                ["createdUtc"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
                ["files"] = files,
            };
            // Optional in format 1: older checkpoints lack it (resumed with a note), older readers ignore it.
            if (position.Settings is { } settings)
            {
                var recorded = new JsonObject();
                foreach (var (key, value) in settings) recorded[key] = value;
                manifest["settings"] = recorded;
            }
            File.WriteAllText(Path.Combine(tmp, ManifestFileName), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            // A checkpoint of the same step (e.g. the periodic one, then the one at the end) is replaced.
            if (Directory.Exists(final)) DeleteAtomically(final);
            Directory.Move(tmp, final);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            // A full disk (ENOSPC: IOException) or a file-size limit (EFBIG: .NET's ArgumentOutOfRangeException, no file named).
            throw new IOException($"Cannot write training checkpoint '{final}': {e.Message}", e);
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        }
        foreach (var old in List(root).SkipLast(keep)) DeleteAtomically(old);
        return final;
    }

    /// <summary>
    /// Removes the temporary folders (<c>.step-*.tmp-PID-GUID</c>) that a run killed while writing a checkpoint left
    /// behind; a folder whose writer is still running is kept.
    /// </summary>
    /// <param name="root">The checkpoint root folder.</param>
    /// <returns>How many folders were removed.</returns>
    internal static int RemoveStaleTemporaries(string root) => WriterTemporaries.RemoveStale(root, "." + FolderPrefix + "*");

    /// <summary>
    /// Deletes a checkpoint folder by first renaming it to a temporary name (one atomic step), so a process killed while
    /// deleting never leaves a half-deleted folder under a checkpoint's name for <see cref="Resolve"/> to pick; a killed
    /// delete leaves a temporary that <see cref="RemoveStaleTemporaries"/> removes on the next run.
    /// </summary>
    private static void DeleteAtomically(string folder)
    {
        var doomed = WriterTemporaries.NameFor(Path.Combine(Path.GetDirectoryName(folder)!, "." + Path.GetFileName(folder)));
        Directory.Move(folder, doomed);
        Directory.Delete(doomed, recursive: true);
    }

    /// <summary>The complete checkpoints under a root, oldest first (temporary folders are ignored).</summary>
    public static IReadOnlyList<string> List(string root)
    {
        if (!Directory.Exists(root)) return [];
        return Directory.GetDirectories(root, FolderPrefix + "*")
            .Where(d => File.Exists(Path.Combine(d, ManifestFileName)))
            .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Resolves a path to one checkpoint folder: the folder itself when it holds a manifest, else the newest checkpoint
    /// under it.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist or holds no checkpoint.</exception>
    public static string Resolve(string path)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(Path.Combine(full, ManifestFileName))) return full;
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"Checkpoint folder '{full}' does not exist.");
        var all = List(full);
        if (all.Count == 0)
            throw new DirectoryNotFoundException($"'{full}' holds no training checkpoint (no {ManifestFileName}, and no {FolderPrefix}* folder with one).");
        return all[^1];
    }

    /// <summary>Reads and checks a checkpoint's manifest and verifies its files.</summary>
    /// <param name="folder">A checkpoint folder (see <see cref="Resolve"/>).</param>
    /// <returns>The position it records.</returns>
    /// <exception cref="InvalidDataException">The manifest is damaged or from a newer format, or a file does not match
    /// its recorded size or SHA-256; the message names the file.</exception>
    /// <exception cref="FileNotFoundException">A file of the checkpoint is missing.</exception>
    public static TrainingPosition ReadManifest(string folder)
    {
        var (manifest, manifestPath) = ParseManifest(folder);
        if (manifest["files"] is not JsonObject files)
            throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' is damaged: field 'files' is missing.");
        foreach (var name in new[] { ModelFileName, OptimizerFileName })
        {
            var file = Path.Combine(folder, name);
            if (!File.Exists(file)) throw new FileNotFoundException($"Checkpoint file '{file}' is missing.", file);
            if (files[name] is not JsonObject entry)
                throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' does not list '{name}'.");
            long bytes = Field<long>(entry, "bytes", manifestPath);
            string sha = Field<string>(entry, "sha256", manifestPath);
            if (new FileInfo(file).Length != bytes || !string.Equals(Sha256(file), sha, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"Checkpoint file '{file}' is damaged: its size or SHA-256 differs from what '{manifestPath}' records.");
        }

        return new TrainingPosition(
            Field<long>(manifest, "globalStep", manifestPath),
            Field<int>(manifest, "epoch", manifestPath),
            Field<int>(manifest, "batchInEpoch", manifestPath),
            Field<int>(manifest, "batchesPerEpoch", manifestPath),
            Field<int>(manifest, "seed", manifestPath))
        {
            Settings = Settings(manifest, manifestPath),
        };
    }

    /// <summary>Reads and checks a checkpoint's manifest (format and version), without verifying its files.</summary>
    private static (JsonObject Manifest, string Path) ParseManifest(string folder)
    {
        var manifestPath = Path.Combine(folder, ManifestFileName);
        if (!File.Exists(manifestPath)) throw new FileNotFoundException($"Checkpoint manifest '{manifestPath}' does not exist.", manifestPath);
        JsonObject manifest;
        try
        {
            manifest = JsonNode.Parse(File.ReadAllText(manifestPath))?.AsObject()
                ?? throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' is empty.");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' is damaged: {e.Message}", e);
        }

        if (manifest["format"] is not JsonValue format || !format.TryGetValue<string>(out var formatName) || formatName != FormatName)
            throw new InvalidDataException($"'{manifestPath}' is not a {FormatName} manifest.");
        int version = Field<int>(manifest, "formatVersion", manifestPath);
        if (version > FormatVersion)
            throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' has format version {version}, written by a newer Microsoft.ML.MtLora; this version reads format {FormatVersion} and older.");
        if (version < 1) throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' has an invalid format version {version}.");

        return (manifest, manifestPath);
    }

    /// <summary>
    /// The run settings a checkpoint records (<see cref="RunSettings"/>), read from its manifest alone (the files are not
    /// verified: <see cref="ReadManifest"/> does that when the run resumes); null when it records none.
    /// </summary>
    /// <param name="folder">A checkpoint folder (see <see cref="Resolve"/>).</param>
    /// <exception cref="InvalidDataException">The manifest is damaged or from a newer format.</exception>
    /// <exception cref="FileNotFoundException">The manifest is missing.</exception>
    public static IReadOnlyDictionary<string, string>? ReadSettings(string folder)
    {
        var (manifest, manifestPath) = ParseManifest(folder);
        return Settings(manifest, manifestPath);
    }

    private static Dictionary<string, string>? Settings(JsonObject manifest, string manifestPath)
    {
        if (manifest["settings"] is null) return null;
        if (manifest["settings"] is not JsonObject settings)
            throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' is damaged: field 'settings' is not an object.");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, _) in settings) result[key] = Field<string>(settings, key, manifestPath);
        return result;
    }

    private static T Field<T>(JsonObject node, string key, string manifestPath)
    {
        if (node[key] is JsonValue v && v.TryGetValue<T>(out var value) && value is not null) return value;
        throw new InvalidDataException($"Checkpoint manifest '{manifestPath}' is damaged: field '{key}' is missing or is not a {typeof(T).Name}.");
    }

    private static string Sha256(string file) => Sha256Digest.OfFile(file);
}
