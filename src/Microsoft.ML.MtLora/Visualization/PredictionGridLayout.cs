using SkiaSharp;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>Where <see cref="PredictionGrid"/> puts everything, in pixels of the rendered picture.</summary>
/// <param name="Width">The picture width.</param>
/// <param name="Height">The picture height.</param>
/// <param name="Scale">The magnification of every map.</param>
/// <param name="Panels">The panels drawn, row by row (predictions, then ground truth), left to right.</param>
public sealed record PredictionGridLayout(int Width, int Height, int Scale, IReadOnlyList<PredictionGridPanel> Panels);

/// <summary>One panel of a <see cref="PredictionGrid"/> picture.</summary>
/// <param name="Title">The title drawn above the map.</param>
/// <param name="Task">The task shown, or null for the input image.</param>
/// <param name="IsGroundTruth">Whether the panel shows a label rather than a prediction.</param>
/// <param name="Bounds">The map's rectangle (title and legend excluded).</param>
/// <param name="Legend">The legend entries under the map: the labels present, ascending (255 last, named <c>ignore</c>); empty for other panels.</param>
public sealed record PredictionGridPanel(string Title, DenseTask? Task, bool IsGroundTruth, SKRectI Bounds, IReadOnlyList<LegendEntry> Legend);

/// <summary>One line of a class-map legend.</summary>
/// <param name="Label">The label value.</param>
/// <param name="Name">The class name (<c>ignore</c> for 255, <c>label N</c> outside the task's classes).</param>
/// <param name="Color">The colour of the label in the map.</param>
/// <param name="Swatch">The rectangle filled with <paramref name="Color"/>.</param>
public sealed record LegendEntry(int Label, string Name, SKColor Color, SKRectI Swatch);
