using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>A tensor as a safetensors header describes it, before any of its data is read.</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="DType">Its element type.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Begin">The first byte of its data, relative to the data section.</param>
/// <param name="End">The byte after its last one.</param>
internal sealed record SafeTensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

/// <summary>
/// Reads and writes the <see href="https://github.com/huggingface/safetensors">safetensors</see> format:
/// an 8-byte little-endian header length, a JSON header <c>{name: {dtype, shape, data_offsets}, "__metadata__": {...}}</c>,
/// then the raw little-endian tensor bytes. No code runs on load, so it is the safe way to move weights.
/// </summary>
/// <remarks>
/// Reading follows the format's rules strictly: the header is at most 100,000,000 bytes (the limit of the reference
/// implementation) and lists at most <see cref="MaxTensors"/> tensors; it is parsed as a stream (about 150 bytes of memory
/// per tensor entry, never a document tree); each tensor's <c>data_offsets</c> must match its dtype and shape, and the
/// tensors must cover the data section exactly, with no hole and no overlap (which also rules out polyglot files). Every
/// check runs before the first tensor is allocated, so memory never exceeds what the file really holds. Tensors over
/// 2 GiB are read and written in 1 GiB slices.
/// </remarks>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100_000_000;

    /// <summary>The most tensors a file may list: 131,072 (a Swin-T checkpoint has about 400).</summary>
    public const int MaxTensors = 1 << 17;

    /// <summary>Loads every tensor of a safetensors file onto the CPU.</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The tensors by name, in file order. The caller owns (and disposes) them.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is truncated or its header is malformed; the message names the file and the entry.</exception>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    /// <summary>Loads every tensor of a safetensors file onto the CPU, with the header's <c>__metadata__</c> strings.</summary>
    /// <param name="path">The file to read.</param>
    /// <param name="metadata">The string-to-string metadata of the header (empty when absent).</param>
    /// <returns>The tensors by name, in file order. The caller owns (and disposes) them.</returns>
    public static Dictionary<string, Tensor> Load(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        return Read(stream, path, out metadata);
    }

    /// <summary>Reads tensors from a seekable stream holding a safetensors file.</summary>
    /// <param name="stream">The stream, positioned at the start of the file; the file runs to the end of the stream.</param>
    /// <param name="name">A name for error messages (usually the file path).</param>
    /// <param name="metadata">The header's <c>__metadata__</c> strings.</param>
    /// <returns>The tensors by name, in file order.</returns>
    /// <exception cref="ArgumentException">The stream cannot seek.</exception>
    /// <exception cref="InvalidDataException">The data is truncated or breaks the format's rules; the message names the file and the entry.</exception>
    public static Dictionary<string, Tensor> Read(Stream stream, string name, out IReadOnlyDictionary<string, string> metadata) =>
        Read(stream, name, out metadata, checkHeader: null);

    /// <summary>
    /// Reads tensors as <see cref="Read(Stream, string, out IReadOnlyDictionary{string, string})"/> does, first handing
    /// the parsed header to <paramref name="checkHeader"/>, which can refuse names, dtypes or shapes (by throwing) before
    /// any tensor is allocated.
    /// </summary>
    internal static Dictionary<string, Tensor> Read(Stream stream, string name, out IReadOnlyDictionary<string, string> metadata,
        Action<IReadOnlyList<SafeTensorsEntry>>? checkHeader)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("The stream must be seekable (tensors are read at their offsets).", nameof(stream));
        long length = stream.Length - stream.Position;
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
            throw new InvalidDataException($"'{name}' is not a safetensors file: it is shorter than the 8-byte header length.");
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 1 || headerLen > MaxHeaderBytes || headerLen > length - 8)
            throw new InvalidDataException($"'{name}' is not a valid safetensors file: header length {headerLen} does not fit the file ({length} bytes; at most {MaxHeaderBytes:D} allowed).");
        var headerBytes = new byte[headerLen];
        stream.ReadExactly(headerBytes);
        var (entries, meta) = ParseHeader(headerBytes, name);
        long dataLen = length - 8 - headerLen;
        CheckLayout(entries, dataLen, name);
        checkHeader?.Invoke(entries);

        long dataStart = stream.Position;
        var result = new Dictionary<string, Tensor>(entries.Count);
        try
        {
            foreach (var e in entries.OrderBy(e => e.Begin))
            {
                var t = torch.empty(e.Shape, e.DType);
                result[e.Name] = t;
                if (e.End == e.Begin) continue;
                stream.Position = dataStart + e.Begin;
                TensorBytes.Read(stream, t);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        metadata = meta;
        // Keep the file's order for callers that care (dictionary insertion order follows the header).
        return entries.ToDictionary(e => e.Name, e => result[e.Name]);
    }

    /// <summary>Parses the JSON header as a stream of tokens, checking every entry's dtype, shape and offsets.</summary>
    private static (List<SafeTensorsEntry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] json, string file)
    {
        var entries = new List<SafeTensorsEntry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            var r = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4 });
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject)
                throw new InvalidDataException($"'{file}': the safetensors header is not a JSON object.");
            while (Next(ref r) != JsonTokenType.EndObject)
            {
                string key = r.GetString()!;
                if (!names.Add(key)) throw new InvalidDataException($"'{file}': the safetensors header lists '{key}' twice.");
                if (key == "__metadata__")
                {
                    Expect(ref r, JsonTokenType.StartObject, file, "__metadata__");
                    while (Next(ref r) != JsonTokenType.EndObject)
                    {
                        string mk = r.GetString()!;
                        if (Next(ref r) != JsonTokenType.String) throw new InvalidDataException($"'{file}': metadata '{mk}' is not a string.");
                        metadata[mk] = r.GetString()!;
                    }
                    continue;
                }
                if (entries.Count == MaxTensors)
                    throw new InvalidDataException($"'{file}': the safetensors header lists more than {MaxTensors} tensors, the most this reader accepts.");
                entries.Add(ParseEntry(ref r, key, file));
            }
            if (r.Read()) throw new InvalidDataException($"'{file}': the safetensors header has data after its JSON object.");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            // Malformed JSON, invalid UTF-8 in a string, a number where a string belongs...
            throw new InvalidDataException($"'{file}': the safetensors header is not valid JSON of the format ({e.Message}).", e);
        }
        return (entries, metadata);
    }

    private static SafeTensorsEntry ParseEntry(ref Utf8JsonReader r, string key, string file)
    {
        Expect(ref r, JsonTokenType.StartObject, file, key);
        string? dtype = null;
        long[]? shape = null, offsets = null;
        while (Next(ref r) != JsonTokenType.EndObject)
        {
            switch (r.GetString())
            {
                case "dtype":
                    if (Next(ref r) != JsonTokenType.String) throw Malformed(file, key, "dtype is not a string");
                    dtype = r.GetString();
                    break;
                case "shape":
                    shape = Integers(ref r, file, key, "shape");
                    break;
                case "data_offsets":
                    offsets = Integers(ref r, file, key, "data_offsets");
                    break;
                default:
                    r.Read();
                    r.Skip();
                    break;
            }
        }
        if (dtype is null || shape is null || offsets is null || offsets.Length != 2)
            throw new InvalidDataException($"'{file}': header entry '{key}' must have dtype, shape and data_offsets [begin, end].");
        var type = ParseDType(dtype, file, key);
        if (shape.Any(d => d < 0)) throw new InvalidDataException($"'{file}': tensor '{key}' has a negative dimension in shape [{string.Join(", ", shape)}].");
        long expected;
        try { expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(type)); }
        catch (OverflowException) { throw Malformed(file, key, $"shape [{string.Join(", ", shape)}] holds more bytes than a file can"); }
        long begin = offsets[0], end = offsets[1];
        if (begin < 0 || end < begin || end - begin != expected)
            throw new InvalidDataException($"'{file}': tensor '{key}' has data_offsets [{begin}, {end}] but dtype {dtype} and shape [{string.Join(", ", shape)}] need {expected} bytes.");
        return new SafeTensorsEntry(key, type, shape, begin, end);
    }

    /// <summary>The tensors must tile the data section: sorted by offset, each starts where the previous one ends.</summary>
    private static void CheckLayout(List<SafeTensorsEntry> entries, long dataLen, string file)
    {
        long at = 0;
        SafeTensorsEntry? previous = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.End > dataLen)
                throw new InvalidDataException($"'{file}' is truncated: tensor '{e.Name}' ends at byte {e.End} of the data section, which has only {dataLen} bytes.");
            if (e.Begin < at)
                throw new InvalidDataException($"'{file}': tensor '{e.Name}' (bytes {e.Begin}..{e.End}) overlaps tensor '{previous!.Name}' (bytes {previous.Begin}..{previous.End}); the format does not allow shared or overlapping data.");
            if (e.Begin > at)
                throw new InvalidDataException($"'{file}': bytes {at}..{e.Begin} of the data section belong to no tensor (a hole before '{e.Name}'); the format requires the tensors to cover the data exactly.");
            at = e.End;
            previous = e;
        }
        if (at != dataLen)
            throw new InvalidDataException($"'{file}': the data section has {dataLen - at} byte(s) after the last tensor; the format requires the tensors to cover the data exactly.");
    }

    private static JsonTokenType Next(ref Utf8JsonReader r) =>
        r.Read() ? r.TokenType : throw new JsonException("the header ends inside its JSON object");

    private static void Expect(ref Utf8JsonReader r, JsonTokenType type, string file, string key)
    {
        if (Next(ref r) != type) throw Malformed(file, key, $"expected a JSON {type}, found {r.TokenType}");
    }

    private static long[] Integers(ref Utf8JsonReader r, string file, string key, string what)
    {
        Expect(ref r, JsonTokenType.StartArray, file, key);
        var values = new List<long>();
        while (Next(ref r) != JsonTokenType.EndArray)
        {
            if (r.TokenType != JsonTokenType.Number || !r.TryGetInt64(out long v)) throw Malformed(file, key, $"{what} holds {r.TokenType}, not an integer");
            values.Add(v);
        }
        return values.ToArray();
    }

    private static InvalidDataException Malformed(string file, string key, string what) =>
        new($"'{file}': header entry '{key}' has a malformed dtype, shape or data_offsets ({what}).");

    /// <summary>
    /// Writes tensors as a safetensors file. The file is written to a temporary name beside the target and then moved,
    /// so a failure never leaves a half-written file.
    /// </summary>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="tensors">The tensors by name; any device, any supported dtype.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> strings.</param>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                Write(stream, tensors, metadata);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Writes tensors in the safetensors layout to a stream.</summary>
    /// <param name="stream">The destination.</param>
    /// <param name="tensors">The tensors by name.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> strings.</param>
    public static void Write(Stream stream, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata) m[k] = v;
            header["__metadata__"] = m;
        }
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long size = t.numel() * ElementSize(t.dtype);
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(t.dtype, name),
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8; // align the data section to 8 bytes, padded with spaces as the reference writer does
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        headerBytes.AsSpan(json.Length).Fill((byte)' ');
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, headerBytes.Length);
        stream.Write(len);
        stream.Write(headerBytes);
        foreach (var (_, t) in list)
        {
            using var c = t.detach().cpu().contiguous();
            TensorBytes.Write(stream, c);
        }
    }

    private static ScalarType ParseDType(string dtype, string file, string key) => dtype switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"'{file}': tensor '{key}' has dtype '{dtype}', which is not supported (F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL)."),
    };

    private static string DTypeName(ScalarType t, string key) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"tensor '{key}' has dtype {t}, which safetensors cannot store."),
    };

    internal static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new ArgumentException($"dtype {t} is not supported."),
    };
}
