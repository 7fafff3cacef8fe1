namespace Microsoft.ML.MtLora.Data.Synthetic;

/// <summary>Options of <see cref="SyntheticPascal.Generate(string, SyntheticPascalOptions)"/>.</summary>
public sealed class SyntheticPascalOptions
{
    /// <summary>Number of training images (listed in <c>ImageSets/Context/train.txt</c>). Default 20.</summary>
    public int TrainCount { get; set; } = 20;

    /// <summary>Number of validation images (listed in <c>ImageSets/Context/val.txt</c>). Default 10.</summary>
    public int ValCount { get; set; } = 10;

    /// <summary>Image width in pixels, 32 to 4096. Default 160 (not square, like PASCAL images, so resizing is exercised).</summary>
    public int Width { get; set; } = 160;

    /// <summary>Image height in pixels, 32 to 4096. Default 120.</summary>
    public int Height { get; set; } = 120;

    /// <summary>
    /// Give every image a size like the PASCAL VOC photos instead of <see cref="Width"/> × <see cref="Height"/>: the longer side
    /// 500 pixels, the shorter one 281 to 400 (500×375 most often), landscape in about 3 images of 4 and portrait otherwise;
    /// and write about 1 image in 20 as a grayscale JPEG, as the real set has some. The labels follow each image's size. For
    /// measuring the data loader on files that look like the real ones (eng/benchmarks, <c>--mode data</c>). Default false.
    /// </summary>
    public bool RealisticSizes { get; set; }

    /// <summary>Seed of the scene generator: the same seed and options give the same files, byte for byte. Default 0.</summary>
    public int Seed { get; set; }

    /// <summary>JPEG quality of <c>JPEGImages/*.jpg</c>, 1 to 100. Default 92.</summary>
    public int JpegQuality { get; set; } = 92;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (TrainCount < 0) throw new ArgumentException($"TrainCount is {TrainCount}; expected 0 or more.", nameof(TrainCount));
        if (ValCount < 0) throw new ArgumentException($"ValCount is {ValCount}; expected 0 or more.", nameof(ValCount));
        if ((long)TrainCount + ValCount is 0 or > SyntheticPascal.MaxImages)
            throw new ArgumentException($"TrainCount + ValCount is {(long)TrainCount + ValCount}; expected 1 to {SyntheticPascal.MaxImages}.", nameof(TrainCount));
        if (Width is < 32 or > 4096) throw new ArgumentException($"Width is {Width}; expected 32 to 4096.", nameof(Width));
        if (Height is < 32 or > 4096) throw new ArgumentException($"Height is {Height}; expected 32 to 4096.", nameof(Height));
        if (JpegQuality is < 1 or > 100) throw new ArgumentException($"JpegQuality is {JpegQuality}; expected 1 to 100.", nameof(JpegQuality));
    }
}

/// <summary>What <see cref="SyntheticPascal.Generate(string, SyntheticPascalOptions)"/> wrote.</summary>
public sealed class SyntheticPascalSummary
{
    internal SyntheticPascalSummary(string root, IReadOnlyList<string> trainIds, IReadOnlyList<string> valIds,
        int trainWithHumanParts, int valWithHumanParts, SyntheticPascalOptions options)
    {
        Root = root;
        TrainIds = trainIds;
        ValIds = valIds;
        TrainWithHumanParts = trainWithHumanParts;
        ValWithHumanParts = valWithHumanParts;
        Width = options.Width;
        Height = options.Height;
        RealisticSizes = options.RealisticSizes;
        Seed = options.Seed;
    }

    /// <summary>The dataset root (the folder passed as the reference's <c>--pascal</c>), as a full path.</summary>
    public string Root { get; }

    /// <summary>The training image ids, in <c>ImageSets/Context/train.txt</c> order.</summary>
    public IReadOnlyList<string> TrainIds { get; }

    /// <summary>The validation image ids, in <c>ImageSets/Context/val.txt</c> order.</summary>
    public IReadOnlyList<string> ValIds { get; }

    /// <summary>Training images with at least one person whose parts are annotated (the reference's human-parts count).</summary>
    public int TrainWithHumanParts { get; }

    /// <summary>Validation images with at least one person whose parts are annotated.</summary>
    public int ValWithHumanParts { get; }

    /// <summary>Image width in pixels (the option's; each image has its own size with <see cref="RealisticSizes"/>).</summary>
    public int Width { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Whether the images have PASCAL-like sizes (<see cref="SyntheticPascalOptions.RealisticSizes"/>).</summary>
    public bool RealisticSizes { get; }

    /// <summary>The seed used.</summary>
    public int Seed { get; }
}
