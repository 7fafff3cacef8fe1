using System.Security.Cryptography;

namespace Microsoft.ML.MtLora.Checkpoints;

/// <summary>
/// The SHA-256 that training checkpoints (manifest.json) and model.zip (<c>Weights.sha256</c>) record for their weights,
/// as 64 lowercase hexadecimal digits.
/// </summary>
internal static class Sha256Digest
{
    /// <summary>The digest of the rest of a stream, read in blocks (memory does not grow with the stream).</summary>
    public static string Of(Stream stream) => Convert.ToHexStringLower(SHA256.HashData(stream));

    /// <summary>The digest of a file.</summary>
    public static string OfFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Of(stream);
    }

    /// <summary>Writes through <paramref name="write"/> to <paramref name="destination"/> and returns the digest of what was written.</summary>
    public static string OfWritten(Stream destination, Action<Stream> write)
    {
        using var sha = SHA256.Create();
        using (var hashing = new CryptoStream(destination, sha, CryptoStreamMode.Write, leaveOpen: true))
            write(hashing);
        return Convert.ToHexStringLower(sha.Hash!);
    }
}
