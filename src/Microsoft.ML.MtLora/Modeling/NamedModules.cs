using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// Child modules by name (state-dict keys <c>&lt;name&gt;.*</c>), like PyTorch's <c>nn.ModuleDict</c>.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <c>ModuleDict&lt;T&gt;</c> cannot be moved or converted with <c>module.to(...)</c> (its two indexers
/// collide in the reflection of <c>Module._toEpilog</c>: "An item with the same key has already been added. Key: Item"),
/// so the per-task modules live in this minimal container instead.
/// </remarks>
internal sealed class NamedModules<T> : nn.Module where T : nn.Module
{
    private readonly List<KeyValuePair<string, T>> _items = [];

    public NamedModules() : base(nameof(NamedModules<T>))
    {
    }

    public void Add(string name, T module)
    {
        register_module(name, module);
        _items.Add(new(name, module));
    }

    public T Get(string name)
    {
        foreach (var (k, m) in _items)
            if (k == name) return m;
        throw new KeyNotFoundException($"no module named '{name}'.");
    }

    public IReadOnlyList<KeyValuePair<string, T>> Items => _items;
}
