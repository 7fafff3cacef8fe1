using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Tests.Checkpoints;
using Microsoft.ML.MtLora.Tests.MlNet;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Hardening;

/// <summary>
/// Issue #15, model.zip integrity and bounds: a flipped bit or an edited weights file is caught (the zip's CRC-32 and
/// the SHA-256 the model records), every number read from Model.key is bounded, names and shapes are checked against
/// the network before any tensor is allocated, NaN weights are refused by name, and models saved before the SHA-256
/// existed still load, with a note.
/// </summary>
public class ModelZipIntegrityTests(HardeningData data) : IClassFixture<HardeningData>
{
    /// <summary>The fields of an MTLoRA Model.key body, in the order Save writes them.</summary>
    private sealed record ModelKey(string ImageColumn, int BatchSize, int Size, string Interpolation, float[] Mean, float[] Std, string Network);

    private static string Save(TempDir dir, string name, Action<Dictionary<string, Tensor>>? edit = null)
    {
        var ml = new MLContext(seed: 1);
        var weights = MtLoraTestModel.Weights();
        edit?.Invoke(weights);
        var options = MtLoraTestModel.Options();
        using var model = new MtLoraTransformer(ml, options, weights, ImagePreprocessing.Reference(options.ImageSize), MtLoraColumnNames.Image, 2, CPU);
        var path = dir.File(name);
        ml.Model.Save(model, ml.Data.LoadFromEnumerable(MtLoraTestModel.Rows(1)).Schema, path);
        return path;
    }

    private static string Copy(string source, TempDir dir, string name)
    {
        File.Copy(source, dir.File(name));
        return dir.File(name);
    }

    /// <summary>Replaces (or, when <paramref name="change"/> returns null, removes) the entry ending in <paramref name="suffix"/>; the zip writes a correct CRC.</summary>
    private static void RewriteEntry(string zip, string suffix, Func<byte[], byte[]?> change)
    {
        var bytes = TorchZip.Entry(File.ReadAllBytes(zip), suffix);
        using var z = ZipFile.Open(zip, ZipArchiveMode.Update);
        var entry = z.Entries.Single(e => e.FullName.EndsWith(suffix, StringComparison.Ordinal));
        var name = entry.FullName;
        entry.Delete();
        if (change(bytes) is { } replaced)
            using (var s = z.CreateEntry(name).Open())
                s.Write(replaced);
    }

