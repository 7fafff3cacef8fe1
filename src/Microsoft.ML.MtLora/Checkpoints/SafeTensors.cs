using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// Reads and writes the <see href="https://github.com/huggingface/safetensors">safetensors</see> format:
/// an 8-byte little-endian header length, a JSON header <c>{name: {dtype, shape, data_offsets}, "__metadata__": {...}}</c>,
/// then the raw little-endian tensor bytes. No code runs on load, so it is the safe way to move weights.
/// </summary>
public static class SafeTensors
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

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
    /// <param name="stream">The stream, positioned at the start of the file.</param>
    /// <param name="name">A name for error messages (usually the file path).</param>
    /// <param name="metadata">The header's <c>__metadata__</c> strings.</param>
    /// <returns>The tensors by name, in file order.</returns>
    public static Dictionary<string, Tensor> Read(Stream stream, string name, out IReadOnlyDictionary<string, string> metadata)
    {
        long length = stream.CanSeek ? stream.Length - stream.Position : long.MaxValue;
        Span<byte> lenBytes = stackalloc byte[8];
        if (stream.ReadAtLeast(lenBytes, 8, throwOnEndOfStream: false) != 8)
            throw new InvalidDataException($"'{name}' is not a safetensors file: it is shorter than the 8-byte header length.");
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 1 || headerLen > MaxHeaderBytes || headerLen > length - 8)
            throw new InvalidDataException($"'{name}' is not a valid safetensors file: header length {headerLen} does not fit the file ({length} bytes).");
        var headerBytes = new byte[headerLen];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new InvalidDataException($"'{name}': the safetensors header is not a JSON object.");
            _ = header.Count; // materialises the properties, so duplicate names surface here
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{name}': the safetensors header is not valid JSON ({e.Message}).", e);
        }

        long dataLen = length - 8 - headerLen;
        var meta = new Dictionary<string, string>();
        var entries = new List<(string Name, ScalarType Type, long[] Shape, long Begin, long End)>();
        try
        {
            foreach (var (key, node) in header)
            {
                if (key == "__metadata__")
                {
                    if (node is JsonObject m)
                        foreach (var (mk, mv) in m) meta[mk] = mv?.ToString() ?? "";
                    continue;
                }
                if (node is not JsonObject o || o["dtype"] is not JsonValue || o["shape"] is not JsonArray shapeNode || o["data_offsets"] is not JsonArray offs || offs.Count != 2
                    || shapeNode.Any(n => n is not JsonValue) || offs.Any(n => n is not JsonValue))
                    throw new InvalidDataException($"'{name}': header entry '{key}' must have dtype, shape and data_offsets [begin, end].");
                ScalarType type;
                long[] shape;
                long begin, end, expected;
                try
                {
                    type = ParseDType(o["dtype"]!.GetValue<string>(), name, key);
                    shape = shapeNode.Select(s => s!.GetValue<long>()).ToArray();
                    begin = offs[0]!.GetValue<long>();
                    end = offs[1]!.GetValue<long>();
                    if (shape.Any(d => d < 0)) throw new InvalidDataException($"'{name}': tensor '{key}' has a negative dimension in shape [{string.Join(", ", shape)}].");
                    expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * ElementSize(type));
                }
                catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
                {
                    // A header written by hand or damaged: wrong JSON types, nulls, numbers out of range.
                    throw new InvalidDataException($"'{name}': header entry '{key}' has a malformed dtype, shape or data_offsets ({e.Message}).", e);
                }
                if (begin < 0 || end < begin || end - begin != expected)
                    throw new InvalidDataException($"'{name}': tensor '{key}' has data_offsets [{begin}, {end}] but dtype {o["dtype"]} and shape [{string.Join(", ", shape)}] need {expected} bytes.");
                if (end > dataLen)
                    throw new InvalidDataException($"'{name}' is truncated: tensor '{key}' ends at byte {end} of the data section, which has only {dataLen} bytes.");
                entries.Add((key, type, shape, begin, end));
            }
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
        {
            // System.Text.Json reports invalid UTF-8 and duplicate names lazily, when a nested object is first read.
            throw new InvalidDataException($"'{name}': the safetensors header is malformed ({e.Message}).", e);
        }

        long dataStart = stream.Position;
        var result = new Dictionary<string, Tensor>(entries.Count);
        try
        {
            foreach (var e in entries.OrderBy(e => e.Begin))
            {
                var t = torch.empty(e.Shape, e.Type);
                result[e.Name] = t;
                if (e.End == e.Begin) continue;
                stream.Position = dataStart + e.Begin;
                stream.ReadExactly(t.bytes);
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
            stream.Write(c.bytes);
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
