using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.MtLora.Onnx.Protobuf;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// A small builder of an ONNX graph in the default operator domain (ai.onnx): float32/int64 initializers, nodes with
/// generated value names, graph inputs and outputs, and a final <see cref="ToModel"/> that drops the nodes and
/// initializers no output depends on. Only standard operators are emitted (docs: onnx.ai/onnx/operators).
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>The operator set the graph is written for (LayerNormalization needs 17).</summary>
    public const long Opset = 17;

    /// <summary>IR version 8: the one that goes with opsets 15–17 (onnx/onnx.proto3, IR_VERSION_2021_7_30).</summary>
    public const long IrVersion = 8;

    private readonly List<NodeProto> _nodes = [];
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _int64Constants = new(StringComparer.Ordinal);
    private readonly List<ValueInfoProto> _inputs = [];
    private readonly List<ValueInfoProto> _outputs = [];
    private readonly Dictionary<string, int> _counters = new(StringComparer.Ordinal);

    /// <summary>A fresh value name derived from <paramref name="hint"/> (the module path it comes from).</summary>
    public string Name(string hint)
    {
        _counters.TryGetValue(hint, out int n);
        _counters[hint] = n + 1;
        return n == 0 ? hint : $"{hint}_{n}";
    }

    /// <summary>Adds a float32 initializer and returns its name (unique, derived from <paramref name="name"/>).</summary>
    public string Float(string name, float[] values, params long[] dims)
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length)
            throw new InvalidOperationException($"initializer '{name}': {values.Length} values for shape [{string.Join(", ", dims)}].");
        var unique = Name(name);
        var t = new TensorProto { Name = unique, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
        t.Dims.AddRange(dims);
        _initializers[unique] = t;
        return unique;
    }

    /// <summary>An int64 constant (shapes, axes, indices), shared by every node that uses the same values.</summary>
    /// <param name="values">The values.</param>
    /// <param name="scalar">Whether it is a rank-0 tensor (one value) rather than a vector.</param>
    public string Int64(long[] values, bool scalar = false)
    {
        var key = (scalar ? "s:" : "v:") + string.Join(",", values);
        if (_int64Constants.TryGetValue(key, out var existing)) return existing;
        var name = Name(values.Length <= 8 ? "const_i64_" + string.Join("_", values).Replace('-', 'm') : "const_index");
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Int64Data.AddRange(values);
        if (!scalar) t.Dims.Add(values.Length);
        _initializers[name] = t;
        _int64Constants[key] = name;
        return name;
    }

    /// <summary>A float32 scalar constant (rank 0).</summary>
    public string Scalar(string name, float value)
    {
        var unique = Name(name);
        var t = new TensorProto { Name = unique, DataType = (int)TensorProto.Types.DataType.Float };
        t.FloatData.Add(value);
        _initializers[unique] = t;
        return unique;
    }

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string Node(string op, string hint, string[] inputs, params AttributeProto[] attributes)
        => AddNode(op, hint, inputs, Name(hint + "/" + op + "_out"), attributes);

    /// <summary>Adds a node whose one output is the graph value <paramref name="output"/> (e.g. a graph output's name).</summary>
    public string NodeTo(string op, string output, string[] inputs, params AttributeProto[] attributes)
        => AddNode(op, output, inputs, output, attributes);

    private string AddNode(string op, string hint, string[] inputs, string output, AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Name(hint + "/" + op) };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        _nodes.Add(node);
        return output;
    }

    /// <summary>Declares a float32 graph input; a null dimension is dynamic and named by <paramref name="dynamicName"/>.</summary>
    public void Input(string name, long?[] dims, string dynamicName) => _inputs.Add(ValueInfo(name, dims, dynamicName));

    /// <summary>Declares a float32 graph output.</summary>
    public void Output(string name, long?[] dims, string dynamicName) => _outputs.Add(ValueInfo(name, dims, dynamicName));

    private static ValueInfoProto ValueInfo(string name, long?[] dims, string dynamicName)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is { } v ? new TensorShapeProto.Types.Dimension { DimValue = v } : new TensorShapeProto.Types.Dimension { DimParam = dynamicName });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    /// <summary>
    /// The model: only the nodes and initializers that some output needs (e.g. the last stage's shared stream, which no
    /// decoder reads, is left out), in the order they were added, which is topological.
    /// </summary>
    public ModelProto ToModel(string graphName, string producer, string producerVersion, string docString, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var needed = new HashSet<string>(_outputs.Select(o => o.Name), StringComparer.Ordinal);
        var kept = new List<NodeProto>();
        for (int i = _nodes.Count - 1; i >= 0; i--)
        {
            var n = _nodes[i];
            if (!n.Output.Any(needed.Contains)) continue;
            kept.Add(n);
            foreach (var input in n.Input) if (input.Length > 0) needed.Add(input);
        }
        kept.Reverse();
        var graph = new GraphProto { Name = graphName };
        graph.Node.AddRange(kept);
        graph.Initializer.AddRange(_initializers.Values.Where(t => needed.Contains(t.Name)));
        graph.Input.AddRange(_inputs);
        graph.Output.AddRange(_outputs);
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = producer,
            ProducerVersion = producerVersion,
            DocString = docString,
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (k, v) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    /// <summary>An integer attribute.</summary>
    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>A float attribute.</summary>
    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A string attribute.</summary>
    public static AttributeProto Attr(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>An integer-list attribute.</summary>
    public static AttributeProto Attr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