    /// <summary>
    /// Rewrites the MTLoRA transformer's Model.key body (after ML.NET's 256-byte header), fixing the header's offsets
    /// when its length changes: what a damaged or crafted model.zip can hold.
    /// </summary>
    private static void EditModelKey(string zip, Func<ModelKey, ModelKey> edit, uint? version = null) => RewriteEntry(zip, ModelKeyEntry(zip), key =>
    {
        long fpModel = BinaryPrimitives.ReadInt64LittleEndian(key.AsSpan(0x10)), cbModel = BinaryPrimitives.ReadInt64LittleEndian(key.AsSpan(0x18));
        var r = new BinaryReader(new MemoryStream(key, (int)fpModel, (int)cbModel));
        var fields = new ModelKey(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadString(),
            [r.ReadSingle(), r.ReadSingle(), r.ReadSingle()], [r.ReadSingle(), r.ReadSingle(), r.ReadSingle()], r.ReadString());
        var changed = edit(fields);
        var body = new MemoryStream();
        using (var w = new BinaryWriter(body, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(changed.ImageColumn); w.Write(changed.BatchSize); w.Write(changed.Size); w.Write(changed.Interpolation);
            foreach (var v in changed.Mean.Concat(changed.Std)) w.Write(v);
            w.Write(changed.Network);
        }
        long delta = body.Length - cbModel;
        var result = key[..(int)fpModel].Concat(body.ToArray()).Concat(key[(int)(fpModel + cbModel)..]).ToArray();
        BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(0x18), body.Length);
        foreach (int at in new[] { 0x20, 0x30, 0x80, 0x88, 0x90 }) // string table, string chars, tail, lim, assembly name
        {
            long v = BinaryPrimitives.ReadInt64LittleEndian(result.AsSpan(at));
            if (v != 0) BinaryPrimitives.WriteInt64LittleEndian(result.AsSpan(at), v + delta);
        }
        if (version is { } ver) BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(0x48), ver); // ModelVerWritten
        return result;
    });

    /// <summary>The MTLoRA transformer's Model.key: the one beside Weights.safetensors (its folder depends on how the model was saved).</summary>
    private static string ModelKeyEntry(string zip) => WeightsEntry(zip)[..^"Weights.safetensors".Length] + "Model.key";

    private static string WeightsEntry(string zip)
    {
        using var z = ZipFile.OpenRead(zip);
        return z.Entries.Single(e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal)).FullName;
    }

    private static string LoadFailure(string zip)
    {
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(zip, out _));
        var parts = new List<string>();
        for (var x = e; x != null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" | ", parts);
    }

    private static string CliError(params string[] args)
    {
        var (code, stdout, stderr) = CliRunner.Run(args);
        Assert.True(code == 2, $"exit code {code}: {stderr}");
        Assert.Equal("", stdout);
        Assert.DoesNotContain("   at ", stderr);
        return Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("mtlora ", StringComparison.Ordinal) && l.Contains("error:", StringComparison.Ordinal));
    }

    [Fact]
    public void AFlippedBitInsideTheDeflatedWeightsIsCaught()
    {
        using var dir = Fixture.TempDir();
        var good = Save(dir, "good.zip");
        var bytes = File.ReadAllBytes(good);
        // Where the deflated Weights.safetensors lies: after its local header (30 bytes, the name, the extra field).
        long compressed;
        using (var z = ZipFile.OpenRead(good))
            compressed = z.Entries.Single(e => e.FullName.EndsWith("Weights.safetensors", StringComparison.Ordinal)).CompressedLength;
        var entryName = Encoding.UTF8.GetBytes(WeightsEntry(good));
        int name = CraftedFiles.IndexOf(bytes, entryName);
        int start = name + entryName.Length + BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(name - 2));

        var rng = new Random(15);
        int inflatedToOtherBytes = 0, shaRefused = 0;
        for (int trial = 0; trial < 12; trial++)
        {
            var bad = (byte[])bytes.Clone();
            bad[start + 64 + rng.Next((int)compressed - 128)] ^= (byte)(1 << rng.Next(8));
            var file = dir.File($"flip{trial}.zip");
            File.WriteAllBytes(file, bad);
            var e = Assert.Throws<InvalidDataException>(() => ZipIntegrity.Verify(file));
            Assert.Contains("Weights.safetensors", e.Message);
            if (!e.Message.Contains("CRC-32", StringComparison.Ordinal)) continue; // the deflate stream broke: caught anyway
            // It inflated, to other bytes: ML.NET alone would load them; the model refuses them (the SHA-256 it recorded,
            // or the header check when the flip lands in the safetensors header).
            inflatedToOtherBytes++;
            var failure = LoadFailure(file);
            Assert.Contains("Weights.safetensors", failure);
            if (failure.Contains("SHA-256", StringComparison.Ordinal)) shaRefused++;
            if (inflatedToOtherBytes == 1)
            {
                var line = CliError("evaluate", "--model", file, "--data", data.DataRoot);
                Assert.Contains(file, line);
                Assert.Contains("CRC-32", line);
            }
        }
        Assert.True(shaRefused > 0, $"no flip reached the SHA-256 check ({inflatedToOtherBytes} inflated cleanly)");
    }

    [Fact]
    public void AnEditedReZippedWeightsFileFailsTheRecordedSha256()
    {
        using var dir = Fixture.TempDir();
        var zip = Save(dir, "edited.zip");
        RewriteEntry(zip, "Weights.safetensors", b =>
        {
            var tensors = SafeTensors.Read(new MemoryStream(b), "w", out _);
            using (no_grad()) tensors.Values.First(t => t.is_floating_point()).view(-1)[0] = tensor(42f);
            var edited = new MemoryStream();
            SafeTensors.Write(edited, tensors);
            foreach (var t in tensors.Values) t.Dispose();
            return edited.ToArray();
        });
        ZipIntegrity.Verify(zip); // a well-formed zip: its CRCs were written for the new bytes
        var all = LoadFailure(zip);
        Assert.Contains("Weights.safetensors' is damaged: its SHA-256 is", all);
        Assert.Contains("the model recorded", all);
        Assert.Contains("SHA-256", CliError("evaluate", "--model", zip, "--data", data.DataRoot));
    }

    [Fact]
    public void NamesAndShapesAreCheckedAgainstTheNetworkBeforeAnythingIsAllocated()
    {
        using var dir = Fixture.TempDir();
        var good = Save(dir, "good.zip");
        (string Name, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> Edit, string Expected)[] cases =
        [
            ("extra.zip", w => new(w) { ["evil"] = zeros(256, 256) }, "holds tensor 'evil', which the network the model describes does not have"),
            ("shape.zip", w => { var k = w.Keys.First(n => n.EndsWith("qkv.linear.weight", StringComparison.Ordinal)); return new(w) { [k] = zeros(4096, 16) }; }, "the network the model describes expects"),
            ("missing.zip", w => { var c = new Dictionary<string, Tensor>(w); c.Remove(c.Keys.First(n => n.StartsWith("decoders.", StringComparison.Ordinal))); return c; }, "lacks 1 tensor(s)"),
        ];
        foreach (var (name, edit, expected) in cases)
        {
            var zip = Copy(good, dir, name);
            string digest = "";
            RewriteEntry(zip, "Weights.safetensors", b =>
            {
                var tensors = SafeTensors.Read(new MemoryStream(b), "w", out _);
                var edited = new MemoryStream();
                var changed = edit(tensors);
                SafeTensors.Write(edited, changed);
                foreach (var t in changed.Values.Concat(tensors.Values)) t.Dispose(); // disposing twice is harmless
                digest = Convert.ToHexStringLower(SHA256.HashData(edited.ToArray()));
                return edited.ToArray();
            });
            // A forged digest too: the header check does not depend on it.
            RewriteEntry(zip, "Weights.sha256", _ => Encoding.ASCII.GetBytes(digest));
            Assert.Contains(expected, LoadFailure(zip));
        }
    }

    [Fact]
    public void EveryNumberReadFromModelKeyIsBounded()
    {
        using var dir = Fixture.TempDir();
        var good = Save(dir, "good.zip");
        (string Name, Func<ModelKey, ModelKey> Edit, string Expected)[] cases =
        [
            // Before: "Out of memory" and an abort, from a List of 2^31 images made for one batch.
            ("batch.zip", k => k with { BatchSize = int.MaxValue }, "inference batch size is 2147483647; expected 1 to 1024"),
            ("zero.zip", k => k with { BatchSize = 0 }, "inference batch size is 0"),
            ("depth.zip", k => k with { Network = SetDepths(k.Network, 200) }, "network option 'depths' is 200; this library reads models up to 64"),
            ("mean.zip", k => k with { Mean = [float.NaN, 0.5f, 0.5f] }, "mean or std is not a finite number"),
            ("size.zip", k => k with { Size = 256 }, "resizes to 256 px but its network takes 128 px"),
        ];
        foreach (var (name, edit, expected) in cases)
        {
            var zip = Copy(good, dir, name);
            EditModelKey(zip, edit);
            Assert.Contains(expected, LoadFailure(zip));
        }
        Assert.Contains("inference batch size is 2147483647", CliError("evaluate", "--model", dir.File("batch.zip"), "--data", data.DataRoot));
    }

    private static string SetDepths(string network, int last)
    {
        var json = JsonNode.Parse(network)!.AsObject();
        json["depths"] = new JsonArray(2, 2, 2, last);
        return json.ToJsonString();
    }

    [Fact]
    public void NonFiniteWeightsAreRefusedByName()
    {
        using var dir = Fixture.TempDir();
        string? poisoned = null;
        var zip = Save(dir, "nan.zip", w =>
        {
            poisoned = w.Keys.First(k => k.StartsWith("decoders.", StringComparison.Ordinal) && w[k].is_floating_point());
            using (no_grad()) w[poisoned].view(-1)[0] = tensor(float.NaN);
        });
        Assert.Contains($"tensor '{poisoned}' holds NaN or infinite values", LoadFailure(zip));
        // Before: a whole evaluation ran, then .NET's "cannot write infinity as JSON". Now: one line, exit code 2.
        Assert.Contains("NaN", CliError("evaluate", "--model", zip, "--data", data.DataRoot));
    }

    [Fact]
    public void ModelsSavedBeforeTheSha256StillLoadWithANote()
    {
        using var dir = Fixture.TempDir();
        var zip = Copy(data.ModelPath, dir, "old.zip");
        // Exactly what layout 0x00010001 wrote: the same Model.key body, no Weights.sha256.
        RewriteEntry(zip, "Weights.sha256", _ => null);
        EditModelKey(zip, k => k, version: 0x00010001);
        var ml = new MLContext();
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Add(e.RawMessage); };
        var model = ml.Model.Load(zip, out _);
        (model as IDisposable)?.Dispose();
        Assert.Contains(warnings, w => w.Contains("without an integrity check", StringComparison.Ordinal));

        var (code, stdout, stderr) = CliRunner.Run("evaluate", "--model", zip, "--data", data.DataRoot);
        Assert.True(code == 0, stderr);
        Assert.NotEmpty(stdout);
        Assert.Contains("note:", stderr);
        Assert.Contains("Save the model again", stderr);

        // A current model without its digest is damaged, not old.
        var current = Copy(data.ModelPath, dir, "nodigest.zip");
        RewriteEntry(current, "Weights.sha256", _ => null);
        Assert.Contains("no valid 'Weights.sha256' entry", LoadFailure(current));
    }
}
