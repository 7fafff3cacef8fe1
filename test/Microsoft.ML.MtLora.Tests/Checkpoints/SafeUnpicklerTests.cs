using System.Numerics;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Checkpoints.Pickle;

namespace Microsoft.ML.MtLora.Tests.Checkpoints;

public class SafeUnpicklerTests
{
    // CPython 3.11 pickle.dumps(obj, protocol=p) of:
    //   {'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31, 2**63-1, -2**63, 2**70, -2**70],
    //    'floats': [0.5, -1e300, inf], 'flags': (True, False, None), 'text': 'héllo\n€😀', 'raw': b'\x00\xff\n',
    //    'od': OrderedDict(x=1, y=[1, 2, 3]), 's': {7}, 'fs': frozenset([9]),
    //    't': (), 't1': (1,), 't2': (1, 2), 't3': (1, 2, 3), 't4': (1, 2, 3, 4), 7: 'int key', 'shared': (l, l) with l = [1]}
    // Together the six protocols use every data opcode torch.save and CPython emit (text and binary forms, FRAME,
    // MEMOIZE, STACK_GLOBAL, EMPTY_SET/ADDITEMS/FROZENSET, LONG/LONG1, _codecs.encode for bytes in protocols 0-2).
    [Theory]
    [InlineData(0, "KGRwMApWaW50cwpwMQoobHAyCkkwCmFJMQphSS0xCmFJMjU1CmFJMjU2CmFJNjU1MzUKYUk2NTUzNgphSS0yMTQ3NDgzNjQ4CmFMMjE0NzQ4MzY0OEwKYUw5MjIzMzcyMDM2ODU0Nzc1ODA3TAphTC05MjIzMzcyMDM2ODU0Nzc1ODA4TAphTDExODA1OTE2MjA3MTc0MTEzMDM0MjRMCmFMLTExODA1OTE2MjA3MTc0MTEzMDM0MjRMCmFzVmZsb2F0cwpwMwoobHA0CkYwLjUKYUYtMWUrMzAwCmFGaW5mCmFzVmZsYWdzCnA1CihJMDEKSTAwCk50cDYKc1Z0ZXh0CnA3ClZo6Wxsb1x1MDAwYVx1MjBhY1xVMDAwMWY2MDAKcDgKc1ZyYXcKcDkKY19jb2RlY3MKZW5jb2RlCnAxMAooVlx1MDAwMP9cdTAwMGEKcDExClZsYXRpbjEKcDEyCnRwMTMKUnAxNApzVm9kCnAxNQpjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcDE2Cih0UnAxNwpWeApwMTgKSTEKc1Z5CnAxOQoobHAyMApJMQphSTIKYUkzCmFzc1ZzCnAyMQpjX19idWlsdGluX18Kc2V0CnAyMgooKGxwMjMKSTcKYXRwMjQKUnAyNQpzVmZzCnAyNgpjX19idWlsdGluX18KZnJvemVuc2V0CnAyNwooKGxwMjgKSTkKYXRwMjkKUnAzMApzVnQKcDMxCih0c1Z0MQpwMzIKKEkxCnRwMzMKc1Z0MgpwMzQKKEkxCkkyCnRwMzUKc1Z0MwpwMzYKKEkxCkkyCkkzCnRwMzcKc1Z0NApwMzgKKEkxCkkyCkkzCkk0CnRwMzkKc0k3ClZpbnQga2V5CnA0MApzVnNoYXJlZApwNDEKKChscDQyCkkxCmFnNDIKdHA0MwpzLg==")]
    [InlineData(1, "fXEAKFgEAAAAaW50c3EBXXECKEsASwFK/////0v/TQABTf//SgAAAQBKAAAAgEwyMTQ3NDgzNjQ4TApMOTIyMzM3MjAzNjg1NDc3NTgwN0wKTC05MjIzMzcyMDM2ODU0Nzc1ODA4TApMMTE4MDU5MTYyMDcxNzQxMTMwMzQyNEwKTC0xMTgwNTkxNjIwNzE3NDExMzAzNDI0TAplWAYAAABmbG9hdHNxA11xBChHP+AAAAAAAABH/jfkPIgAdZxHf/AAAAAAAABlWAUAAABmbGFnc3EFKEkwMQpJMDAKTnRxBlgEAAAAdGV4dHEHWA4AAABow6lsbG8K4oKs8J+YgHEIWAMAAAByYXdxCWNfY29kZWNzCmVuY29kZQpxCihYBAAAAADDvwpxC1gGAAAAbGF0aW4xcQx0cQ1ScQ5YAgAAAG9kcQ9jY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcRApUnERKFgBAAAAeHESSwFYAQAAAHlxE11xFChLAUsCSwNldVgBAAAAc3EVY19fYnVpbHRpbl9fCnNldApxFihdcRdLB2F0cRhScRlYAgAAAGZzcRpjX19idWlsdGluX18KZnJvemVuc2V0CnEbKF1xHEsJYXRxHVJxHlgBAAAAdHEfKVgCAAAAdDFxIChLAXRxIVgCAAAAdDJxIihLAUsCdHEjWAIAAAB0M3EkKEsBSwJLA3RxJVgCAAAAdDRxJihLAUsCSwNLBHRxJ0sHWAcAAABpbnQga2V5cShYBgAAAHNoYXJlZHEpKF1xKksBYWgqdHErdS4=")]
    [InlineData(2, "gAJ9cQAoWAQAAABpbnRzcQFdcQIoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoI/////////3+KCAAAAAAAAACAigkAAAAAAAAAAECKCQAAAAAAAAAAwGVYBgAAAGZsb2F0c3EDXXEEKEc/4AAAAAAAAEf+N+Q8iAB1nEd/8AAAAAAAAGVYBQAAAGZsYWdzcQWIiU6HcQZYBAAAAHRleHRxB1gOAAAAaMOpbGxvCuKCrPCfmIBxCFgDAAAAcmF3cQljX2NvZGVjcwplbmNvZGUKcQpYBAAAAADDvwpxC1gGAAAAbGF0aW4xcQyGcQ1ScQ5YAgAAAG9kcQ9jY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcRApUnERKFgBAAAAeHESSwFYAQAAAHlxE11xFChLAUsCSwNldVgBAAAAc3EVY19fYnVpbHRpbl9fCnNldApxFl1xF0sHYYVxGFJxGVgCAAAAZnNxGmNfX2J1aWx0aW5fXwpmcm96ZW5zZXQKcRtdcRxLCWGFcR1ScR5YAQAAAHRxHylYAgAAAHQxcSBLAYVxIVgCAAAAdDJxIksBSwKGcSNYAgAAAHQzcSRLAUsCSwOHcSVYAgAAAHQ0cSYoSwFLAksDSwR0cSdLB1gHAAAAaW50IGtleXEoWAYAAABzaGFyZWRxKV1xKksBYWgqhnErdS4=")]
    [InlineData(3, "gAN9cQAoWAQAAABpbnRzcQFdcQIoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoI/////////3+KCAAAAAAAAACAigkAAAAAAAAAAECKCQAAAAAAAAAAwGVYBgAAAGZsb2F0c3EDXXEEKEc/4AAAAAAAAEf+N+Q8iAB1nEd/8AAAAAAAAGVYBQAAAGZsYWdzcQWIiU6HcQZYBAAAAHRleHRxB1gOAAAAaMOpbGxvCuKCrPCfmIBxCFgDAAAAcmF3cQlDAwD/CnEKWAIAAABvZHELY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEMKVJxDShYAQAAAHhxDksBWAEAAAB5cQ9dcRAoSwFLAksDZXVYAQAAAHNxEWNidWlsdGlucwpzZXQKcRJdcRNLB2GFcRRScRVYAgAAAGZzcRZjYnVpbHRpbnMKZnJvemVuc2V0CnEXXXEYSwlhhXEZUnEaWAEAAAB0cRspWAIAAAB0MXEcSwGFcR1YAgAAAHQycR5LAUsChnEfWAIAAAB0M3EgSwFLAksDh3EhWAIAAAB0NHEiKEsBSwJLA0sEdHEjSwdYBwAAAGludCBrZXlxJFgGAAAAc2hhcmVkcSVdcSZLAWFoJoZxJ3Uu")]
    [InlineData(4, "gASVWQEAAAAAAAB9lCiMBGludHOUXZQoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoI/////////3+KCAAAAAAAAACAigkAAAAAAAAAAECKCQAAAAAAAAAAwGWMBmZsb2F0c5RdlChHP+AAAAAAAABH/jfkPIgAdZxHf/AAAAAAAABljAVmbGFnc5SIiU6HlIwEdGV4dJSMDmjDqWxsbwrigqzwn5iAlIwDcmF3lEMDAP8KlIwCb2SUjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKUKIwBeJRLAYwBeZRdlChLAUsCSwNldYwBc5SPlChLB5CMAmZzlChLCZGUjAF0lCmMAnQxlEsBhZSMAnQylEsBSwKGlIwCdDOUSwFLAksDh5SMAnQ0lChLAUsCSwNLBHSUSweMB2ludCBrZXmUjAZzaGFyZWSUXZRLAWFoIoaUdS4=")]
    [InlineData(5, "gAWVWQEAAAAAAAB9lCiMBGludHOUXZQoSwBLAUr/////S/9NAAFN//9KAAABAEoAAACAigUAAACAAIoI/////////3+KCAAAAAAAAACAigkAAAAAAAAAAECKCQAAAAAAAAAAwGWMBmZsb2F0c5RdlChHP+AAAAAAAABH/jfkPIgAdZxHf/AAAAAAAABljAVmbGFnc5SIiU6HlIwEdGV4dJSMDmjDqWxsbwrigqzwn5iAlIwDcmF3lEMDAP8KlIwCb2SUjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKUKIwBeJRLAYwBeZRdlChLAUsCSwNldYwBc5SPlChLB5CMAmZzlChLCZGUjAF0lCmMAnQxlEsBhZSMAnQylEsBSwKGlIwCdDOUSwFLAksDh5SMAnQ0lChLAUsCSwNLBHSUSweMB2ludCBrZXmUjAZzaGFyZWSUXZRLAWFoIoaUdS4=")]
    public void ReadsEveryProtocol(int protocol, string base64)
    {
        var root = new SafeUnpickler(Convert.FromBase64String(base64), $"p{protocol}.pkl").Load();
        var d = Assert.IsType<PickleDictionary>(root);
        Assert.False(d.IsOrderedDict);
        Assert.Equal(new object[] { "ints", "floats", "flags", "text", "raw", "od", "s", "fs", "t", "t1", "t2", "t3", "t4", 7L, "shared" }, d.Keys.ToArray());

        var ints = Assert.IsType<PickleSequence>(d["ints"]);
        Assert.Equal(PickleSequenceKind.List, ints.Kind);
        var expected = new object[] { 0L, 1L, -1L, 255L, 256L, 65535L, 65536L, (long)int.MinValue, 1L << 31, long.MaxValue, long.MinValue, BigInteger.Pow(2, 70), -BigInteger.Pow(2, 70) };
        Assert.Equal(expected, ints.ToArray());

        Assert.Equal(new object[] { 0.5, -1e300, double.PositiveInfinity }, ((PickleSequence)d["floats"]!).ToArray());
        var flags = (PickleSequence)d["flags"]!;
        Assert.Equal(PickleSequenceKind.Tuple, flags.Kind);
        Assert.Equal(new object?[] { true, false, null }, flags.ToArray());
        Assert.Equal("héllo\n€😀", d["text"]);
        Assert.Equal(new byte[] { 0, 255, 10 }, d["raw"]);

        var od = Assert.IsType<PickleDictionary>(d["od"]);
        Assert.True(od.IsOrderedDict);
        Assert.Equal(1L, od["x"]);
        Assert.Equal(new object[] { 1L, 2L, 3L }, ((PickleSequence)od["y"]!).ToArray());

        Assert.Equal(PickleSequenceKind.Set, ((PickleSequence)d["s"]!).Kind);
        Assert.Equal(new object[] { 7L }, ((PickleSequence)d["s"]!).ToArray());
        Assert.Equal(PickleSequenceKind.FrozenSet, ((PickleSequence)d["fs"]!).Kind);
        Assert.Equal(new object[] { 9L }, ((PickleSequence)d["fs"]!).ToArray());
        for (int n = 0; n <= 4; n++)
        {
            var t = (PickleSequence)d[n == 0 ? "t" : $"t{n}"]!;
            Assert.Equal(PickleSequenceKind.Tuple, t.Kind);
            Assert.Equal(Enumerable.Range(1, n).Select(i => (object)(long)i).ToArray(), t.ToArray());
        }
        Assert.Equal("int key", d[7L]);
        var shared = (PickleSequence)d["shared"]!;
        Assert.Same(shared[0], shared[1]); // the memo gives back the same object, as in Python
    }

