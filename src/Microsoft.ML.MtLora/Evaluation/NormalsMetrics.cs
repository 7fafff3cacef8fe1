namespace Microsoft.ML.MtLora.Evaluation;

/// <summary>Surface-normal metrics: the angular error, in degrees, over the valid pixels of the evaluation set.</summary>
public sealed class NormalsMetrics
{
    internal NormalsMetrics(double mean, double median, double rmse, double within11_25, double within22_5, double within30, long pixelCount)
    {
        Mean = mean;
        Median = median;
        Rmse = rmse;
        Within11_25 = within11_25;
        Within22_5 = within22_5;
        Within30 = within30;
        PixelCount = pixelCount;
    }

    /// <summary>The mean angular error in degrees: the paper's "Normals (rmse)" column and the quantity Δm uses.</summary>
    public double Mean { get; }

    /// <summary>The median angular error in degrees (from a histogram: within 0.0005° of the exact median).</summary>
    public double Median { get; }

    /// <summary>The root mean square of the angular error in degrees (a true RMSE, unlike <see cref="ReferenceRmse"/>).</summary>
    public double Rmse { get; }

    /// <summary>
    /// What the reference reports as "rmse": it accumulates sqrt(x²) = |x| and divides like the mean, so it equals
    /// <see cref="Mean"/>. Kept to compare with the reference's logs.
    /// </summary>
    public double ReferenceRmse => Mean;

    /// <summary>The fraction of valid pixels with an error under 11.25°.</summary>
    public double Within11_25 { get; }

    /// <summary>The fraction of valid pixels with an error under 22.5°.</summary>
    public double Within22_5 { get; }

    /// <summary>The fraction of valid pixels with an error under 30°.</summary>
    public double Within30 { get; }

    /// <summary>The number of valid pixels evaluated.</summary>
    public long PixelCount { get; }
}
