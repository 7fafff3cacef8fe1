using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.MtLora.Checkpoints.Pickle;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// A PyTorch checkpoint written by <c>torch.save</c> (the zip format of PyTorch 1.6 and later), read the way
/// <c>torch.load(path, map_location="cpu", weights_only=True)</c> reads it: the pickle may only rebuild tensors and
/// storages, <c>OrderedDict</c>s, <c>torch.Size</c> and plain containers and scalars; anything else (<c>os.system</c>,
/// <c>builtins.eval</c>, arbitrary classes) is refused with an <see cref="InvalidDataException"/> that names the file and the global. No Python code
/// runs, ever.
/// </summary>
/// <remarks>
/// <para>
/// Layout read: a zip with one top folder <c>&lt;archive&gt;/</c> holding <c>data.pkl</c> (the pickled object),
/// <c>data/&lt;key&gt;</c> (the raw little-endian bytes of each storage), and optionally <c>byteorder</c>
/// (must say <c>little</c>). Tensors come from <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)</c>
/// as strided views of their storage, so tensors that shared a storage in Python share it here too.
/// </para>
/// <para>
/// <see cref="Root"/> is the unpickled object as a read-only tree: <see langword="null"/>, <see cref="bool"/>,
/// <see cref="long"/>, <see cref="System.Numerics.BigInteger"/>, <see cref="double"/>, <see cref="string"/>,
/// <see cref="byte"/>[], <see cref="PickleDictionary"/> (dict / OrderedDict), <see cref="PickleSequence"/>
/// (list / tuple / set), <see cref="PickleObject"/> (inert classes named in <see cref="CheckpointReadOptions.InertGlobals"/>)
/// and <see cref="Tensor"/> (CPU). The checkpoint owns every tensor of the tree and disposes them with itself; use
/// <see cref="TakeStateDict"/> to keep the weights beyond it.
/// </para>
/// <para>
/// A damaged or crafted file is refused, naming the file, before it can cost more than the file itself: the CRC-32 of every
/// zip member read is checked (a flipped bit in a stored weight is otherwise invisible); the storages together may not
/// exceed the file's size; a tensor view must lie within its storage and may not hold more elements than it (no zero-stride
/// expansion, which a later copy would materialise), with sizes and strides whose extent fits 64 bits; the pickle may build
/// at most 4 objects or container items per byte plus 65,536 (see SafeUnpickler). Storages over 2 GiB are read in slices.
/// </para>
/// </remarks>
public sealed class PyTorchCheckpoint : IDisposable
{
    /// <summary>
    /// The <see cref="Exception.Data"/> key under which a refusal's <see cref="InvalidDataException"/> holds the refused
    /// global as <c>module.name</c> (or the refused opcode's name).
    /// </summary>
    public const string RefusedGlobalKey = "RefusedGlobal";

    private const long MaxPickleBytes = 1L << 30;
    private readonly List<Tensor> _owned;
    private bool _disposed;

    private PyTorchCheckpoint(string fileName, string archiveName, object? root, List<Tensor> owned)
    {
        FileName = fileName;
        ArchiveName = archiveName;
        Root = root;
        _owned = owned;
    }

    /// <summary>The file (or stream name) the checkpoint was read from.</summary>
    public string FileName { get; }

    /// <summary>The archive's top folder name (<c>torch.save</c> uses the file name without extension).</summary>
    public string ArchiveName { get; }

    /// <summary>The unpickled object; see the class remarks for the types it contains.</summary>
    public object? Root { get; }

    /// <summary>Reads a <c>torch.save</c> checkpoint from a file, strictly (<see cref="CheckpointReadOptions.Default"/>).</summary>
    /// <param name="path">The <c>.pth</c> / <c>.pt</c> file.</param>
    /// <param name="options">Which extra classes may appear as inert data; <see langword="null"/> for the strict default.</param>
    /// <returns>The checkpoint; dispose it to free its tensors.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The pickle asks for a global or an opcode outside the allow-list (the message
    /// names the file and the global, also found in <see cref="Exception.Data"/> under <see cref="RefusedGlobalKey"/>); or
    /// the file is not a zip <c>torch.save</c> archive (a legacy pre-1.6 file or a raw
    /// pickle included), or it is truncated or corrupt. The message names the file.</exception>
    public static PyTorchCheckpoint Load(string path, CheckpointReadOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PyTorch checkpoint '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        return Read(stream, path, options);
    }

