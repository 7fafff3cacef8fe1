using System.Globalization;
using System.Text;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora;

// What model.zip load trusts and what it checks (issue #15): every number read is bounded, the weights are checked
// against the SHA-256 recorded when the model was saved, and their names and shapes against the network the model
// describes before any tensor is allocated, so a damaged or crafted model.zip gives one clear error, never a native
// abort or a memory blow-up.
public sealed partial class MtLoraTransformer
{
    /// <summary>The model.zip entry holding the SHA-256 of <see cref="WeightsStreamName"/> (layout 0x00010002 and later).</summary>
    internal const string WeightsDigestStreamName = "Weights.sha256";

    /// <summary>The first layout whose model.zip records the weights' SHA-256.</summary>
    internal const uint VersionWithWeightsDigest = 0x00010002;

    /// <summary>The largest inference batch size a model.zip may record.</summary>
    internal const int MaxLoadedBatchSize = 1024;

    /// <summary>The largest network settings a model.zip may record: far above the Swin sizes MTLoRA uses (Swin-T to Swin-L at
    /// 448 px), low enough that a damaged value cannot make building the network ask for unbounded memory.</summary>
    private static readonly (string Key, int Max)[] NetworkLimits =
    [
        ("img_size", 2048), ("embed_dim", 1024), ("depths", 64), ("num_heads", 256), ("window_size", 32), ("patch_size", 32),
        ("shared_rank", 1024), ("task_rank", 1024), ("decoder_channels", 2048),
    ];

    /// <summary>Writes the weights and, beside them, their SHA-256.</summary>
    private void SaveWeights(ModelSaveContext ctx)
    {
        string digest = "";
        ctx.SaveBinaryStream(WeightsStreamName, bw =>
        {
            bw.Flush();
            digest = Sha256Digest.OfWritten(bw.BaseStream, s => SafeTensors.Write(s, _weights));
        });
        ctx.SaveBinaryStream(WeightsDigestStreamName, bw => bw.Write(Encoding.ASCII.GetBytes(digest)));
    }

    /// <summary>Refuses numbers a damaged or crafted model.zip could hold before anything is built from them.</summary>
    private static void CheckLoadedSettings(string where, int batchSize, ImagePreprocessing preprocessing, MtLoraNetworkOptions options)
    {
        if (batchSize < 1 || batchSize > MaxLoadedBatchSize)
            throw new InvalidDataException($"The {where} is damaged: its inference batch size is {batchSize}; expected 1 to {MaxLoadedBatchSize}.");
        int MaxOf(IEnumerable<int> values) => values.DefaultIfEmpty(0).Max();
        IEnumerable<int> Stages() => Enumerable.Range(0, MtLoraNetworkOptions.StageCount);
        var values = new Dictionary<string, int>
        {
            ["img_size"] = options.ImageSize, ["embed_dim"] = options.EmbedDim, ["depths"] = MaxOf(options.Depths),
            ["num_heads"] = MaxOf(options.NumHeads), ["window_size"] = options.WindowSize, ["patch_size"] = options.PatchSize,
            ["shared_rank"] = MaxOf(Stages().Select(options.SharedRankAt)),
            ["task_rank"] = MaxOf(Stages().SelectMany(i => options.Tasks.Select(t => options.TaskRankAt(i, t)))), ["decoder_channels"] = MaxOf(options.DecoderChannels),
        };
        foreach (var (key, max) in NetworkLimits)
            if (values[key] > max)
                throw new InvalidDataException($"The {where} is damaged: network option '{key}' is {values[key]}; this library reads models up to {max}.");
        if (!(options.MlpRatio <= 16))
            throw new InvalidDataException($"The {where} is damaged: network option 'mlp_ratio' is {options.MlpRatio.ToString(CultureInfo.InvariantCulture)}; this library reads models up to 16.");
        if (preprocessing.Size != options.ImageSize)
            throw new InvalidDataException($"The {where} is damaged: its preprocessing resizes to {preprocessing.Size} px but its network takes {options.ImageSize} px.");
        if (preprocessing.Mean.Concat(preprocessing.Std).Any(v => !float.IsFinite(v)))
            throw new InvalidDataException($"The {where} is damaged: its preprocessing mean or std is not a finite number.");
    }

