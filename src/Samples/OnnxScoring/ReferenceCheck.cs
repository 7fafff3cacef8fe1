using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OnnxScoring;

/// <summary>
/// <c>OnnxScoring --model model.onnx --io io.safetensors [--tolerance 1e-4]</c>: runs the model on the io file's
/// <c>input</c> (N, 3, S, S) with ONNX Runtime alone and compares each task output with the <c>out.&lt;task&gt;</c> the
/// reference PyTorch code recorded for the same weights (the format <c>mtlora check-reference</c> reads). Independent of
/// Microsoft.ML.MtLora: the safetensors file is read here, the graph is run by ONNX Runtime, nothing else.
/// </summary>
public static class ReferenceCheck
{
    /// <summary>Prints one line per task (max abs error) and returns 0 when every one is within the tolerance, else 1.</summary>
    public static int Run(string modelPath, string ioPath, double tolerance, TextWriter stdout)
    {
        var io = ReadSafeTensors(ioPath);
        if (!io.TryGetValue("input", out var input))
            throw new InvalidDataException($"'{ioPath}' has no tensor 'input'.");
        using var session = new InferenceSession(modelPath, new SessionOptions { IntraOpNumThreads = 1 });
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(input.Values, input.Shape))]);
        bool passed = true;
        foreach (var result in results)
        {
            if (!io.TryGetValue("out." + result.Name, out var expected))
                throw new InvalidDataException($"'{ioPath}' has no reference output 'out.{result.Name}'.");
            var actual = result.AsTensor<float>();
            if (!actual.Dimensions.SequenceEqual(expected.Shape))
                throw new InvalidDataException($"'out.{result.Name}' has shape [{string.Join(", ", expected.Shape)}]; the model gives [{string.Join(", ", actual.Dimensions.ToArray())}].");
            double worst = 0;
            int k = 0;
            foreach (var v in actual) worst = Math.Max(worst, Math.Abs(v - expected.Values[k++]));
            bool ok = worst <= tolerance;    // NaN fails
            passed &= ok;
            stdout.WriteLine($"{result.Name}: max abs error {worst:G3} {(ok ? "ok" : "TOO LARGE")}");
        }
        return passed ? 0 : 1;
    }

    /// <summary>A safetensors file's float tensors (F32, or F64 narrowed): 8-byte little-endian header size, JSON header, raw data.</summary>
    public static Dictionary<string, (float[] Values, int[] Shape)> ReadSafeTensors(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8) throw new InvalidDataException($"'{path}' is not a safetensors file (shorter than its header size).");
        long headerSize = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        if (headerSize <= 0 || 8 + headerSize > bytes.Length) throw new InvalidDataException($"'{path}' is not a safetensors file (header size {headerSize}).");
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerSize));
        long dataStart = 8 + headerSize;
        var tensors = new Dictionary<string, (float[], int[])>(StringComparer.Ordinal);
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            var dtype = entry.Value.GetProperty("dtype").GetString();
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64()).ToArray();
            int start = (int)(dataStart + offsets[0]), length = (int)(offsets[1] - offsets[0]);
            int size = dtype switch { "F32" => 4, "F64" => 8, _ => 0 };
            if (size == 0) continue; // not a float tensor: not an input or output of the network
            var values = new float[length / size];
            for (int i = 0; i < values.Length; i++)
                values[i] = size == 4
                    ? BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(start + 4 * i))
                    : (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(start + 8 * i));
            tensors[entry.Name] = (values, shape);
        }
        return tensors;
    }
}
