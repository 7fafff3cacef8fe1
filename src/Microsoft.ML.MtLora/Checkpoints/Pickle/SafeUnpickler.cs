using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Microsoft.ML.MtLora.Checkpoints.Pickle;

/// <summary>A callable Python global that a <see cref="IPickleHost"/> accepted (a tensor rebuild, a storage type...).</summary>
internal abstract class PickleCallable
{
    /// <summary>The global as <c>module.name</c>.</summary>
    public abstract string FullName { get; }

    public override string ToString() => FullName;
}

/// <summary>What the unpickler needs from the format built on top of pickle (here: torch.save).</summary>
internal interface IPickleHost
{
    /// <summary>Resolves a global the unpickler does not know itself; <see langword="null"/> refuses it.</summary>
    PickleCallable? ResolveGlobal(string module, string name);

    /// <summary>REDUCE of a global returned by <see cref="ResolveGlobal"/>.</summary>
    object? Call(PickleCallable callable, PickleSequence args);

    /// <summary>BINPERSID / PERSID: turns a persistent id into an object.</summary>
    object? PersistentLoad(object? pid);
}

/// <summary>
/// A pickle virtual machine that never executes anything: it understands every data opcode of protocols 0 to 5, builds
/// plain values (<see cref="PickleDictionary"/>, <see cref="PickleSequence"/>, scalars, strings, bytes), and accepts only
/// the globals it knows (<c>collections.OrderedDict</c>, <c>builtins.set</c>/<c>frozenset</c>, <c>_codecs.encode</c>),
/// the ones its <see cref="IPickleHost"/> accepts, and the classes the caller declared inert. Everything else is refused
/// with an <see cref="InvalidDataException"/> that names the refused global; malformed input gives one that names
/// the file and the byte offset.
/// </summary>
/// <remarks>
/// Memory is bounded by the input: a pickle may build at most <see cref="UnitsPerByte"/> objects or container items per
/// byte of pickle, plus <see cref="BaseUnits"/>; each stack push, memo entry, marked item, item a call copies
/// (<c>OrderedDict(pairs)</c>, <c>set(items)</c>, <c>torch.Size(dims)</c>) or 16 bytes made by <c>_codecs.encode</c>
/// counts one, and none costs more than about 200 bytes. So a pickle of n bytes makes this reader allocate at most about
/// 800·n bytes plus 13 MB, and one that asks for more is refused with an <see cref="InvalidDataException"/>. A real
/// <c>torch.save</c> pickle uses about 0.3 per byte (the tiny4 fixtures: 17,976 for 59,817 bytes); the budget only stops
/// the copies a crafted one makes, e.g. <c>OrderedDict(pairs)</c> called again and again on one memoized list of pairs,
/// which would make CPython allocate without bound too.
/// </remarks>
internal sealed class SafeUnpickler
{
    internal const string AllowedSummary = "only tensor/storage rebuilds, OrderedDict and plain containers are allowed";
    private const int MaxTextLongDigits = 4300; // CPython's default int/str conversion limit
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlyMemory<byte> _data;
    private readonly string _file;
    private readonly IPickleHost? _host;
    private readonly IReadOnlySet<string> _inert;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;
    private int _opStart;
    private readonly long _budget;
    private long _used;

    /// <summary>Objects or container items a pickle may build per byte of its own size (see the remarks).</summary>
    internal const long UnitsPerByte = 4;

    /// <summary>Objects or container items any pickle may build, whatever its size (see the remarks).</summary>
    internal const long BaseUnits = 1 << 16;

    /// <summary>The units used so far (see the remarks).</summary>
    internal long UnitsUsed => _used;

