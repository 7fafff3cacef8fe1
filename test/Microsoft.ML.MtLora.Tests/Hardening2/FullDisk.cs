using MtLora.Cli.Commands;

namespace Microsoft.ML.MtLora.Tests.Hardening2;

/// <summary>
/// Makes the CLI's output writes to chosen files fail like a full disk (no tmpfs needed): every stream the CLI opens for
/// such a file accepts <c>capacity</c> bytes and then throws the IOException .NET throws for ENOSPC.
/// </summary>
internal sealed class FullDisk : IDisposable
{
    private readonly Func<string, Stream, Stream>? _previous;

    private FullDisk(Func<string, bool> which, long capacity)
    {
        _previous = OutputPaths.StreamFilter.Value;
        OutputPaths.StreamFilter.Value = (path, stream) => which(path) ? new FullDiskStream(stream, capacity) : stream;
    }

    /// <summary>Writes to files for which <paramref name="which"/> is true fail after <paramref name="capacity"/> bytes, until disposed.</summary>
    public static FullDisk For(Func<string, bool> which, long capacity = 1000) => new(which, capacity);

    public void Dispose() => OutputPaths.StreamFilter.Value = _previous;

    /// <summary>Temporary files the CLI could have left in a folder (anything with the writers' <c>.tmp-</c> tag).</summary>
    public static string[] Temporaries(string folder) =>
        Directory.Exists(folder) ? Directory.GetFileSystemEntries(folder, "*.tmp-*", SearchOption.AllDirectories) : [];

    private sealed class FullDiskStream(Stream inner, long capacity) : Stream
    {
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => inner.CanWrite;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => inner.SetLength(value);
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > capacity)
                throw new IOException("No space left on device : '/full-disk/file'", 28); // .NET's message and errno for ENOSPC
            inner.Write(buffer);
            _written += buffer.Length;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
