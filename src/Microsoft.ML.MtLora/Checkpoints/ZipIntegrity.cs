using System.IO.Compression;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// Checks the CRC-32 that a zip archive records for each member (.NET's <see cref="ZipArchive"/> does not: a flipped bit in
/// deflated data usually still inflates, to different bytes, and a stored member is returned as it is). Used on the members
/// of <c>torch.save</c> checkpoints as they are read, and by the <c>mtlora</c> command line on a model.zip before ML.NET
/// loads it.
/// </summary>
public static class ZipIntegrity
{
    /// <summary>
    /// Reads every member of a zip file once, in 1 MiB blocks (memory does not grow with the file), and checks its length
    /// and CRC-32 against the archive's directory.
    /// </summary>
    /// <param name="path">The zip file (a model.zip, a <c>.pth</c> checkpoint).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a readable zip archive, or a member is truncated or does not
    /// match its recorded CRC-32; the message names the file and the member.</exception>
    public static void Verify(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        ZipArchive zip;
        try { zip = new ZipArchive(stream, ZipArchiveMode.Read); }
        catch (InvalidDataException e) { throw new InvalidDataException($"'{path}' is not a readable zip archive (truncated or corrupt): {e.Message}", e); }
        using (zip)
        {
            var buffer = new byte[1 << 20];
            foreach (var entry in zip.Entries)
            {
                using var member = OpenChecked(entry, path);
                while (member.Read(buffer) > 0) { }
            }
        }
    }

    /// <summary>
    /// Opens a member for reading through a stream that checks, when the last byte has been read, that the member has the
    /// length and CRC-32 the archive records; reading past a damaged member's end throws.
    /// </summary>
    internal static Stream OpenChecked(ZipArchiveEntry entry, string file)
    {
        Stream inner;
        try { inner = entry.Open(); }
        catch (InvalidDataException e) { throw Damaged(file, entry, e.Message, e); }
        return new CrcCheckingStream(inner, entry, file);
    }

    private static InvalidDataException Damaged(string file, ZipArchiveEntry entry, string what, Exception? inner = null) =>
        new($"'{file}': zip member '{entry.FullName}' is damaged: {what}", inner);

    /// <summary>A read-only pass-through that computes the CRC-32 of what is read and checks it at the end of the member.</summary>
    private sealed class CrcCheckingStream(Stream inner, ZipArchiveEntry entry, string file) : Stream
    {
        private uint _crc = 0xFFFFFFFFu;
        private long _read;
        private bool _checked;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => entry.Length;
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;
            int n;
            try { n = inner.Read(buffer); }
            catch (InvalidDataException e) { throw Damaged(file, entry, $"its compressed data is corrupt ({e.Message})", e); }
            _crc = Crc32.Update(_crc, buffer[..n]);
            _read += n;
            if (_read > entry.Length) throw Damaged(file, entry, $"it inflates to more than the {entry.Length} bytes the archive records");
            if (n == 0 || _read == entry.Length) Check();
            return n;
        }

        private void Check()
        {
            if (_checked) return;
            if (_read != entry.Length)
                throw Damaged(file, entry, $"it ends after {_read} of the {entry.Length} bytes the archive records (truncated)");
            // The member may still hold more (corrupt) data: it must end here.
            Span<byte> one = stackalloc byte[1];
            int extra;
            try { extra = inner.Read(one); }
            catch (InvalidDataException e) { throw Damaged(file, entry, $"its compressed data is corrupt ({e.Message})", e); }
            if (extra != 0) throw Damaged(file, entry, $"it inflates to more than the {entry.Length} bytes the archive records");
            _checked = true;
            uint crc = _crc ^ 0xFFFFFFFFu;
            if (crc != entry.Crc32)
                throw Damaged(file, entry, $"its CRC-32 is {crc:X8}, the archive records {entry.Crc32:X8} (a changed or corrupt byte)");
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
