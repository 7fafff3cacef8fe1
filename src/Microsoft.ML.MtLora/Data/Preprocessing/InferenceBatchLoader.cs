using Microsoft.ML.Data;
using Microsoft.ML.MtLora.Data.Pascal;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>One batch of network inputs for inference: the normalised images, and each row's id and original size.</summary>
/// <param name="Images">(B, 3, S, S) float32 on the CPU; the receiver disposes it.</param>
/// <param name="Ids">The row ids, in order.</param>
/// <param name="Sizes">Each image's size before the resize.</param>
internal sealed record InferenceBatch(Tensor Images, DataViewRowId[] Ids, (int Height, int Width)[] Sizes) : IDisposable
{
    public void Dispose() => Images.Dispose();
}

/// <summary>
/// The images of a cursor as batches of network inputs, read ahead by loader workers while the network runs on the current
/// batch (the transformer's batched <c>Transform</c>). The rows are read one at a time in order from the one cursor (its
/// getter decodes the image), and the resize and normalisation (<see cref="SampleTransform.ResizeAndNormalize"/>, managed
/// code) run on the workers, straight into the batch tensor made on the consuming thread. As for
/// <see cref="DenseBatchReader"/>, no worker calls TorchSharp.
/// </summary>
internal sealed class InferenceBatchLoader : OrderedBatchPipeline<InferenceBatchLoader.Worker, InferenceBatch>
{
    private readonly DataViewRowCursor _cursor;
    private readonly ValueGetter<MLImage> _image;
    private readonly ValueGetter<DataViewRowId> _id;
    private readonly string _imageColumnName;
    private readonly bool _ownsImages;
    private readonly SampleTransform _transform;
    private readonly Slot[] _slots;
    private long _nextBatch;

    /// <param name="input">The data the cursor reads (the PASCAL-Context view hands out images the reader owns).</param>
    /// <param name="cursor">The cursor, with the image column active; read from the workers under a lock.</param>
    /// <param name="image">Its image getter.</param>
    /// <param name="id">Its row-id getter.</param>
    /// <param name="imageColumnName">The image column, for error messages.</param>
    /// <param name="transform">The model's pre-processing (size, mean and std).</param>
    /// <param name="batchSize">Rows per batch.</param>
    /// <param name="workers">Worker threads (1 with <paramref name="prefetch"/> = 0: everything on the calling thread).</param>
    /// <param name="prefetch">Batches prepared ahead.</param>
    public InferenceBatchLoader(IDataView input, DataViewRowCursor cursor, ValueGetter<MLImage> image, ValueGetter<DataViewRowId> id,
        string imageColumnName, SampleTransform transform, int batchSize, int workers, int prefetch)
        : base(batchSize, prefetch, workers, dropLast: false)
    {
        _cursor = cursor;
        _image = image;
        _id = id;
        _imageColumnName = imageColumnName;
        _ownsImages = input is PascalContextDataView;
        _transform = transform;
        _slots = Enumerable.Range(0, Depth).Select(_ => new Slot(batchSize)).ToArray();
        Start(0, count: null);
    }

    /// <summary>The next batch, or null after the last row.</summary>
    public InferenceBatch? Next() => Next(_nextBatch++);

    protected override bool Sequential => true;

    protected override Worker NewWorker() => new();

    protected override bool Read(long k, Worker worker)
    {
        if (!_cursor.MoveNext()) return false;
        _id(ref worker.Id);
        MLImage? image = null;
        _image(ref image!);
        if (image is null) throw new InvalidOperationException($"Column '{_imageColumnName}' holds a missing image (null); every row needs an image to predict on.");
        try
        {
            if (image.Width <= 0 || image.Height <= 0)
                throw new InvalidOperationException($"Column '{_imageColumnName}' holds an empty image ({image.Width}x{image.Height}).");
            worker.Bgra = MLImagePixels.IsBgra(image);
            worker.Width = image.Width;
            worker.Height = image.Height;
            MLImagePixels.CopyTo(image, TransformScratch.Grow(ref worker.Pixels, 4 * image.Width * image.Height));
        }
        finally
        {
            if (_ownsImages) image.Dispose();
        }
        return true;
    }

    protected override void Process(long k, Worker worker, int slot, int index)
    {
        var s = _slots[slot];
        int area = _transform.Size * _transform.Size;
        _transform.ResizeAndNormalize(worker.Pixels.AsSpan(0, 4 * worker.Width * worker.Height), worker.Bgra, worker.Width, worker.Height,
            s.Image(index, area), worker.Scratch);
        s.Ids[index] = worker.Id;
        s.Sizes[index] = (worker.Height, worker.Width);
    }

    protected override void Prepare(long batch, int slot, int count) => _slots[slot].Allocate(_transform.Size);

    protected override InferenceBatch Make(long batch, int slot, int count) => _slots[slot].Take(count);

    protected override void Clear(int slot) => _slots[slot].Dispose();

    /// <summary>A worker's row: its id, and its pixels copied out of the image.</summary>
    internal sealed class Worker
    {
        public DataViewRowId Id;
        public byte[] Pixels = [];
        public bool Bgra;
        public int Width, Height;

        public TransformScratch Scratch { get; } = new();
    }

    /// <summary>One batch in the making: its tensor (made on the consuming thread, written by the workers through a pointer).</summary>
    private sealed unsafe class Slot(int batchSize) : IDisposable
    {
        private Tensor? _images;
        private float* _pointer;

        public DataViewRowId[] Ids { get; } = new DataViewRowId[batchSize];

        public (int Height, int Width)[] Sizes { get; } = new (int, int)[batchSize];

        public void Allocate(int size)
        {
            using var scope = NewDisposeScope();
            _images = torch.empty([Ids.Length, 3, size, size], ScalarType.Float32).DetachFromDisposeScope(); // (B, 3, S, S)
            _pointer = HugePages.WritePointer(_images);
        }

        public Span<float> Image(int index, int area) => new(_pointer + (long)index * 3 * area, 3 * area);

        public InferenceBatch Take(int count)
        {
            var images = HugePages.TakeFirst(ref _images, count);                                  // (n, 3, S, S)
            return new InferenceBatch(images, Ids[..count], Sizes[..count]);
        }

        public void Dispose()
        {
            _images?.Dispose();
            _images = null;
        }
    }
}