    /// <summary>Reads a <c>torch.save</c> checkpoint from a seekable stream.</summary>
    /// <param name="stream">The stream, positioned at the start of the checkpoint; it is left open.</param>
    /// <param name="name">A name for error messages (usually the file path).</param>
    /// <param name="options">Which extra classes may appear as inert data; <see langword="null"/> for the strict default.</param>
    /// <returns>The checkpoint; dispose it to free its tensors.</returns>
    public static PyTorchCheckpoint Read(Stream stream, string name, CheckpointReadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("The stream must be seekable (a zip archive is read from its end).", nameof(stream));
        options ??= CheckpointReadOptions.Default;
        RefuseNonZip(stream, name);

        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{name}' is not a readable zip archive (truncated or corrupt): {e.Message}", e);
        }

        using (zip)
        {
            var (archive, pickleEntry) = FindArchive(zip, name);
            CheckByteOrder(zip, archive, name);
            byte[] pickle = ReadEntry(pickleEntry, name, MaxPickleBytes);

            var host = new TorchHost(zip, archive, name, stream.Length);
            using var scope = torch.NewDisposeScope();
            try
            {
                object? root = new SafeUnpickler(pickle, name, host, options.InertGlobals).Load();
                foreach (var t in host.Tensors) t.DetachFromDisposeScope();
                return new PyTorchCheckpoint(name, archive, root, host.Tensors);
            }
            catch (Exception e) when (e is IOException or ExternalException or ArgumentException && e is not InvalidDataException)
            {
                throw new InvalidDataException($"'{name}' could not be read as a PyTorch checkpoint: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Finds the state dict in <see cref="Root"/>: the root itself when it maps names to tensors, or the <c>"model"</c>
    /// entry of a wrapper dict (the reference MTLoRA checkpoints and Microsoft's Swin releases:
    /// <c>{"model": state_dict, "epoch": ..., "optimizer": ..., ...}</c>; other entries are ignored).
    /// </summary>
    /// <returns>The state dict as it is in the file (keys unchanged). The tensors still belong to this checkpoint and die
    /// with it; see <see cref="TakeStateDict"/>.</returns>
    /// <exception cref="InvalidDataException">No state dict is found, or one of its values is not a tensor.</exception>
    public IReadOnlyDictionary<string, Tensor> GetStateDict()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Root is not PickleDictionary top)
            throw new InvalidDataException($"'{FileName}' holds {SafeUnpickler.Describe(Root)}, not a state dict (a dict of name → tensor, or {{\"model\": state_dict, ...}}).");
        PickleDictionary sd = top;
        if (top.TryGetValue("model", out var inner) && inner is PickleDictionary model)
            sd = model;
        else if (top.TryGetValue("model", out inner))
            throw new InvalidDataException($"'{FileName}': the \"model\" entry holds {SafeUnpickler.Describe(inner)}, not a state dict.");

        var result = new Dictionary<string, Tensor>(sd.Count, StringComparer.Ordinal);
        foreach (var (k, v) in sd)
        {
            if (k is not string key) throw new InvalidDataException($"'{FileName}': state dict key {SafeUnpickler.Describe(k)} is not a string.");
            if (v is not Tensor t)
            {
                string where = ReferenceEquals(sd, top) ? "" : " of \"model\"";
                throw new InvalidDataException($"'{FileName}': state dict entry '{key}'{where} holds {SafeUnpickler.Describe(v)}, not a tensor.");
            }
            result[key] = t;
        }
        return result;
    }

    /// <summary>
    /// Returns the state dict (see <see cref="GetStateDict"/>) as tensors the caller owns: they stay valid after this
    /// checkpoint is disposed. Every value is a distinct <see cref="Tensor"/> object, even where the file stored one tensor
    /// under two names (they then share memory, as in PyTorch).
    /// </summary>
    /// <returns>The state dict, keys unchanged, in file order.</returns>
    public Dictionary<string, Tensor> TakeStateDict()
    {
        var sd = GetStateDict();
        var result = new Dictionary<string, Tensor>(sd.Count, StringComparer.Ordinal);
        foreach (var (k, t) in sd)
        {
            // A new handle on the same memory: the caller may dispose it independently of this checkpoint and of its aliases.
            var own = t.detach();
            own.DetachFromDisposeScope();
            result[k] = own;
        }
        return result;
    }

    /// <summary>Disposes every tensor of <see cref="Root"/>.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }

    // ----------------------------------------------------------------- archive structure

    private static void RefuseNonZip(Stream stream, string name)
    {
        long start = stream.Position;
        Span<byte> head = stackalloc byte[4];
        int n = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        stream.Position = start;
        if (n >= 2 && head[0] == (byte)'P' && head[1] == (byte)'K') return;
        if (n >= 1 && head[0] == 0x80)
            throw new InvalidDataException($"'{name}' is a raw pickle, not a zip archive: either the legacy (pre-1.6) torch.save format or a plain pickle. "
                + "It is not read (a raw pickle can run code in Python); re-save it with a current PyTorch (torch.save writes the zip format) or convert it to safetensors.");
        throw new InvalidDataException($"'{name}' is not a torch.save checkpoint: it does not start with the zip signature 'PK'.");
    }

    private static (string Archive, ZipArchiveEntry Pickle) FindArchive(ZipArchive zip, string name)
    {
        ZipArchiveEntry? found = null;
        foreach (var e in zip.Entries)
        {
            string full = e.FullName;
            int slash = full.IndexOf('/');
            if (slash <= 0 || full.IndexOf('/', slash + 1) >= 0 || full[(slash + 1)..] != "data.pkl") continue;
            if (found is not null) throw new InvalidDataException($"'{name}' holds more than one '<archive>/data.pkl' ('{found.FullName}', '{full}'): not a torch.save checkpoint.");
            found = e;
        }
        if (found is null) throw new InvalidDataException($"'{name}' is a zip archive without '<archive>/data.pkl': not a torch.save checkpoint.");
        return (found.FullName[..found.FullName.IndexOf('/')], found);
    }

    private static void CheckByteOrder(ZipArchive zip, string archive, string name)
    {
        var entry = zip.GetEntry(archive + "/byteorder");
        if (entry is null) return; // written since PyTorch 1.10; older files are little-endian
        string order = Encoding.ASCII.GetString(ReadEntry(entry, name, 64)).Trim();
        if (order != "little")
            throw new InvalidDataException($"'{name}' was written on a '{order}'-endian machine; only little-endian checkpoints are supported.");
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, string name, long maxBytes)
    {
        if (entry.Length < 0 || entry.Length > maxBytes)
            throw new InvalidDataException($"'{name}': zip entry '{entry.FullName}' declares {entry.Length} bytes, more than the {maxBytes} allowed.");
        var bytes = new byte[entry.Length];
        try
        {
            using var s = ZipIntegrity.OpenChecked(entry, name);
            s.ReadExactly(bytes);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{name}': zip entry '{entry.FullName}' is truncated ({e.Message}).", e);
        }
        return bytes;
    }

    // ----------------------------------------------------------------- the torch layer over pickle

    private sealed class StorageType(string fullName, ScalarType dtype) : PickleCallable
    {
        public ScalarType DType { get; } = dtype;

        public override string FullName { get; } = fullName;
    }

    private sealed class TorchFunction(string fullName) : PickleCallable
    {
        public override string FullName { get; } = fullName;
    }

    /// <summary>A storage read from <c>data/&lt;key&gt;</c>: a flat tensor of its dtype.</summary>
    private sealed class TorchStorage(string key, ScalarType dtype, Tensor flat)
    {
        public string Key { get; } = key;

        public ScalarType DType { get; } = dtype;

        public Tensor Flat { get; } = flat;

        public long Numel => Flat.shape[0];
    }

    private sealed class TorchHost(ZipArchive zip, string archive, string file, long fileBytes) : IPickleHost
    {
        // torch.save stores storages uncompressed, so together they cannot exceed the file; this bounds what a
        // crafted archive (a zip bomb, entries sharing their data) can make us allocate.
        private long _storageBytes;
        private readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);

        public List<Tensor> Tensors { get; } = [];

        public PickleCallable? ResolveGlobal(string module, string name)
        {
            string full = module + "." + name;
            if (full is "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state" or "torch.Size")
                return new TorchFunction(full);
            if (module == "torch" && StorageDType(name) is { } dtype) return new StorageType(full, dtype);
            return null;
        }

        public object? Call(PickleCallable callable, PickleSequence args)
        {
            switch (callable.FullName)
            {
                case "torch._utils._rebuild_tensor_v2":
                    return RebuildTensor(args);
                case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                    // (data, requires_grad, backward_hooks[, state]): the data tensor is all a weights file needs.
                    if (args.Count is < 3 or > 4 || args[0] is not Tensor data) throw Bad($"{callable.FullName} needs (tensor, requires_grad, hooks)");
                    return data;
                case "torch.Size":
                    if (args.Count != 1 || args[0] is not PickleSequence dims || dims.Any(d => d is not long)) throw Bad("torch.Size needs one tuple of ints");
                    return new PickleSequence(PickleSequenceKind.Tuple, dims);
                default:
                    throw PickleRefusal.Create(callable.FullName, $"'{file}': refusing to call '{callable.FullName}' ({SafeUnpickler.AllowedSummary}).");
            }
        }

        public object? PersistentLoad(object? pid)
        {
            // torch.save: ('storage', storage_type, key, location, numel)
            if (pid is not PickleSequence { Kind: PickleSequenceKind.Tuple, Count: 5 } t || t[0] is not "storage")
                throw Bad($"persistent id {SafeUnpickler.Describe(pid)} is not ('storage', type, key, location, numel)");
            if (t[1] is not StorageType type) throw Bad($"persistent id has storage type {SafeUnpickler.Describe(t[1])}");
            if (t[2] is not string key || key.Length == 0 || key.Contains('/') || key.Contains('\\')) throw Bad("persistent id has a bad storage key");
            if (t[3] is not string) throw Bad($"storage '{key}' has location {SafeUnpickler.Describe(t[3])}, not a string");
            if (t[4] is not long numel || numel < 0) throw Bad($"storage '{key}' has a bad element count");

            if (_storages.TryGetValue(key, out var known))
            {
                if (known.DType != type.DType || known.Numel != numel) throw Bad($"storage '{key}' is referenced as {type.DType}[{numel}] and as {known.DType}[{known.Numel}]");
                return known;
            }

            string entryName = $"{archive}/data/{key}";
            var entry = zip.GetEntry(entryName) ?? throw Bad($"storage '{key}' is missing: no zip entry '{entryName}'");
            long elem = SafeTensors.ElementSize(type.DType);
            long expected;
            try { expected = checked(numel * elem); }
            catch (OverflowException) { throw Bad($"storage '{key}' has an absurd element count {numel}"); }
            if (entry.Length != expected)
                throw Bad($"storage '{key}' ({type.FullName}, {numel} elements) needs {expected} bytes but zip entry '{entryName}' has {entry.Length}");
            _storageBytes += expected;
            if (_storageBytes > fileBytes)
                throw Bad($"the storages declare {_storageBytes} bytes in all, more than the file's {fileBytes}");

            var flat = torch.empty([numel], type.DType);
            var storage = new TorchStorage(key, type.DType, flat);
            _storages[key] = storage; // the dispose scope of Read frees the flat tensors; views keep their memory alive
            if (expected > 0)
            {
                try
                {
                    using var s = ZipIntegrity.OpenChecked(entry, file); // checks the member's CRC-32 at its last byte
                    TensorBytes.Read(s, flat);
                }
                catch (EndOfStreamException e)
                {
                    throw new InvalidDataException($"'{file}': zip entry '{entryName}' is truncated ({e.Message}).", e);
                }
            }
            return storage;
        }

        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        private Tensor RebuildTensor(PickleSequence args)
        {
            if (args.Count is < 6 or > 7) throw Bad($"_rebuild_tensor_v2 takes 6 or 7 arguments, got {args.Count}");
            if (args[0] is not TorchStorage storage) throw Bad($"_rebuild_tensor_v2 needs a storage, got {SafeUnpickler.Describe(args[0])}");
            if (args[1] is not long offset || offset < 0) throw Bad("_rebuild_tensor_v2 has a bad storage offset");
            long[] size = Dims(args[2], "size");
            long[] stride = Dims(args[3], "stride");
            if (size.Length != stride.Length) throw Bad($"tensor of storage '{storage.Key}' has {size.Length} sizes but {stride.Length} strides");
            if (args[4] is not bool) throw Bad("_rebuild_tensor_v2: requires_grad is not a bool");
            if (args[5] is not PickleDictionary) throw Bad("_rebuild_tensor_v2: backward hooks are not a dict");

            // Every element the view can touch must lie inside the storage, and the view may not hold more elements than
            // the storage does: a zero-stride expansion of a small storage to a huge size costs nothing here, but any
            // later copy would ask libtorch for that much memory (which aborts the process). The extent is computed over
            // every dimension, empty ones included, because libtorch checks that too ("Storage size calculation overflowed").
            string view = $"tensor view (offset {offset}, size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}])";
            try
            {
                long numel = 1, last = offset;
                for (int i = 0; i < size.Length; i++)
                {
                    numel = checked(numel * size[i]);
                    last = checked(last + checked(Math.Max(size[i] - 1, 0) * stride[i]));
                }
                checked { _ = (last + 1) * SafeTensors.ElementSize(storage.DType); }
                if (numel > storage.Numel)
                    throw Bad($"{view} holds {numel} elements, more than its storage '{storage.Key}' of {storage.Numel} (a zero-stride expansion, which a weights file has no reason to hold)");
                bool fits = numel == 0 ? offset <= storage.Numel : last < storage.Numel;
                if (!fits) throw Bad($"{view} reaches past storage '{storage.Key}' of {storage.Numel} elements");
            }
            catch (OverflowException)
            {
                throw Bad($"{view} of storage '{storage.Key}' has sizes and strides whose extent overflows 64 bits");
            }

            var t = storage.Flat.as_strided(size, stride, offset);
            Tensors.Add(t);
            return t;
        }

        private long[] Dims(object? o, string what)
        {
            if (o is not PickleSequence seq) throw Bad($"tensor {what} is {SafeUnpickler.Describe(o)}, not a tuple");
            var dims = new long[seq.Count];
            for (int i = 0; i < dims.Length; i++)
            {
                if (seq[i] is not long v || v < 0) throw Bad($"tensor {what} [{string.Join(", ", seq)}] holds a value that is not a non-negative int");
                dims[i] = v;
            }
            return dims;
        }

        private InvalidDataException Bad(string what) => new($"'{file}': {what}.");

        private static ScalarType? StorageDType(string name) => name switch
        {
            "FloatStorage" => ScalarType.Float32,
            "DoubleStorage" => ScalarType.Float64,
            "HalfStorage" => ScalarType.Float16,
            "BFloat16Storage" => ScalarType.BFloat16,
            "LongStorage" => ScalarType.Int64,
            "IntStorage" => ScalarType.Int32,
            "ShortStorage" => ScalarType.Int16,
            "CharStorage" => ScalarType.Int8,
            "ByteStorage" => ScalarType.Byte,
            "BoolStorage" => ScalarType.Bool,
            _ => null,
        };
    }
}