    /// <summary>Creates an unpickler over the whole pickle stream.</summary>
    /// <param name="data">The pickle bytes.</param>
    /// <param name="fileName">The name used in error messages (file, or file and entry).</param>
    /// <param name="host">The torch layer; <see langword="null"/> refuses every global but the plain containers and persistent ids.</param>
    /// <param name="inertGlobals">Classes (<c>module.name</c>) read as <see cref="PickleObject"/>s.</param>
    public SafeUnpickler(ReadOnlyMemory<byte> data, string fileName, IPickleHost? host = null, IReadOnlySet<string>? inertGlobals = null)
    {
        _data = data;
        _file = fileName;
        _host = host;
        _inert = inertGlobals ?? new HashSet<string>();
        _budget = BaseUnits + UnitsPerByte * data.Length;
    }

    private enum Builtin { OrderedDict, Set, FrozenSet, CodecsEncode }

    private sealed class BuiltinGlobal(string fullName, Builtin kind) : PickleCallable
    {
        public Builtin Kind { get; } = kind;

        public override string FullName { get; } = fullName;
    }

    private sealed class InertClass(string fullName) : PickleCallable
    {
        public override string FullName { get; } = fullName;
    }

    /// <summary>Runs the pickle up to STOP and returns the object it built.</summary>
    public object? Load()
    {
        ReadOnlySpan<byte> d = _data.Span;
        while (true)
        {
            _opStart = _pos;
            if (_pos >= d.Length) throw Bad("the pickle ends before its STOP opcode (truncated)");
            byte op = d[_pos++];
            switch (op)
            {
                case 0x80: // PROTO
                    {
                        int v = ReadByte();
                        if (v > 5) throw Bad($"pickle protocol {v} is not supported (0 to 5)");
                        break;
                    }
                case 0x95: // FRAME: an 8-byte length, framing only
                    {
                        long len = ReadInt64();
                        if (len < 0 || len > d.Length - _pos) throw Bad($"frame of {len} bytes runs past the end");
                        break;
                    }
                case (byte)'.': // STOP
                    {
                        if (_marks.Count != 0) throw Bad("STOP inside an unfinished MARK");
                        object? result = Pop();
                        if (_stack.Count != 0) throw Bad($"STOP leaves {_stack.Count} extra item(s) on the stack");
                        return result;
                    }

                // ----- stack manipulation
                case (byte)'(': _marks.Push(_stack.Count); break; // MARK
                case (byte)'0': // POP: as CPython, an empty segment pops its MARK instead
                    if (_marks.Count > 0 && _stack.Count == _marks.Peek()) _marks.Pop();
                    else Pop();
                    break;
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP

                // ----- constants
                case (byte)'N': Push(null); break; // NONE
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE

                // ----- integers
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case (byte)'I': Push(ParseTextInt(ReadLine())); break; // INT (text; I00/I01 are False/True)
                case (byte)'L': Push(ParseTextLong(ReadLine())); break; // LONG (text, trailing L)
                case 0x8a: Push(Normalize(new BigInteger(Take(ReadByte()), isUnsigned: false, isBigEndian: false))); break; // LONG1
                case 0x8b: // LONG4
                    {
                        int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
                        if (n < 0) throw Bad($"LONG4 with negative length {n}");
                        Push(Normalize(new BigInteger(Take(n), isUnsigned: false, isBigEndian: false)));
                        break;
                    }

                // ----- floats
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'F': // FLOAT (text)
                    {
                        string s = ReadLine();
                        // Python writes repr(float): also 'inf', '-inf' and 'nan'.
                        double v = s switch
                        {
                            "inf" => double.PositiveInfinity,
                            "-inf" => double.NegativeInfinity,
                            "nan" => double.NaN,
                            _ => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) ? f : throw Bad($"FLOAT '{Trim(s)}' is not a number"),
                        };
                        Push(v);
                        break;
                    }

                // ----- strings and bytes
                case (byte)'X': Push(Utf8(Take(ReadUInt32Length()))); break; // BINUNICODE
                case 0x8c: Push(Utf8(Take(ReadByte()))); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Take(ReadUInt64Length()))); break; // BINUNICODE8
                case (byte)'V': Push(RawUnicodeEscape(ReadLine())); break; // UNICODE (text)
                case (byte)'T': Push(Utf8(Take(ReadInt32Length()))); break; // BINSTRING (Python 2 str)
                case (byte)'U': Push(Utf8(Take(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'S': Push(PythonStringLiteral(ReadLine())); break; // STRING (text, quoted)
                case (byte)'B': Push(Take(ReadUInt32Length()).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: Push(Take(ReadUInt64Length()).ToArray()); break; // BINBYTES8
                case 0x96: Push(Take(ReadUInt64Length()).ToArray()); break; // BYTEARRAY8
                case 0x98: Peek(); break; // READONLY_BUFFER: a no-op on an in-band buffer
                case 0x97: throw Unsafe("NEXT_BUFFER", "opcode NEXT_BUFFER (out-of-band buffers) is not allowed");

                // ----- containers
                case (byte)')': Push(new PickleSequence(PickleSequenceKind.Tuple)); break; // EMPTY_TUPLE
                case 0x85: Push(new PickleSequence(PickleSequenceKind.Tuple, PopN(1))); break; // TUPLE1
                case 0x86: Push(new PickleSequence(PickleSequenceKind.Tuple, PopN(2))); break; // TUPLE2
                case 0x87: Push(new PickleSequence(PickleSequenceKind.Tuple, PopN(3))); break; // TUPLE3
                case (byte)'t': Push(new PickleSequence(PickleSequenceKind.Tuple, PopMark())); break; // TUPLE
                case (byte)']': Push(new PickleSequence(PickleSequenceKind.List)); break; // EMPTY_LIST
                case (byte)'l': Push(new PickleSequence(PickleSequenceKind.List, PopMark())); break; // LIST
                case (byte)'}': Push(new PickleDictionary(isOrdered: false)); break; // EMPTY_DICT
                case (byte)'d': // DICT
                    {
                        var items = PopMark();
                        var dict = new PickleDictionary(isOrdered: false);
                        SetItems(dict, items);
                        Push(dict);
                        break;
                    }
                case 0x8f: Push(new PickleSequence(PickleSequenceKind.Set)); break; // EMPTY_SET
                case 0x91: Push(new PickleSequence(PickleSequenceKind.FrozenSet, Hashables(PopMark()))); break; // FROZENSET
                case 0x90: // ADDITEMS
                    {
                        var items = PopMark();
                        if (Peek() is not PickleSequence { Kind: PickleSequenceKind.Set } set) throw Bad($"ADDITEMS on {Describe(Peek())}, not a set");
                        foreach (var it in Hashables(items)) set.Add(it);
                        break;
                    }
                case (byte)'a': // APPEND
                    {
                        object? item = Pop();
                        Append(Peek(), [item]);
                        break;
                    }
                case (byte)'e': // APPENDS
                    {
                        var items = PopMark();
                        Append(Peek(), items);
                        break;
                    }
                case (byte)'s': // SETITEM
                    {
                        object? value = Pop();
                        object? key = Pop();
                        SetItems(Peek(), [key, value]);
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        var items = PopMark();
                        SetItems(Peek(), items);
                        break;
                    }

                // ----- memo
                case (byte)'q': Memoize(ReadByte()); break; // BINPUT
                case (byte)'r': Memoize(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
                case (byte)'p': Memoize(ParseMemoIndex(ReadLine())); break; // PUT (text)
                case 0x94: Memoize(_memo.Count); break; // MEMOIZE
                case (byte)'h': Push(Recall(ReadByte())); break; // BINGET
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'g': Push(Recall(ParseMemoIndex(ReadLine()))); break; // GET (text)

                // ----- globals, calls, persistent ids
                case (byte)'c': // GLOBAL: "module\nname\n"
                    {
                        string module = ReadAsciiLine();
                        string name = ReadAsciiLine();
                        Push(ResolveGlobal(module, name));
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        object? name = Pop();
                        object? module = Pop();
                        if (module is not string m || name is not string n) throw Bad($"STACK_GLOBAL needs two strings, got {Describe(module)} and {Describe(name)}");
                        Push(ResolveGlobal(m, n));
                        break;
                    }
                case (byte)'R': // REDUCE
                    {
                        object? args = Pop();
                        object? callable = Pop();
                        Push(Reduce(callable, args));
                        break;
                    }
                case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                    {
                        object? args = Pop();
                        object? cls = Pop();
                        Push(NewObject(cls, args, "NEWOBJ"));
                        break;
                    }
                case 0x92: // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
                    {
                        object? kwargs = Pop();
                        object? args = Pop();
                        object? cls = Pop();
                        if (kwargs is not PickleDictionary { Count: 0 }) throw Refused(cls, "NEWOBJ_EX with keyword arguments");
                        Push(NewObject(cls, args, "NEWOBJ_EX"));
                        break;
                    }
                case (byte)'b': // BUILD
                    {
                        object? state = Pop();
                        Build(Peek(), state);
                        break;
                    }
                case (byte)'Q': Push(PersistentLoad(Pop())); break; // BINPERSID
                case (byte)'P': Push(PersistentLoad(ReadAsciiLine())); break; // PERSID (text id)

                case (byte)'i': throw Unsafe("INST", "opcode INST (instantiate an arbitrary class) is not allowed");
                case (byte)'o': throw Unsafe("OBJ", "opcode OBJ (instantiate an arbitrary class) is not allowed");
                case 0x82 or 0x83 or 0x84: throw Unsafe("EXT", "opcodes EXT1/EXT2/EXT4 (the copyreg extension registry) are not allowed");

                default:
                    throw Bad($"unknown pickle opcode 0x{op:x2}");
            }
        }
    }

    // ----------------------------------------------------------------- globals and calls

    private PickleCallable ResolveGlobal(string module, string name)
    {
        string full = module + "." + name;
        switch (full)
        {
            case "collections.OrderedDict": return new BuiltinGlobal(full, Builtin.OrderedDict);
            case "builtins.set" or "__builtin__.set": return new BuiltinGlobal(full, Builtin.Set);
            case "builtins.frozenset" or "__builtin__.frozenset": return new BuiltinGlobal(full, Builtin.FrozenSet);
            case "_codecs.encode": return new BuiltinGlobal(full, Builtin.CodecsEncode); // protocol 2 pickles bytes as encode(str, 'latin1')
        }
        if (_inert.Contains(full)) return new InertClass(full);
        var hosted = _host?.ResolveGlobal(module, name);
        if (hosted is not null) return hosted;
        throw PickleRefusal.Create(full, $"'{_file}': refusing to load global '{full}' ({AllowedSummary}).");
    }

    private object? Reduce(object? callable, object? argsObj)
    {
        if (callable is not PickleCallable c) throw Refused(callable, "REDUCE");
        if (argsObj is not PickleSequence { Kind: PickleSequenceKind.Tuple } args) throw Bad($"REDUCE of '{c.FullName}' needs an argument tuple, got {Describe(argsObj)}");
        // A call may copy its container arguments (OrderedDict(pairs), set(items), torch.Size(dims)): charge for them.
        foreach (var a in args) if (a is PickleSequence seq) Charge(seq.Count);
        switch (c)
        {
            case BuiltinGlobal { Kind: Builtin.OrderedDict }:
                {
                    var od = new PickleDictionary(isOrdered: true);
                    if (args.Count == 0) return od;
                    // Python 2 pickled OrderedDict((k, v) pairs) with the pairs as its argument.
                    if (args.Count != 1 || args[0] is not PickleSequence pairs) throw Bad("OrderedDict() takes no argument or one list of (key, value) pairs");
                    foreach (var pair in pairs)
                    {
                        if (pair is not PickleSequence { Count: 2 } kv) throw Bad("OrderedDict(pairs): an item is not a (key, value) pair");
                        od.Set(Hashable(kv[0]), kv[1]);
                    }
                    return od;
                }
            case BuiltinGlobal { Kind: Builtin.Set or Builtin.FrozenSet } b:
                {
                    var kind = b.Kind == Builtin.Set ? PickleSequenceKind.Set : PickleSequenceKind.FrozenSet;
                    if (args.Count == 0) return new PickleSequence(kind);
                    if (args.Count != 1 || args[0] is not PickleSequence src) throw Bad($"{b.FullName}() needs one list or tuple argument");
                    return new PickleSequence(kind, Hashables(src.ToList()));
                }
            case BuiltinGlobal { Kind: Builtin.CodecsEncode }:
                {
                    if (args.Count != 2 || args[0] is not string text || args[1] is not string enc)
                        throw Bad("_codecs.encode needs (str, encoding)");
                    if (enc is not ("latin1" or "latin-1" or "iso-8859-1"))
                        throw Unsafe("_codecs.encode", $"_codecs.encode with encoding '{enc}' is not allowed (only latin1, as pickle uses for bytes)");
                    Charge(1 + text.Length / 16);
                    var bytes = new byte[text.Length];
                    for (int i = 0; i < text.Length; i++)
                    {
                        if (text[i] > 0xff) throw Bad("_codecs.encode: a latin1 byte string holds a character above U+00FF");
                        bytes[i] = (byte)text[i];
                    }
                    return bytes;
                }
            case InertClass inert:
                return new PickleObject(inert.FullName, args);
            default:
                if (_host is null) throw Refused(c, "REDUCE");
                return _host.Call(c, args);
        }
    }

    private object NewObject(object? cls, object? argsObj, string opcode)
    {
        if (cls is InertClass inert)
        {
            if (argsObj is not PickleSequence { Kind: PickleSequenceKind.Tuple } args) throw Bad($"{opcode} of '{inert.FullName}' needs an argument tuple");
            return new PickleObject(inert.FullName, args);
        }
        throw Refused(cls, opcode);
    }

    private void Build(object? target, object? state)
    {
        switch (target)
        {
            case PickleDictionary dict:
                // OrderedDict.__reduce__ gives the instance __dict__ (e.g. {'_metadata': ...}) as its state.
                if (state is null) return;
                if (state is not PickleDictionary attrs) throw Bad($"BUILD on a dictionary needs a dict of attributes, got {Describe(state)}");
                Charge(attrs.Count);
                foreach (var (k, v) in attrs)
                {
                    if (k is not string name) throw Bad($"BUILD on a dictionary: attribute name {Describe(k)} is not a string");
                    dict.SetAttribute(name, v);
                }
                return;
            case PickleObject obj:
                obj.State = state;
                return;
            case TorchSharp.torch.Tensor:
                // torch's weights-only loader accepts BUILD on a rebuilt tensor to restore its Python attributes
                // (a dict, or a (dict, slots) tuple); they carry no weights, so they are dropped.
                if (state is null or PickleDictionary or PickleSequence { Kind: PickleSequenceKind.Tuple }) return;
                throw Bad($"BUILD on a tensor with {Describe(state)}");
            default:
                throw PickleRefusal.Create("BUILD", $"'{_file}': refusing BUILD on {Describe(target)} at byte {_opStart} ({AllowedSummary}).");
        }
    }

    private object? PersistentLoad(object? pid)
    {
        if (_host is null) throw Unsafe("PERSID", "persistent ids are only allowed inside a torch.save archive");
        return _host.PersistentLoad(pid);
    }

    // ----------------------------------------------------------------- containers

    private void Append(object? target, List<object?> items)
    {
        switch (target)
        {
            case PickleSequence { Kind: PickleSequenceKind.List } list:
                foreach (var it in items) list.Add(it);
                break;
            case PickleObject obj:
                foreach (var it in items) obj.ListItems.Add(it);
                break;
            default:
                throw Bad($"APPEND on {Describe(target)}, not a list");
        }
    }

    private void SetItems(object? target, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("SETITEMS with an odd number of items");
        var dict = target switch
        {
            PickleDictionary d => d,
            PickleObject o => o.DictionaryItems,
            _ => throw Bad($"SETITEM on {Describe(target)}, not a dict"),
        };
        for (int i = 0; i < items.Count; i += 2) dict.Set(Hashable(items[i]), items[i + 1]);
    }

    private List<object?> Hashables(List<object?> items)
    {
        foreach (var it in items) Hashable(it);
        return items;
    }

    private object Hashable(object? key) => key switch
    {
        null => throw Bad("a dictionary key or set item is None, which is not supported"),
        PickleDictionary or PickleSequence { Kind: PickleSequenceKind.List or PickleSequenceKind.Set } => throw Bad($"{Describe(key)} cannot be a dictionary key or set item (unhashable)"),
        TorchSharp.torch.Tensor => throw Bad("a tensor cannot be a dictionary key here"),
        _ => key,
    };

    // ----------------------------------------------------------------- stack and memo

    private void Push(object? o)
    {
        Charge(1);
        _stack.Add(o);
    }

    private void Charge(long units)
    {
        _used += units;
        if (_used > _budget)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"'{_file}': the pickle builds more than {_budget:N0} objects and container items by byte {_opStart} (the budget is " +
                $"{UnitsPerByte} per byte of pickle plus {BaseUnits:N0}); no weights file needs that many, so it is refused rather than read without a memory bound."));
    }

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor) throw Bad("stack underflow");
        object? o = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor) throw Bad("stack underflow");
        return _stack[^1];
    }

    private List<object?> PopN(int n)
    {
        var items = new List<object?>(n);
        for (int i = 0; i < n; i++) items.Add(Pop());
        items.Reverse();
        return items;
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Bad("no MARK to pop to");
        int at = _marks.Pop();
        Charge(_stack.Count - at);
        var items = _stack.GetRange(at, _stack.Count - at);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private void Memoize(long index)
    {
        if (index < 0) throw Bad($"negative memo index {index}");
        Charge(1);
        _memo[index] = Peek();
    }

    private object? Recall(long index) =>
        _memo.TryGetValue(index, out var v) ? v : throw Bad($"memo index {index} was never stored");

    // ----------------------------------------------------------------- reading

    private int ReadByte()
    {
        if (_pos >= _data.Length) throw Bad("the pickle ends inside an opcode (truncated)");
        return _data.Span[_pos++];
    }

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw Bad($"an argument of {n} bytes runs past the end of the pickle (truncated)");
        var s = _data.Span.Slice(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    private long ReadUInt32Length() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private long ReadInt32Length()
    {
        int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        return n >= 0 ? n : throw Bad($"negative length {n}");
    }

    private long ReadUInt64Length()
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        return n <= (ulong)(_data.Length - _pos) ? (long)n : throw Bad($"an argument of {n} bytes runs past the end of the pickle (truncated)");
    }

    private string ReadLine()
    {
        var rest = _data.Span[_pos..];
        int nl = rest.IndexOf((byte)'\n');
        if (nl < 0) throw Bad("a text argument has no end of line (truncated)");
        _pos += nl + 1;
        // Text opcodes of protocol 0 hold latin-1 bytes (escapes make them ASCII in practice).
        return Encoding.Latin1.GetString(rest[..nl]);
    }

    private string ReadAsciiLine()
    {
        string s = ReadLine();
        foreach (char ch in s)
            if (ch < 0x20 || ch > 0x7e) throw Bad($"the global name '{Trim(s)}' is not printable ASCII");
        return s;
    }

    private string Utf8(ReadOnlySpan<byte> bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw Bad("a string is not valid UTF-8"); }
    }

    private object ParseTextInt(string s)
    {
        if (s == "00") return false;
        if (s == "01") return true;
        return ParseInteger(s, "INT");
    }

    private object ParseTextLong(string s) => ParseInteger(s.EndsWith('L') ? s[..^1] : s, "LONG");

    private object ParseInteger(string s, string opcode)
    {
        if (s.Length == 0 || s.Length > MaxTextLongDigits || !BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            throw Bad($"{opcode} '{Trim(s)}' is not an integer");
        return Normalize(v);
    }

    private long ParseMemoIndex(string s) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : throw Bad($"memo index '{Trim(s)}' is not a number");

    private static object Normalize(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : (object)v;

    // The argument of STRING is a Python repr: 'abc' or "abc" with backslash escapes.
    private string PythonStringLiteral(string s)
    {
        if (s.Length < 2 || (s[0] != '\'' && s[0] != '"') || s[^1] != s[0]) throw Bad($"STRING argument {Trim(s)} is not quoted");
        var sb = new StringBuilder();
        var body = s[1..^1];
        for (int i = 0; i < body.Length; i++)
        {
            char ch = body[i];
            if (ch != '\\') { sb.Append(ch); continue; }
            if (++i >= body.Length) throw Bad("STRING ends with a lone backslash");
            char e = body[i];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0' or '1' or '2' or '3' or '4' or '5' or '6' or '7':
                    {
                        int v = 0, k = 0;
                        while (k < 3 && i < body.Length && body[i] is >= '0' and <= '7') { v = v * 8 + (body[i] - '0'); i++; k++; }
                        i--;
                        sb.Append((char)(v & 0xff));
                        break;
                    }
                case 'x':
                    if (i + 2 >= body.Length || !int.TryParse(body.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int x))
                        throw Bad("STRING has a bad \\x escape");
                    sb.Append((char)x);
                    i += 2;
                    break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        return sb.ToString();
    }

    // The argument of UNICODE uses raw-unicode-escape: only \uXXXX and \UXXXXXXXX are escapes.
    private string RawUnicodeEscape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length && (s[i + 1] == 'u' || s[i + 1] == 'U'))
            {
                int digits = s[i + 1] == 'u' ? 4 : 8;
                if (i + 2 + digits > s.Length || !int.TryParse(s.AsSpan(i + 2, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp) || cp < 0 || cp > 0x10FFFF)
                    throw Bad("UNICODE has a bad \\u escape");
                if (cp >= 0xD800 && cp <= 0xDFFF) sb.Append((char)cp);
                else sb.Append(char.ConvertFromUtf32(cp));
                i += 1 + digits;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    // ----------------------------------------------------------------- errors

    private InvalidDataException Bad(string what) =>
        new($"'{_file}': corrupt pickle at byte {_opStart}: {what}.");

    private InvalidDataException Unsafe(string what, string message) =>
        PickleRefusal.Create(what, $"'{_file}': {message} (at byte {_opStart}; {AllowedSummary}).");

    private InvalidDataException Refused(object? callable, string opcode)
    {
        string name = callable is PickleCallable c ? c.FullName : Describe(callable);
        return PickleRefusal.Create(name, $"'{_file}': refusing {opcode} of {(callable is PickleCallable ? $"global '{name}'" : name)} at byte {_opStart} ({AllowedSummary}).");
    }

    internal static string Describe(object? o) => o switch
    {
        null => "None",
        PickleCallable c => $"global '{c.FullName}'",
        string => "a str",
        byte[] => "bytes",
        long or BigInteger => "an int",
        double => "a float",
        bool => "a bool",
        PickleSequence s => $"a {s.Kind.ToString().ToLowerInvariant()}",
        PickleDictionary d => d.IsOrderedDict ? "an OrderedDict" : "a dict",
        PickleObject p => $"a '{p.TypeName}' object",
        TorchSharp.torch.Tensor => "a tensor",
        _ => $"a {o.GetType().Name}",
    };

    private static string Trim(string s) => s.Length <= 40 ? s : s[..40] + "...";
}
