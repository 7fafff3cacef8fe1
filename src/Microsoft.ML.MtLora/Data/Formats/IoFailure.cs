using System.Text.RegularExpressions;

namespace Microsoft.ML.MtLora.Data.Formats;

/// <summary>The cause of a failed file write, worded for a one-line message that names the file itself.</summary>
internal static partial class IoFailure
{
    /// <summary>
    /// The reason without the path .NET appends on Unix (<c>No space left on device : '/the/path'</c>), which is often a
    /// temporary name the user never asked for; <c>permission denied</c> for an access error.
    /// </summary>
    public static string Describe(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        _ => TrailingPath().Replace(e.Message, "").Trim().TrimEnd('.'),
    };

    [GeneratedRegex(@"\s*:\s*'[^']*'\s*$")]
    private static partial Regex TrailingPath();
}