    [Fact]
    public void ReadsPython2StringsAndBuffers()
    {
        // STRING 'ab\x41\n', SHORT_BINSTRING 'xyz', BINBYTES8 / BYTEARRAY8 (protocol 5), BINUNICODE8, READONLY_BUFFER.
        var w = new PickleWriter().Proto(5).Op((byte)'(')
            .Raw("S'ab\\x41\\n\\''\n"u8.ToArray())
            .Op((byte)'U').Op(3).Raw("xyz"u8.ToArray())
            .Op(0x8e).Raw([2, 0, 0, 0, 0, 0, 0, 0, 1, 2])
            .Op(0x96).Raw([1, 0, 0, 0, 0, 0, 0, 0, 9]).Op(0x98)
            .Op(0x8d).Raw([2, 0, 0, 0, 0, 0, 0, 0, (byte)'o', (byte)'k'])
            .Op((byte)'l').Stop();
        var list = (PickleSequence)new SafeUnpickler(w.ToArray(), "s.pkl").Load()!;
        Assert.Equal("abA\n'", list[0]);
        Assert.Equal("xyz", list[1]);
        Assert.Equal(new byte[] { 1, 2 }, list[2]);
        Assert.Equal(new byte[] { 9 }, list[3]);
        Assert.Equal("ok", list[4]);
    }

