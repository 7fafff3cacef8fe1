namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>
/// Reads and writes MATLAB Level 5 MAT-files (the format of <c>save -v6</c>/<c>-v7</c> and of <c>scipy.io.savemat</c>),
/// as the PASCAL-Part (<c>human_parts/*.mat</c>) and PASCAL-Context (<c>pascal-context/trainval/*.mat</c>) annotations use.
/// </summary>
/// <remarks>
/// <para>Read: the 128-byte header in either byte order ('IM' little-endian or 'MI' big-endian), compressed
/// (<c>miCOMPRESSED</c>, zlib) and uncompressed <c>miMATRIX</c> elements, the small data element format, the 10 real
/// numeric classes (with data stored in a smaller type, as MATLAB does, converted to the array's class), logical arrays,
/// character arrays (UTF-16, UTF-8 or 8-bit data), structs, cell arrays, nested structs and empty arrays.</para>
/// <para>Refused with a <see cref="NotSupportedException"/> that names the variable: sparse and complex arrays, objects,
/// function handles, opaque classes (MATLAB strings, tables), v4 and v7.3 (HDF5) files. Corrupt or truncated data gives an
/// <see cref="InvalidDataException"/> that names the file and the element (e.g. <c>anno.objects(2).parts(1).mask</c>).</para>
/// </remarks>
public static class MatFile
{
    /// <summary>Reads every variable of a MAT v5 file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The variables by name, in file order.</returns>
    /// <exception cref="InvalidDataException">The file is not a MAT v5 file or is corrupt or truncated.</exception>
    /// <exception cref="NotSupportedException">A variable uses a MATLAB feature this reader does not support.</exception>
    public static IReadOnlyDictionary<string, MatArray> Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return MatFileReader.Read(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads every variable of a MAT v5 file from a stream (read to its end).</summary>
    /// <param name="stream">The file's bytes.</param>
    /// <param name="name">The name used in error messages (usually the file path).</param>
    /// <returns>The variables by name, in file order.</returns>
    /// <exception cref="InvalidDataException">The data is not a MAT v5 file or is corrupt or truncated.</exception>
    /// <exception cref="NotSupportedException">A variable uses a MATLAB feature this reader does not support.</exception>
    public static IReadOnlyDictionary<string, MatArray> Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return MatFileReader.Read(copy.ToArray(), name ?? "<stream>");
    }

    /// <summary>
    /// Writes variables as a MAT v5 file (readable by MATLAB, scipy's <c>loadmat</c> and <see cref="Read(string)"/>).
    /// The file is written to a temporary name and then moved into place.
    /// </summary>
    /// <param name="path">The target file.</param>
    /// <param name="variables">Top-level variables; each needs a valid MATLAB name, unique in the file. Names of nested arrays are not written.</param>
    /// <param name="compress">Whether to zlib-compress each variable (<c>miCOMPRESSED</c>, as <c>save -v7</c>); otherwise plain <c>-v6</c> elements.</param>
    public static void Write(string path, IEnumerable<MatArray> variables, bool compress = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(variables);
        var bytes = MatFileWriter.Encode(variables.ToList(), compress);
        AtomicFile.Write(path, s => s.Write(bytes));
    }
}
