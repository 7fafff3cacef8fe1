using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace Microsoft.ML.MtLora.Checkpoints.Pickle;

/// <summary>What kind of Python sequence a <see cref="PickleSequence"/> came from.</summary>
public enum PickleSequenceKind
{
    /// <summary>A Python <c>list</c>.</summary>
    List,

    /// <summary>A Python <c>tuple</c> (also <c>torch.Size</c>).</summary>
    Tuple,

    /// <summary>A Python <c>set</c> (items in pickle order, duplicates removed).</summary>
    Set,

    /// <summary>A Python <c>frozenset</c> (items in pickle order, duplicates removed).</summary>
    FrozenSet,
}

/// <summary>
/// A Python list, tuple or set read from a pickle. Read-only for callers; items are <see langword="null"/> (None),
/// <see cref="bool"/>, <see cref="long"/>, <see cref="System.Numerics.BigInteger"/> (ints beyond 64 bits), <see cref="double"/>,
/// <see cref="string"/>, <see cref="byte"/>[] (bytes), <see cref="PickleSequence"/>, <see cref="PickleDictionary"/>,
/// <see cref="PickleObject"/> or a tensor.
/// </summary>
public sealed class PickleSequence : IReadOnlyList<object?>
{
    private readonly List<object?> _items = [];
    private readonly HashSet<object?>? _members; // sets only: keeps Add linear for large sets

    internal PickleSequence(PickleSequenceKind kind, IEnumerable<object?>? items = null)
    {
        Kind = kind;
        if (kind is PickleSequenceKind.Set or PickleSequenceKind.FrozenSet) _members = [];
        if (items is not null)
            foreach (var it in items) Add(it);
    }

    /// <summary>Whether this was a list, a tuple or a set.</summary>
    public PickleSequenceKind Kind { get; }

    /// <inheritdoc/>
    public int Count => _items.Count;

    /// <inheritdoc/>
    public object? this[int index] => _items[index];

    /// <inheritdoc/>
    public IEnumerator<object?> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A short description, e.g. <c>tuple[3]</c>.</summary>
    public override string ToString() => $"{Kind.ToString().ToLowerInvariant()}[{Count}]";

    internal void Add(object? item)
    {
        if (_members is not null && !_members.Add(item)) return;
        _items.Add(item);
    }
}

/// <summary>
/// A Python <c>dict</c> or <c>collections.OrderedDict</c> read from a pickle, in insertion order. Keys are strings, integers
/// (<see cref="long"/>), floats, booleans or other hashable pickle values; <c>None</c> keys are not supported.
/// Read-only for callers.
/// </summary>
public sealed class PickleDictionary : IReadOnlyDictionary<object, object?>
{
    private readonly Dictionary<object, object?> _map = [];
    private readonly List<object> _order = [];
    private readonly Dictionary<string, object?> _attributes = new(StringComparer.Ordinal);

    internal PickleDictionary(bool isOrdered) => IsOrderedDict = isOrdered;

    /// <summary>Whether this was a <c>collections.OrderedDict</c> (what <c>Module.state_dict()</c> returns).</summary>
    public bool IsOrderedDict { get; }

    /// <summary>
    /// Python attributes set on the dictionary object by pickle's BUILD, e.g. <c>_metadata</c> (the per-module versions
    /// that <c>state_dict()</c> attaches). Empty for plain dicts.
    /// </summary>
    public IReadOnlyDictionary<string, object?> Attributes => _attributes;

    /// <inheritdoc/>
    public int Count => _order.Count;

    /// <inheritdoc/>
    public IEnumerable<object> Keys => _order;

    /// <inheritdoc/>
    public IEnumerable<object?> Values => _order.Select(k => _map[k]);

    /// <inheritdoc/>
    public object? this[object key] => _map[key];

    /// <inheritdoc/>
    public bool ContainsKey(object key) => _map.ContainsKey(key);

    /// <inheritdoc/>
    public bool TryGetValue(object key, [MaybeNullWhen(false)] out object? value) => _map.TryGetValue(key, out value);

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<object, object?>> GetEnumerator()
    {
        foreach (var k in _order) yield return new KeyValuePair<object, object?>(k, _map[k]);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A short description, e.g. <c>OrderedDict[12]</c>.</summary>
    public override string ToString() => $"{(IsOrderedDict ? "OrderedDict" : "dict")}[{Count}]";

    // Python semantics: assigning an existing key keeps its original position.
    internal void Set(object key, object? value)
    {
        if (!_map.ContainsKey(key)) _order.Add(key);
        _map[key] = value;
    }

    internal void SetAttribute(string name, object? value) => _attributes[name] = value;
}

/// <summary>
/// An instance of a class that the caller declared inert (<see cref="CheckpointReadOptions.InertGlobals"/>), e.g. the
/// <c>yacs.config.CfgNode</c> that the reference MTLoRA training script saves beside the weights. Nothing of the class
/// runs: the object only records what the pickle said about it.
/// </summary>
public sealed class PickleObject
{
    internal PickleObject(string typeName, PickleSequence arguments)
    {
        TypeName = typeName;
        Arguments = arguments;
    }

    /// <summary>The fully qualified Python class name, e.g. <c>yacs.config.CfgNode</c>.</summary>
    public string TypeName { get; }

    /// <summary>The constructor arguments recorded by the pickle (REDUCE or NEWOBJ).</summary>
    public PickleSequence Arguments { get; }

    /// <summary>The state passed to BUILD (usually the instance <c>__dict__</c>), or <see langword="null"/>.</summary>
    public object? State { get; internal set; }

    /// <summary>The dictionary items stored by SETITEM(S), for dict subclasses (empty otherwise).</summary>
    public PickleDictionary DictionaryItems { get; } = new(isOrdered: false);

    /// <summary>The list items stored by APPEND(S), for list subclasses (empty otherwise).</summary>
    public PickleSequence ListItems { get; } = new(PickleSequenceKind.List);

    /// <summary>The class name.</summary>
    public override string ToString() => TypeName;
}