    [Fact]
    public void StackOpcodesFollowCPython()
    {
        // MARK POP (pops the mark itself), 1 DUP TUPLE2, MARK 5 POP_MARK, STOP.
        var pickle = new PickleWriter().Proto().Mark().Op((byte)'0').Int(1).Op((byte)'2').Op(0x86).Mark().Int(5).Op((byte)'1').Stop().ToArray();
        Assert.Equal(new object[] { 1L, 1L }, ((PickleSequence)new SafeUnpickler(pickle, "s.pkl").Load()!).ToArray());

        // Python 2 form of an OrderedDict: OrderedDict([['a', 1], ['b', 2]]).
        var py2 = new PickleWriter().Proto().Global("collections", "OrderedDict").Mark().Mark().Str("a").Int(1).Op((byte)'l').Mark().Str("b").Int(2).Op((byte)'l').Op((byte)'l').Op(0x85).Reduce().Stop().ToArray();
        var od = (PickleDictionary)new SafeUnpickler(py2, "s.pkl").Load()!;
        Assert.True(od.IsOrderedDict);
        Assert.Equal(new object[] { "a", "b" }, od.Keys.ToArray());
        Assert.Equal(2L, od["b"]);

        var leftover = new PickleWriter().Proto().Int(1).Int(2).Stop().ToArray();
        Assert.Contains("extra item", Assert.Throws<InvalidDataException>(() => new SafeUnpickler(leftover, "s.pkl").Load()).Message);
        var openMark = new PickleWriter().Proto().Int(1).Mark().Stop().ToArray();
        Assert.Contains("'s.pkl'", Assert.Throws<InvalidDataException>(() => new SafeUnpickler(openMark, "s.pkl").Load()).Message);
        var badGet = new PickleWriter().Proto().Op((byte)'h').Op(9).Stop().ToArray();
        Assert.Contains("memo index 9", Assert.Throws<InvalidDataException>(() => new SafeUnpickler(badGet, "s.pkl").Load()).Message);
    }

