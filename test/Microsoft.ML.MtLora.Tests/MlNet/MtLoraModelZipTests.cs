using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Pascal;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.MlNet;

public class MtLoraModelZipTests
{
    /// <summary>A chain LoadImages → MTLoRA over PNG files, the way a user scores files.</summary>
    private static (ITransformer Chain, IDataView Input) FileChain(MLContext ml, MtLoraTransformer model, string folder, IEnumerable<string> files)
    {
        var input = ml.Data.LoadFromEnumerable(files.Select(f => new MtLoraTransformerTests.PathRow { Name = f }));
        var load = ml.Transforms.LoadImages("Image", folder, "Name").Fit(input);
        return (load.Append(model), input);
    }

    [Fact]
    public void ModelZipLoadsInAFreshProcessWithIdenticalOutputs()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 3);
        using var dir = Fixture.TempDir();
        var files = MtLoraTestModel.WritePngs(dir.Path, 5);
        var (chain, input) = FileChain(ml, model, dir.Path, files);
        var zip = dir.File("model.zip");
        ml.Model.Save(chain, input.Schema, zip);
        var expected = MtLoraTransformerTests.ReadPredictions(chain.Transform(input));

        // Absolute paths: the child resolves them without the image folder the chain was fitted with.
        var result = dir.File("probe.safetensors");
        var (code, _, stderr) = RunProbe(zip, result, files.Select(f => Path.Combine(dir.Path, f)));
        Assert.True(code == 0, $"probe exit code {code}: {stderr}");
        AssertSameAsProbe(expected, result);
    }

    /// <summary>The probe's predictions (<paramref name="result"/>) are bit-identical to <paramref name="expected"/>, row by row.</summary>
    private static void AssertSameAsProbe(List<Dictionary<string, Array>> expected, string result)
    {
        var actual = SafeTensors.Load(result);
        try
        {
            for (int i = 0; i < expected.Count; i++)
                foreach (var (name, values) in expected[i])
                {
                    var t = actual[$"{i}.{name}"];
                    switch (values)
                    {
                        case float[] f: Assert.Equal(f, t.data<float>().ToArray()); break;   // bit-identical
                        case byte[] b: Assert.Equal(b, t.data<byte>().ToArray()); break;
                        case int[] n: Assert.Equal(n, t.data<int>().ToArray()); break;
                    }
                }
            Assert.Equal(expected.Count * expected[0].Count, actual.Count);
        }
        finally { foreach (var t in actual.Values) t.Dispose(); }
    }

    private static (int ExitCode, string StdOut, string StdErr) RunProbe(string zip, string output, IEnumerable<string> images, string pathColumn = "Name")
    {
        var probe = Path.Combine(AppContext.BaseDirectory, "ModelLoadProbe.dll");
        Assert.True(File.Exists(probe), $"{probe} is missing (built by the ModelLoadProbe project reference)");
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(host) || !File.Exists(host))
            host = Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(probe);
        psi.ArgumentList.Add("--threads"); // the same reduction order as this process, for bit-identical values
        psi.ArgumentList.Add(TorchSharp.torch.get_num_threads().ToString(System.Globalization.CultureInfo.InvariantCulture));
        psi.ArgumentList.Add("--path-column");
        psi.ArgumentList.Add(pathColumn);
        psi.ArgumentList.Add(zip);
        psi.ArgumentList.Add(output);
        foreach (var i in images) psi.ArgumentList.Add(i);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "the probe did not finish in 2 minutes");
        return (p.ExitCode, stdout, stderr.Result);
    }

    /// <summary>
    /// The documented way to save a model (README, "model.zip"): the PASCAL loader's ImagePath column as the model's input,
    /// LoadImages inside it. A new process loads it with its complete input schema and scores image paths.
    /// </summary>
    [Fact]
    public void PathColumnModelZipIsSelfDescribingInAFreshProcess()
    {
        using var dir = Fixture.TempDir();
        var data = Path.Combine(dir.Path, "PASCAL_MT");
        MtLoraTestModel.WritePascal(data, train: 2, val: 3);
        var ml = new MLContext(seed: 1);
        var paths = new PascalContextOptions { ImageColumn = PascalImageColumn.FilePath };
        var train = ml.Data.LoadPascalContext(data, "train", options: paths);
        var pipeline = ml.Transforms.LoadImages(MtLoraColumnNames.Image, imageFolder: null!, inputColumnName: MtLoraColumnNames.ImagePath)
            .Append(ml.MultiTask().Trainers.MtLora(MtLoraEstimatorTests.OneStepOptions()));
        using var model = pipeline.Fit(train);
        var zip = dir.File("model.zip");
        ml.Model.Save(model, train.Schema, zip);

        // What a user scores: image files, by path; the rest of the input schema is not needed to predict.
        var images = ml.Data.LoadPascalContext(data, "val", options: paths).Ids.Select(id => Path.Combine(data, "JPEGImages", id + ".jpg")).ToList();
        var scoring = ml.Data.LoadFromEnumerable(images.Select(p => new ImagePathRow { ImagePath = p }));
        var expected = MtLoraTransformerTests.ReadPredictions(model.Transform(scoring));

        var result = dir.File("probe.safetensors");
        var (code, stdout, stderr) = RunProbe(zip, result, images, pathColumn: MtLoraColumnNames.ImagePath);
        Assert.True(code == 0, $"probe exit code {code}: {stderr}");
        var stored = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("input-schema\t", StringComparison.Ordinal))
            .Select(l => l.Split('\t')).Select(f => (f[1], f[2].TrimEnd('\r'))).ToList();
        Assert.Equal(train.Schema.Select(c => (c.Name, c.Type.ToString()!)), stored); // every column, the path first
        AssertSameAsProbe(expected, result);
    }

    /// <summary>What the README says happens otherwise: ML.NET's schema saver leaves an image column out of the stored input schema.</summary>
    [Fact]
    public void DecodedImageColumnIsLeftOutOfTheStoredInputSchema()
    {
        using var dir = Fixture.TempDir();
        MtLoraTestModel.WritePascal(dir.Path, train: 1, val: 1, width: 32, height: 32);
        var ml = new MLContext(seed: 1);
        var val = ml.Data.LoadPascalContext(dir.Path, "val");
        using var model = MtLoraTestModel.Create(ml);
        var zip = dir.File("decoded.zip");
        ml.Model.Save(model, val.Schema, zip);
        var loaded = ml.Model.Load(zip, out var stored);
        using (loaded as IDisposable)
        {
            Assert.Null(stored.GetColumnOrNull(MtLoraColumnNames.Image));
            Assert.Equal(val.Schema.Where(c => c.Name != MtLoraColumnNames.Image).Select(c => c.Name), stored.Select(c => c.Name));
            // The model still scores data that has the image column, built by the user.
            Assert.Single(MtLoraTransformerTests.ReadPredictions(loaded.Transform(val), ["Id", "SaliencyProbability"]));
        }
    }

    private sealed class ImagePathRow
    {
        public string ImagePath { get; set; } = "";
    }

    [Fact]
    public void ChainWithImageTransformsRoundTripsInProcess()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        using var dir = Fixture.TempDir();
        var files = MtLoraTestModel.WritePngs(dir.Path, 4);
        var input = ml.Data.LoadFromEnumerable(files.Select(f => new MtLoraTransformerTests.PathRow { Name = f }));
        var pre = ml.Transforms.LoadImages("Image", dir.Path, "Name")
            .Append(ml.Transforms.ResizeImages("Image", imageWidth: 40, imageHeight: 30, inputColumnName: "Image"))
            .Fit(input);
        var chain = pre.Append(model);
        var zip = dir.File("chain.zip");
        ml.Model.Save(chain, input.Schema, zip);
        var expected = MtLoraTransformerTests.ReadPredictions(chain.Transform(input));

        var ml2 = new MLContext(seed: 2);
        var loaded = ml2.Model.Load(zip, out var schema);
        Assert.Equal("Name", schema[0].Name);
        try
        {
            var output = loaded.Transform(ml2.Data.LoadFromEnumerable(files.Select(f => new MtLoraTransformerTests.PathRow { Name = f })));
            Assert.Equal([21, 30, 40], ((VectorDataViewType)output.Schema["SemsegScore"].Type).Dimensions.ToArray());
            MtLoraTransformerTests.AssertSame(expected, MtLoraTransformerTests.ReadPredictions(output));
            var last = Assert.IsType<MtLoraTransformer>(((TransformerChain<ITransformer>)loaded).LastTransformer);
            Assert.Equal(model.Tasks, last.Tasks);
            Assert.Equal(2, last.BatchSize);
            Assert.Equal(model.ImageSize, last.ImageSize);
        }
        finally { (loaded as IDisposable)?.Dispose(); }
    }

    [Fact]
    public void TransformerAloneRoundTripsAndKeepsTheUnmergedWeights()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var rows = MtLoraTestModel.Rows(3);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var dir = Fixture.TempDir();
        var zip = dir.File("alone.zip");
        ml.Model.Save(model, data.Schema, zip);
        using var entries = ZipFile.OpenRead(zip);
        Assert.Contains(entries.Entries, e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal));

        var loaded = Assert.IsType<MtLoraTransformer>(new MLContext(seed: 3).Model.Load(zip, out _));
        using (loaded)
        {
            MtLoraTransformerTests.AssertSame(
                MtLoraTransformerTests.ReadPredictions(model.Transform(data)),
                MtLoraTransformerTests.ReadPredictions(loaded.Transform(data)));
            // Saving the loaded model again writes the same weights (no merge/unmerge drift).
            var again = dir.File("again.zip");
            ml.Model.Save(loaded, data.Schema, again);
            Assert.Equal(ReadEntry(zip, "Weights.safetensors"), ReadEntry(again, "Weights.safetensors"));
        }
    }

    private static byte[] ReadEntry(string zip, string suffix)
    {
        using var z = ZipFile.OpenRead(zip);
        using var s = z.Entries.Single(e => e.FullName.EndsWith(suffix, StringComparison.Ordinal)).Open();
        using var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    [Fact]
    public void DamagedWeightsEntryGivesAClearError()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1));
        using var dir = Fixture.TempDir();
        var zip = dir.File("damaged.zip");
        ml.Model.Save(model, data.Schema, zip);
        using (var z = ZipFile.Open(zip, ZipArchiveMode.Update))
        {
            var entry = z.Entries.Single(e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal));
            var name = entry.FullName;
            entry.Delete();
            using var s = z.CreateEntry(name).Open();
            s.Write(new byte[] { 200, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}' }); // a header that claims more than there is
        }
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(zip, out _));
        var all = Flatten(e);
        Assert.Contains("Weights.safetensors", all);
        Assert.Contains("safetensors", all);
    }

    [Fact]
    public void MissingWeightsEntryGivesAClearError()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1));
        using var dir = Fixture.TempDir();
        var zip = dir.File("incomplete.zip");
        ml.Model.Save(model, data.Schema, zip);
        using (var z = ZipFile.Open(zip, ZipArchiveMode.Update))
            z.Entries.Single(e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal)).Delete();
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(zip, out _));
        Assert.Contains("no 'Weights.safetensors' entry", Flatten(e));
    }

    [Fact]
    public void ForeignOrTruncatedFilesAreRejected()
    {
        using var dir = Fixture.TempDir();
        var foreign = dir.File("foreign.zip");
        using (var z = ZipFile.Open(foreign, ZipArchiveMode.Create))
        using (var s = new StreamWriter(z.CreateEntry("readme.txt").Open()))
            s.Write("not a model");
        Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(foreign, out _));

        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1));
        var zip = dir.File("model.zip");
        ml.Model.Save(model, data.Schema, zip);
        var bytes = File.ReadAllBytes(zip);
        var truncated = dir.File("truncated.zip");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(truncated, out _));
    }

    private static string Flatten(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x != null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" | ", parts);
    }

    [Fact]
    public void AdaptersRoundTripOnTopOfTheBackbone()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(3));
        using var dir = Fixture.TempDir();
        var adapters = dir.File("adapters.safetensors");
        model.SaveAdapters(adapters);

        // The backbone: the full state dict (as a pretrained checkpoint would hold the frozen parameters).
        var backbone = dir.File("backbone.safetensors");
        var zip = dir.File("m.zip");
        ml.Model.Save(model, data.Schema, zip);
        File.WriteAllBytes(backbone, ReadEntry(zip, "Weights.safetensors"));

        var saved = SafeTensors.Load(adapters, out var meta);
        try
        {
            Assert.Equal("mtlora-adapters", meta["format"]);
            Assert.DoesNotContain("backbone.layers.0.blocks.0.attn.qkv.linear.weight", saved.Keys); // frozen backbone parameters are left out
            Assert.Contains("backbone.layers.0.blocks.0.attn.qkv.lora_shared_A", saved.Keys);
            Assert.Contains(saved.Keys, k => k.StartsWith("decoders.", StringComparison.Ordinal));
            Assert.True(new FileInfo(adapters).Length < new FileInfo(backbone).Length);
        }
        finally { foreach (var t in saved.Values) t.Dispose(); }

        using var rebuilt = MtLoraTransformer.LoadFromAdapters(ml, adapters, backbone);
        MtLoraTransformerTests.AssertSame(
            MtLoraTransformerTests.ReadPredictions(model.Transform(data)),
            MtLoraTransformerTests.ReadPredictions(rebuilt.Transform(data)));
    }

    [Fact]
    public void AdaptersNeedTheFrozenBackboneTensors()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml);
        using var dir = Fixture.TempDir();
        var adapters = dir.File("adapters.safetensors");
        model.SaveAdapters(adapters);
        var empty = dir.File("empty.safetensors");
        SafeTensors.Save(empty, new Dictionary<string, Tensor>());
        var e = Assert.Throws<InvalidDataException>(() => MtLoraTransformer.LoadFromAdapters(ml, adapters, empty));
        Assert.Contains("backbone.", e.Message);
        Assert.Contains("empty.safetensors", e.Message);

        var e2 = Assert.Throws<InvalidDataException>(() => MtLoraTransformer.LoadFromAdapters(ml, empty, adapters));
        Assert.Contains("not an MTLoRA adapters file", e2.Message);
    }

    [Fact]
    public void ReferenceCheckpointLoadsForInference()
    {
        var ml = new MLContext(seed: 1);
        using var model = MtLoraTestModel.Create(ml, batchSize: 2);
        var data = ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(2));
        // The reference's own torch.save output, wrapped as its training script writes checkpoints.
        using var fromPth = MtLoraTransformer.LoadFromCheckpoint(ml, MtLoraTestModel.Options(), Fixture.Path("tiny4", "checkpoint_wrapped.pth"), batchSize: 2);
        MtLoraTransformerTests.AssertSame(
            MtLoraTransformerTests.ReadPredictions(model.Transform(data)),
            MtLoraTransformerTests.ReadPredictions(fromPth.Transform(data)));
        Assert.Equal(128, fromPth.NetworkOptions.ImageSize);

        var e = Assert.Throws<InvalidDataException>(() => MtLoraTransformer.LoadFromCheckpoint(ml, MtLoraTestModel.Options(), Fixture.Path("swin_ms", "swin_ms_format.pth")));
        Assert.Contains("backbone checkpoint", e.Message);
        var other = MtLoraTestModel.Options();
        other.SharedRank = 16;
        var e2 = Assert.Throws<InvalidDataException>(() => MtLoraTransformer.LoadFromCheckpoint(ml, other, Fixture.Path("tiny4", "model.safetensors")));
        Assert.Contains("model.safetensors", e2.Message);
        Assert.Contains("lora_shared_A", e2.Message);
    }
}
