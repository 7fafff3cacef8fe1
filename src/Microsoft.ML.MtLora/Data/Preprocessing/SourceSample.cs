namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// One decoded sample as the transforms read it, at the image's resolution W×H; the buffers belong to one loader worker
/// and are reused from sample to sample (so they may be longer than needed).
/// </summary>
internal sealed class SourceSample
{
    /// <summary>The sample id (for error messages and <see cref="DenseBatch.Ids"/>).</summary>
    public string Id { get; set; } = "";

    public int Width { get; set; }

    public int Height { get; set; }

    /// <summary>4·W·H bytes: R, G, B, A (or B, G, R, A when <see cref="Bgra"/>).</summary>
    public byte[] Pixels = [];

    /// <summary>Whether <see cref="Pixels"/> is in B, G, R, A order (an ML.NET image).</summary>
    public bool Bgra { get; set; }

    /// <summary>W·H class ids per class-map task (semseg, human parts, saliency), 255 = ignore; null when the task is not read.</summary>
    public byte[]?[] ClassMaps { get; } = new byte[]?[3];

    /// <summary>Human parts: the image has no annotated person, so the whole map is ignored (the reference's all-zero map).</summary>
    public bool NoHumanParts { get; set; }

    /// <summary>4·W·H floats (x, y, z, 0); the zero vector marks a pixel without a valid normal (the reference's pre-AddIgnoreRegions form); see <see cref="HasNormals"/>.</summary>
    public float[] Normals = [];

    /// <summary>Reusable buffers of the worker that owns this sample (decoding scratch, a resize, the normals' validity mask).</summary>
    public byte[] Scratch = [], ResizeBuffer = [], ValidBuffer = [];

    /// <summary>Reusable class-map buffers per slot, for sources that copy the maps (cursor columns, the label cache).</summary>
    public byte[][] MapBuffers { get; } = [[], [], []];

    /// <summary>Reusable float buffer (normals read from a column).</summary>
    public float[] FloatBuffer = [];

    /// <summary>
    /// W·H labels per task outside the PASCAL layouts, by the reader's extra slot (<see cref="DenseBatchReader"/>'s label
    /// layout): class ids or 0/1 for segmentation and binary-map tasks; reused from sample to sample.
    /// </summary>
    public byte[][] ExtraMaps = [];

    /// <summary>W·H depth values per depth task, by the reader's depth slot (the task's ignore value marks an invalid pixel).</summary>
    public float[][] DepthMaps = [];

    /// <summary>Whether <see cref="Normals"/> holds this sample's normals.</summary>
    public bool HasNormals { get; set; }

    /// <summary>The slot of a class-map task in <see cref="ClassMaps"/> (semseg 0, human parts 1, saliency 2).</summary>
    public static int Slot(DenseTask task) => task switch
    {
        DenseTask.SemanticSegmentation => 0,
        DenseTask.HumanParts => 1,
        DenseTask.Saliency => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "Not a class-map task."),
    };

    /// <summary>Clears the per-sample state (the buffers are kept).</summary>
    public void Reset()
    {
        Id = "";
        Width = Height = 0;
        Bgra = false;
        Array.Clear(ClassMaps);
        NoHumanParts = false;
        HasNormals = false;
    }
}

/// <summary>Where one sample's pre-processed tensors go: slices of a batch's buffers, in the reference's layouts.</summary>
internal readonly ref struct SampleTargets
{
    /// <summary>(3, S, S) normalised image.</summary>
    public Span<float> Image { get; init; }

    /// <summary>(S, S) class ids per class-map task slot (see <see cref="SourceSample.Slot"/>); empty when the task is not produced.</summary>
    public Span<byte> Semseg { get; init; }

    public Span<byte> HumanParts { get; init; }

    public Span<byte> Saliency { get; init; }

    /// <summary>(3, S, S) unit normals, 255 in all channels = ignore; empty when not produced.</summary>
    public Span<float> Normals { get; init; }

    public Span<byte> ClassMap(int slot) => slot switch { 0 => Semseg, 1 => HumanParts, _ => Saliency };
}

/// <summary>Growable scratch buffers of one loader worker (so the steady state allocates nothing per sample here).</summary>
internal sealed class TransformScratch
{
    private float[] _a = [], _b = [], _c = [];
    private byte[] _m = [], _n = [], _maps = [];

    public Span<float> A(int n) => Grow(ref _a, n);

    public Span<float> B(int n) => Grow(ref _b, n);

    public Span<float> C(int n) => Grow(ref _c, n);

    public Span<byte> M(int n) => Grow(ref _m, n);

    public Span<byte> N(int n) => Grow(ref _n, n);

    /// <summary>Per output pixel, a source index (the single-pass class maps); at least <paramref name="n"/> entries.</summary>
    public int[] Indices(int n)
    {
        Grow(ref _indices, n);
        return _indices;
    }

    private int[] _indices = [];

    /// <summary>The class maps of one sample before they become float32: 3 planes of <paramref name="area"/> bytes.</summary>
    public Span<byte> Maps(int area) => Grow(ref _maps, 3 * area);

    internal static Span<T> Grow<T>(ref T[] array, int n)
    {
        if (array.Length < n) array = new T[n];
        return array.AsSpan(0, n);
    }
}