    public static TheoryData<string, byte[], string> Malicious => new()
    {
        // os.system('ls') as pickled on Linux (posix.system), protocol 2.
        { "posix.system", new PickleWriter().Proto().Global("posix", "system").Str("ls").Op(0x85).Reduce().Stop().ToArray(), "refusing to load global 'posix.system'" },
        { "builtins.eval", new PickleWriter().Proto().Global("builtins", "eval").Str("1+1").Op(0x85).Reduce().Stop().ToArray(), "refusing to load global 'builtins.eval'" },
        // Protocol 4 form: STACK_GLOBAL with the names on the stack.
        { "subprocess.Popen", new PickleWriter().Proto(4).Op(0x8c).Op(10).Raw("subprocess"u8.ToArray()).Op(0x8c).Op(5).Raw("Popen"u8.ToArray()).Op(0x93).Stop().ToArray(), "refusing to load global 'subprocess.Popen'" },
        // INST and OBJ instantiate classes without a GLOBAL opcode.
        { "INST", new PickleWriter().Proto(1).Mark().Str("x").Raw("iposix\nsystem\n"u8.ToArray()).Stop().ToArray(), "opcode INST" },
        { "OBJ", new PickleWriter().Proto(1).Mark().Global("collections", "OrderedDict").Op((byte)'o').Stop().ToArray(), "opcode OBJ" },
        { "EXT", new PickleWriter().Proto(2).Op(0x82).Op(1).Stop().ToArray(), "EXT1" },
        // REDUCE of something that is not an allowed global (a string built to look like a callable).
        { "None", new PickleWriter().Proto().Str("os.system").EmptyTuple().Reduce().Stop().ToArray(), "refusing REDUCE" },
        // NEWOBJ of an allowed container type is still refused: only declared inert classes may be instantiated.
        { "collections.OrderedDict", new PickleWriter().Proto().OrderedDict().Op((byte)'0').Global("collections", "OrderedDict").EmptyTuple().Op(0x81).Stop().ToArray(), "NEWOBJ" },
        // BUILD on a plain list (setstate of arbitrary objects).
        { "BUILD", new PickleWriter().Proto().EmptyList().EmptyDict().Op((byte)'b').Stop().ToArray(), "refusing BUILD" },
    };

