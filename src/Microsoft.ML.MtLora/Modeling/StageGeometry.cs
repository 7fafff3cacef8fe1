namespace Microsoft.ML.MtLora.Modeling;

/// <summary>The resolved geometry of one Swin stage.</summary>
/// <param name="Index">Stage index 0..3.</param>
/// <param name="Resolution">Token grid side at the stage input (square).</param>
/// <param name="Dim">Channels inside the stage.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="Depth">Number of blocks.</param>
/// <param name="Window">Effective window side (the resolution when the resolution is not larger than the configured window).</param>
/// <param name="Shift">Cyclic shift of the odd blocks (0 when the window covers the whole grid).</param>
/// <param name="HasMerging">Whether a patch merging follows the stage (stages 0–2).</param>
/// <param name="OutputResolution">Token grid side of the stage output that the decoders see (after merging).</param>
/// <param name="OutputDim">Channels of that output.</param>
public sealed record StageGeometry(int Index, int Resolution, int Dim, int Heads, int Depth, int Window, int Shift,
    bool HasMerging, int OutputResolution, int OutputDim)
{
    /// <summary>Windows per image.</summary>
    public int WindowsPerImage => (Resolution / Window) * (Resolution / Window);
}
