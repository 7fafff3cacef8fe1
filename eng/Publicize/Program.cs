using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

// Usage: Publicize <input.dll> <output.dll>
// Copies the assembly and flips visibility bits in its metadata tables (ECMA-335 II.22):
//   TypeDef: internal -> public, nested internal -> nested public, nested private protected -> nested protected;
//   MethodDef / Field: internal -> public, private protected -> protected.
// Only the metadata flags change; IL, signatures and the strong-name identity stay as they are. The output is a
// compile-time reference: the runtime loads the real assembly (IgnoresAccessChecksTo lifts the access checks there).
// The output is rewritten only when its bytes change, so incremental builds stay incremental.

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Publicize <input assembly> <output assembly>");
    return 2;
}

var (input, output) = (args[0], args[1]);
byte[] bytes;
try
{
    bytes = File.ReadAllBytes(input);
}
catch (IOException e)
{
    Console.Error.WriteLine($"Publicize: cannot read '{input}': {e.Message}");
    return 1;
}

using (var pe = new PEReader(new MemoryStream(bytes, writable: false)))
{
    if (!pe.HasMetadata)
    {
        Console.Error.WriteLine($"Publicize: '{input}' is not a .NET assembly (no metadata).");
        return 1;
    }
    var md = pe.GetMetadataReader();
    int metadataStart = pe.PEHeaders.MetadataStartOffset;

    // Rewrites the flags column of every row of a table; the column holds a 2- or 4-byte little-endian value.
    void Patch(TableIndex table, int columnOffset, int columnSize, Func<int, int> map)
    {
        int rows = md.GetTableRowCount(table), rowSize = md.GetTableRowSize(table);
        int start = metadataStart + md.GetTableMetadataOffset(table) + columnOffset;
        for (int i = 0; i < rows; i++)
        {
            int at = start + i * rowSize;
            int value = columnSize == 4 ? BitConverter.ToInt32(bytes, at) : BitConverter.ToUInt16(bytes, at);
            int mapped = map(value);
            if (mapped == value) continue;
            if (columnSize == 4) BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), mapped);
            else BitConverter.TryWriteBytes(bytes.AsSpan(at, 2), (ushort)mapped);
        }
    }

    const int typeVisibility = (int)TypeAttributes.VisibilityMask;
    Patch(TableIndex.TypeDef, 0, 4, f => (f & typeVisibility) switch
    {
        (int)TypeAttributes.NotPublic => (f & ~typeVisibility) | (int)TypeAttributes.Public,
        (int)TypeAttributes.NestedAssembly => (f & ~typeVisibility) | (int)TypeAttributes.NestedPublic,
        (int)TypeAttributes.NestedFamANDAssem => (f & ~typeVisibility) | (int)TypeAttributes.NestedFamily,
        _ => f,
    });

    // MethodAttributes and FieldAttributes share the access encoding (mask 0x7).
    const int access = (int)MethodAttributes.MemberAccessMask;
    int Member(int f) => (f & access) switch
    {
        (int)MethodAttributes.Assembly => (f & ~access) | (int)MethodAttributes.Public,
        (int)MethodAttributes.FamANDAssem => (f & ~access) | (int)MethodAttributes.Family,
        _ => f,
    };
    Patch(TableIndex.MethodDef, 4 + 2, 2, Member); // row: RVA (4), ImplFlags (2), Flags (2), ...
    Patch(TableIndex.Field, 0, 2, Member);         // row: Flags (2), ...
}

// Several builds of the same project (e.g. through different project references) can run this at once: each writes
// its own temporary file and renames it over the output, an atomic replace, so readers see the old or the new file.
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
if (SameContent(output, bytes)) return 0;
var tmp = $"{output}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
try
{
    File.WriteAllBytes(tmp, bytes);
    File.Move(tmp, output, overwrite: true);
}
catch (IOException) when (SameContent(output, bytes))
{
    // Another run wrote the same bytes first.
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"Publicize: cannot write '{output}': {e.Message}");
    return 1;
}
finally
{
    if (File.Exists(tmp)) File.Delete(tmp);
}
return 0;

static bool SameContent(string path, byte[] bytes)
{
    try
    {
        return File.Exists(path) && File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes);
    }
    catch (IOException)
    {
        return false;
    }
}
