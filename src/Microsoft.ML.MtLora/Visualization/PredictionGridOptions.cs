namespace Microsoft.ML.MtLora.Visualization;

/// <summary>How <see cref="PredictionGrid"/> lays out its panels.</summary>
public sealed class PredictionGridOptions
{
    /// <summary>
    /// The integer magnification of every map (nearest neighbour, so each map pixel becomes a block of exactly its colour).
    /// 0 (default) picks the smallest factor that makes a panel at least <see cref="MinimumPanelWidth"/> pixels wide.
    /// </summary>
    public int Scale { get; set; }

    /// <summary>The narrowest panel the automatic <see cref="Scale"/> allows, in pixels (default 160, room for titles and legends).</summary>
    public int MinimumPanelWidth { get; set; } = 160;

    /// <summary>Whether to draw legends under the class maps (classes present) and saliency (colour bar). Default true.</summary>
    public bool ShowLegends { get; set; } = true;

    internal void Validate()
    {
        if (Scale < 0 || Scale > 64) throw new ArgumentOutOfRangeException(nameof(Scale), Scale, "PredictionGridOptions.Scale must be 0 (automatic) or 1..64.");
        if (MinimumPanelWidth < 1 || MinimumPanelWidth > 4096)
            throw new ArgumentOutOfRangeException(nameof(MinimumPanelWidth), MinimumPanelWidth, "PredictionGridOptions.MinimumPanelWidth must be in 1..4096.");
    }
}