    [Theory]
    [MemberData(nameof(Malicious))]
    public void RefusesWhatWeightsOnlyRefuses(string offending, byte[] pickle, string messagePart)
    {
        var e = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(pickle, "evil.pkl").Load());
        Assert.Contains("'evil.pkl'", e.Message);
        Assert.Contains(messagePart, e.Message);
        if (offending != "None") Assert.Equal(offending, e.Data[PyTorchCheckpoint.RefusedGlobalKey]);
    }

    [Fact]
    public void InertClassesAreRecordedNotRun()
    {
        // pickle.dumps({'model': {}, 'config': CfgNode({'MODEL': CfgNode({'NAME': 'swin'}), 'EPOCHS': 300})}, protocol=2)
        // with a stand-in yacs.config.CfgNode (a dict subclass with attributes), as the reference training script saves.
        var bytes = Convert.FromBase64String(YacsPickle);
        var refused = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(bytes, "cfg.pkl").Load());
        Assert.Contains("refusing to load global 'yacs.config.CfgNode'", refused.Message);

        var root = (PickleDictionary)new SafeUnpickler(bytes, "cfg.pkl", null, CheckpointReadOptions.ReferenceTraining.InertGlobals).Load()!;
        var cfg = Assert.IsType<PickleObject>(root["config"]);
        Assert.Equal("yacs.config.CfgNode", cfg.TypeName);
        Assert.Equal(300L, cfg.DictionaryItems["EPOCHS"]);
        var model = Assert.IsType<PickleObject>(cfg.DictionaryItems["MODEL"]);
        Assert.Equal("swin", model.DictionaryItems["NAME"]);
        var state = Assert.IsType<PickleDictionary>(cfg.State);
        Assert.Equal(false, state["__immutable__"]);
        Assert.Equal(PickleSequenceKind.Set, ((PickleSequence)state["__deprecated_keys__"]!).Kind);
    }

    internal const string YacsPickle = "gAJ9cQAoWAUAAABtb2RlbHEBfXECWAYAAABjb25maWdxA2N5YWNzLmNvbmZpZwpDZmdOb2RlCnEEKYFxBShYBQAAAE1PREVMcQZoBCmBcQdYBAAAAE5BTUVxCFgEAAAAc3dpbnEJc31xCihYDQAAAF9faW1tdXRhYmxlX19xC4lYEwAAAF9fZGVwcmVjYXRlZF9rZXlzX19xDGNfX2J1aWx0aW5fXwpzZXQKcQ1dcQ6FcQ9ScRBYEAAAAF9fcmVuYW1lZF9rZXlzX19xEX1xElgPAAAAX19uZXdfYWxsb3dlZF9fcROJdWJYBgAAAEVQT0NIU3EUTSwBdX1xFShoC4loDGgNXXEWhXEXUnEYaBF9cRloE4l1YnUu";

    [Fact]
    public void EveryPrefixOfAPickleIsAnInvalidDataException()
    {
        var bytes = Convert.FromBase64String(YacsPickle);
        for (int n = 0; n < bytes.Length; n++)
        {
            var e = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(bytes.AsMemory(0, n), "cut.pkl", null, CheckpointReadOptions.ReferenceTraining.InertGlobals).Load());
            Assert.Contains("'cut.pkl'", e.Message);
        }
    }

    [Fact]
    public void PersistentIdsNeedATorchArchive()
    {
        var pickle = new PickleWriter().Proto().Str("x").Op((byte)'Q').Stop().ToArray();
        var e = Assert.Throws<InvalidDataException>(() => new SafeUnpickler(pickle, "p.pkl").Load());
        Assert.Contains("persistent ids", e.Message);
    }
}
