using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

// Lets mlContext.Model.Load rebuild the transformer from model.zip in any process, with no registration call:
// the model header names this assembly, ML.NET loads it and finds this attribute (see IgnoresAccessChecksTo.cs).
[assembly: LoadableClass(typeof(MtLoraTransformer), null, typeof(SignatureLoadModel),
    MtLoraTransformer.UserName, MtLoraTransformer.LoaderSignature)]

namespace Microsoft.ML.MtLora;

public sealed partial class MtLoraTransformer
{
    internal const string LoaderSignature = "MtLoraTransformer";
    internal const string UserName = "MTLoRA multi-task dense prediction transformer";
    internal const string WeightsStreamName = "Weights.safetensors";

    /// <summary>The <c>format</c> metadata value of an adapters file.</summary>
    internal const string AdaptersFormat = "mtlora-adapters";

    /// <summary>The layout version of an adapters file this code writes and reads.</summary>
    internal const int AdaptersFormatVersion = 1;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "MTLORA_T",
        verWrittenCur: VersionWithWeightsDigest,   // 0x00010001: first layout; 0x00010002: + Weights.sha256 (see Save)
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(MtLoraTransformer).Assembly.FullName);

    /// <summary>
    /// Writes the model into model.zip. Binary layout, in order (version 0x00010001):
    /// <list type="number">
    /// <item>string: image column name</item>
    /// <item>int32: inference batch size</item>
    /// <item>int32 S, string interpolation, 3 × float32 mean, 3 × float32 std: the image preprocessing</item>
    /// <item>string: network options (JSON, snake_case), which list the tasks</item>
    /// <item>stream <c>Weights.safetensors</c>: the unmerged state dict, float32 as trained</item>
    /// <item>stream <c>Weights.sha256</c>: the SHA-256 of <c>Weights.safetensors</c>, 64 hexadecimal digits (version
    /// 0x00010002 and later; checked on load, see MtLoraTransformer.Integrity.cs)</item>
    /// </list>
    /// </summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ThrowIfDisposed();
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        var w = ctx.Writer;
        w.Write(ImageColumnName);
        w.Write(BatchSize);
        w.Write(Preprocessing.Size);
        w.Write(Preprocessing.Interpolation);
        foreach (var v in Preprocessing.Mean) w.Write(v);
        foreach (var v in Preprocessing.Std) w.Write(v);
        w.Write(_networkOptions.ToJson());
        SaveWeights(ctx);
    }

    // Called by ML.NET's model loader (found by name and signature through the LoadableClass attribute above).
    private static MtLoraTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel(GetVersionInfo());
        string where = $"model entry '{ctx.Directory ?? "(root)"}' (MTLoRA transformer)";
        string imageColumn;
        int batchSize;
        ImagePreprocessing preprocessing;
        MtLoraNetworkOptions options;
        try
        {
            var r = ctx.Reader;
            imageColumn = r.ReadString();
            batchSize = r.ReadInt32();
            int size = r.ReadInt32();
            string interpolation = r.ReadString();
            var mean = new[] { r.ReadSingle(), r.ReadSingle(), r.ReadSingle() };
            var std = new[] { r.ReadSingle(), r.ReadSingle(), r.ReadSingle() };
            preprocessing = new ImagePreprocessing(size, mean, std, interpolation);
            options = MtLoraNetworkOptions.FromJson(r.ReadString(), where);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or ArgumentException or FormatException or System.Text.Json.JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"The {where} is damaged: {e.Message}", e);
        }
        CheckLoadedSettings(where, batchSize, preprocessing, options);
        var weights = LoadWeights(env, ctx, where, options);

        try
        {
            return new MtLoraTransformer(env, options, weights, preprocessing, imageColumn, batchSize, DeviceFor(env));
        }
        catch
        {
            foreach (var t in weights.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>The device a loaded model runs on: the MLContext's GPU when it names one (with its CPU fallback), else the CPU.</summary>
    private static Device DeviceFor(IHostEnvironment env)
    {
        if (env is IHostEnvironmentInternal settings && settings.GpuDeviceId is int gpu)
            return TorchRuntime.ResolveDevice($"cuda:{gpu}", settings.FallbackToCpu);
        TorchRuntime.Initialize();
        return CPU;
    }

    /// <summary>
    /// Makes a transformer from a trained MTLoRA checkpoint: one written by the reference PyTorch implementation
    /// (<c>torch.save</c> .pth, with or without the <c>{"model": ...}</c> wrapper) or any full state dict of the network as
    /// .pth or .safetensors, e.g. for inference with weights trained elsewhere.
    /// </summary>
    /// <param name="mlContext">The ML.NET context (its <c>GpuDeviceId</c>/<c>FallbackToCpu</c> choose the device).</param>
    /// <param name="networkOptions">The architecture the checkpoint was trained with (tasks, Swin size, ranks).</param>
    /// <param name="checkpointPath">The checkpoint file.</param>
    /// <param name="imageColumnName">The input image column. Default <c>Image</c>.</param>
    /// <param name="batchSize">Rows per forward pass in <see cref="Transform"/>. Default 8.</param>
    /// <returns>The transformer; dispose it when done.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a full MTLoRA state dict for these options (the message names the keys or shapes at fault).</exception>
    public static MtLoraTransformer LoadFromCheckpoint(MLContext mlContext, MtLoraNetworkOptions networkOptions, string checkpointPath,
        string imageColumnName = MtLoraColumnNames.Image, int batchSize = 8)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(networkOptions);
        ArgumentException.ThrowIfNullOrWhiteSpace(checkpointPath);
        networkOptions.Validate();
        var weights = PretrainedWeights.Load(checkpointPath, networkOptions, out bool whole);
        try
        {
            if (!whole)
                throw new InvalidDataException($"'{checkpointPath}' is a Swin backbone checkpoint, not a trained MTLoRA model (it has no downsampler or decoder weights). Train from it with MtLoraOptions.PretrainedWeightsPath.");
            return new MtLoraTransformer(mlContext, networkOptions, weights, ImagePreprocessing.Reference(networkOptions.ImageSize), imageColumnName, batchSize, DeviceFor(mlContext));
        }
        catch (InvalidDataException e) when (!e.Message.Contains(checkpointPath, StringComparison.Ordinal))
        {
            foreach (var t in weights.Values) t.Dispose();
            throw new InvalidDataException($"'{checkpointPath}': {e.Message}", e);
        }
        catch
        {
            foreach (var t in weights.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes only what training changed on top of the pretrained backbone: every tensor of the state dict except the
    /// frozen backbone parameters (so LoRA matrices, task adapters, decoders and heads, norms and patch embedding when
    /// trained, batch-norm statistics), as a small safetensors file whose metadata holds the network settings and the
    /// preprocessing. Rebuild the model with <see cref="LoadFromAdapters"/> and the same backbone checkpoint.
    /// </summary>
    /// <param name="path">The file to write (replaced if it exists; written to a temporary name, then moved).</param>
    public void SaveAdapters(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ThrowIfDisposed();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = AdaptersFormat,
            ["format_version"] = AdaptersFormatVersion.ToString(CultureInfo.InvariantCulture),
            ["network_options"] = _networkOptions.ToJson(),
            ["image_column"] = ImageColumnName,
            ["batch_size"] = BatchSize.ToString(CultureInfo.InvariantCulture),
            ["image_size"] = Preprocessing.Size.ToString(CultureInfo.InvariantCulture),
            ["interpolation"] = Preprocessing.Interpolation,
            ["mean"] = string.Join(",", Preprocessing.Mean.Select(v => v.ToString("R", CultureInfo.InvariantCulture))),
            ["std"] = string.Join(",", Preprocessing.Std.Select(v => v.ToString("R", CultureInfo.InvariantCulture))),
        };
        SafeTensors.Save(path, _weights.Where(kv => !_frozenParameterNames.Contains(kv.Key)), metadata);
    }

    /// <summary>
    /// Rebuilds a transformer from an adapters file written by <see cref="SaveAdapters"/> and the backbone checkpoint
    /// the model was trained from: the frozen backbone parameters come from <paramref name="backbonePath"/>, everything
    /// else from the adapters file.
    /// </summary>
    /// <param name="mlContext">The ML.NET context (its <c>GpuDeviceId</c>/<c>FallbackToCpu</c> choose the device).</param>
    /// <param name="adaptersPath">The adapters file (safetensors).</param>
    /// <param name="backbonePath">The pretrained weights holding the frozen backbone parameters: the Microsoft Swin checkpoint
    /// (.pth or .safetensors) the model was trained from, or a full MTLoRA state dict.</param>
    /// <returns>The transformer; dispose it when done.</returns>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">The adapters file is not one, or a backbone tensor is missing or has the wrong shape.</exception>
    public static MtLoraTransformer LoadFromAdapters(MLContext mlContext, string adaptersPath, string backbonePath)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(adaptersPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(backbonePath);
        var adapters = SafeTensors.Load(adaptersPath, out var meta);
        Dictionary<string, Tensor>? backbone = null;
        try
        {
            string Meta(string key) => meta.TryGetValue(key, out var v) && !string.IsNullOrEmpty(v) ? v
                : throw new InvalidDataException($"'{adaptersPath}' is not an MTLoRA adapters file: its metadata has no '{key}'.");
            if (Meta("format") != AdaptersFormat)
                throw new InvalidDataException($"'{adaptersPath}' is not an MTLoRA adapters file: metadata format is '{meta["format"]}', expected '{AdaptersFormat}'.");
            if (!int.TryParse(Meta("format_version"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int version) || version > AdaptersFormatVersion || version < 1)
                throw new InvalidDataException($"'{adaptersPath}': adapters format version '{meta["format_version"]}' is not supported (this library reads 1 to {AdaptersFormatVersion}).");
            float[] Floats(string key)
            {
                var parts = Meta(key).Split(',');
                var values = new float[parts.Length];
                for (int i = 0; i < parts.Length; i++)
                    if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
                        throw new InvalidDataException($"'{adaptersPath}': metadata '{key}' = '{Meta(key)}' is not a list of numbers.");
                return values;
            }
            int Int(string key) => int.TryParse(Meta(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v
                : throw new InvalidDataException($"'{adaptersPath}': metadata '{key}' = '{Meta(key)}' is not an integer.");

            MtLoraNetworkOptions options;
            try { options = MtLoraNetworkOptions.FromJson(Meta("network_options"), adaptersPath); }
            catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or FormatException or InvalidDataException)
            {
                throw new InvalidDataException($"'{adaptersPath}': metadata 'network_options' is not valid: {e.Message}", e);
            }
            var preprocessing = new ImagePreprocessing(Int("image_size"), Floats("mean"), Floats("std"), Meta("interpolation"));

            backbone = PretrainedWeights.Load(backbonePath, options, out _);
            Dictionary<string, Tensor> expected;
            List<string> parameterNames;
            using (var probe = new MultiTaskSwin(options)) // CPU: only names, shapes and derived buffers are needed
            {
                expected = probe.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
                parameterNames = probe.named_parameters().Select(p => p.name).ToList();
            }
            var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var (name, fresh) in expected)
                {
                    if (adapters.TryGetValue(name, out var a))
                    {
                        weights[name] = a.clone();
                        continue;
                    }
                    bool isParameter = parameterNames.Contains(name);
                    if (backbone.TryGetValue(name, out var b))
                    {
                        if (!b.shape.SequenceEqual(fresh.shape))
                            throw new InvalidDataException($"Backbone '{backbonePath}': tensor '{name}' has shape [{string.Join(", ", b.shape)}], the network expects [{string.Join(", ", fresh.shape)}].");
                        weights[name] = b.to(fresh.dtype).clone();
                        continue;
                    }
                    if (isParameter)
                        throw new InvalidDataException($"Parameter '{name}' is in neither the adapters file '{adaptersPath}' nor the backbone checkpoint '{backbonePath}'.");
                    weights[name] = fresh.clone(); // a derived buffer (e.g. a relative-position index): rebuilt by the network
                }
                var unknown = adapters.Keys.Where(k => !expected.ContainsKey(k)).ToList();
                if (unknown.Count > 0)
                    throw new InvalidDataException($"'{adaptersPath}' holds {unknown.Count} tensor(s) the network does not have (e.g. {string.Join(", ", unknown.Take(5))}); it was written for other network settings.");
                return new MtLoraTransformer(mlContext, options, weights, preprocessing, Meta("image_column"), Int("batch_size"), DeviceFor(mlContext));
            }
            catch
            {
                foreach (var t in weights.Values) t.Dispose();
                throw;
            }
            finally
            {
                foreach (var t in expected.Values) t.Dispose();
            }
        }
        finally
        {
            foreach (var t in adapters.Values) t.Dispose();
            if (backbone != null) foreach (var t in backbone.Values) t.Dispose();
        }
    }
}