    /// <summary>
    /// Reads the weights: checks their names and shapes against the network the model describes, then their SHA-256
    /// against the recorded one (models saved before layout 0x00010002 have none: they load with a warning on the
    /// context's log), both before any tensor is allocated, and their values for NaN and infinity.
    /// </summary>
    private static Dictionary<string, Tensor> LoadWeights(IHostEnvironment env, ModelLoadContext ctx, string where, MtLoraNetworkOptions options)
    {
        string weightsName = $"{where}/{WeightsStreamName}";
        string? recorded = null;
        if (ctx.Header.ModelVerWritten >= VersionWithWeightsDigest)
        {
            bool hasDigest = ctx.TryLoadBinaryStream(WeightsDigestStreamName, br =>
            {
                var bytes = br.ReadBytes(65);
                recorded = bytes.Length == 64 ? Encoding.ASCII.GetString(bytes) : "";
            });
            if (!hasDigest || recorded is not { Length: 64 })
                throw new InvalidDataException($"The {where} has no valid '{WeightsDigestStreamName}' entry (the SHA-256 of its weights): the model.zip is incomplete or damaged.");
        }
        else
        {
            using var ch = env.Start(LoaderSignature);
            ch.Warning($"The {where} was saved before model.zip recorded the SHA-256 of its weights (layout {ctx.Header.ModelVerWritten:X8}); " +
                "its weights are loaded without an integrity check. Save the model again to add one.");
        }

        // Names and shapes the network has, from a shape-only (meta) build: nothing is allocated.
        Dictionary<string, long[]> expected;
        using (var meta = new MultiTaskSwin(options, torch.META))
            expected = meta.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);

        Dictionary<string, Tensor>? weights = null;
        bool found = ctx.TryLoadBinaryStream(WeightsStreamName, br =>
        {
            var stream = br.BaseStream;
            if (!stream.CanSeek)
            {
                var copy = new MemoryStream();
                stream.CopyTo(copy);
                copy.Position = 0;
                stream = copy;
            }
            long start = stream.Position;
            // In order, before any tensor is allocated: the header against the network (cheap, and it stops a weights file
            // of the wrong size before it is read at all), then the digest of every byte.
            weights = SafeTensors.Read(stream, weightsName, out _, entries =>
            {
                CheckAgainstNetwork(entries, expected, weightsName);
                if (recorded is null) return;
                long position = stream.Position;
                stream.Position = start;
                string actual = Sha256Digest.Of(stream);
                if (!string.Equals(actual, recorded, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"'{weightsName}' is damaged: its SHA-256 is {actual}, the model recorded {recorded} when it was saved (a changed or corrupt byte).");
                stream.Position = position;
            });
        });
        if (!found || weights == null)
            throw new InvalidDataException($"The {where} has no '{WeightsStreamName}' entry: the model.zip is incomplete or damaged.");
        try
        {
            CheckFinite(weights, weightsName);
        }
        catch
        {
            foreach (var t in weights.Values) t.Dispose();
            throw;
        }
        return weights;
    }

    private static void CheckAgainstNetwork(IReadOnlyList<SafeTensorsEntry> entries, Dictionary<string, long[]> expected, string file)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            if (!expected.TryGetValue(e.Name, out var shape))
                throw new InvalidDataException($"'{file}' holds tensor '{e.Name}', which the network the model describes does not have.");
            if (!shape.SequenceEqual(e.Shape))
                throw new InvalidDataException($"'{file}': tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}], the network the model describes expects [{string.Join(", ", shape)}].");
            seen.Add(e.Name);
        }
        var missing = expected.Keys.Where(k => !seen.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"'{file}' lacks {missing.Count} tensor(s) of the network the model describes, e.g. '{missing[0]}'.");
    }

    /// <summary>NaN or infinite weights would run a whole evaluation and give meaningless metrics: refuse them by name.</summary>
    private static void CheckFinite(Dictionary<string, Tensor> weights, string file)
    {
        foreach (var (name, t) in weights)
        {
            if (!t.is_floating_point()) continue;
            using var scope = torch.NewDisposeScope();
            if (!torch.isfinite(t).all().item<bool>())
                throw new InvalidDataException($"'{file}': tensor '{name}' holds NaN or infinite values; the model is damaged (or was saved from a diverged training run).");
        }
    }
}
