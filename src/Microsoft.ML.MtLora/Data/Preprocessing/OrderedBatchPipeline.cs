using System.Runtime.ExceptionServices;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// Loader worker threads that fill batches in order: samples k = 0, 1, 2, … are claimed in turn, read and processed into
/// their batch's slot by whichever worker is free, and the batches are handed to the consuming thread in order, at most
/// <c>prefetch</c> (at least 1) batches ahead of the one it waits for. Used by <see cref="DenseBatchReader"/> (training and
/// evaluation batches) and by the transformer's batched <c>Transform</c> (<see cref="InferenceBatchLoader"/>).
/// </summary>
/// <remarks>
/// <para>Sample k goes to index k mod B of batch k / B, whose buffers sit in window slot (k / B) mod depth. The consumer
/// prepares a slot's buffers (e.g. makes its tensors) before the workers may claim samples of that batch, and takes the
/// batch out of the slot with <see cref="Make"/>; the workers only write into the slices of their own samples. With one
/// worker and no prefetch (<c>inline</c>) the consuming thread does the work itself and no thread is started.</para>
/// <para>A sequential source (one cursor) is read under the lock, so its rows come in order; otherwise <see cref="Read"/>
/// runs on the workers in parallel.</para>
/// <para>Errors: the first failing sample in order is reported, on the consuming thread, as the exception it threw. Claims
/// are in order, so when sample k fails every sample before it has been claimed and is finished by its worker: the batches
/// before the failing one are complete and are still handed out. Then the workers are stopped (each finishes its current
/// sample) and joined before the exception leaves <see cref="Next"/>; disposing stops and joins them too.</para>
/// </remarks>
/// <typeparam name="TWorker">What one worker owns (its buffers), made once per worker thread.</typeparam>
/// <typeparam name="TBatch">The batch handed to the consumer.</typeparam>
internal abstract class OrderedBatchPipeline<TWorker, TBatch> : IDisposable where TWorker : class where TBatch : class
{

    private readonly int _workerCount;
    private readonly bool _dropLast;
    private readonly int[] _done;
    private readonly object _gate = new();
    private Thread[] _workers = [];
    private TWorker? _inline;
    private long _next;                       // next sample to claim
    private long _end = long.MaxValue;        // samples to read (known up front, or found when the source ends)
    private long _released;                   // first batch not yet handed out
    private bool _stopping, _started;
    private long _failedAt = long.MaxValue;
    private ExceptionDispatchInfo? _failure;

    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="prefetch">Batches filled ahead of the one the consumer waits for (0 acts as 1, with the consumer waiting).</param>
    /// <param name="workers">Worker threads; 1 with <paramref name="prefetch"/> = 0 runs inline on the consuming thread.</param>
    /// <param name="dropLast">Leave out a last, incomplete batch (its samples are not even read when the count is known).</param>
    protected OrderedBatchPipeline(int batchSize, int prefetch, int workers, bool dropLast)
    {
        BatchSize = batchSize;
        Depth = Math.Max(1, prefetch);
        _workerCount = workers == 1 && prefetch == 0 ? 0 : workers;
        _dropLast = dropLast;
        _done = new int[Depth];
    }

    protected int BatchSize { get; }

    /// <summary>Window slots (batches in the making at once).</summary>
    protected int Depth { get; }

    /// <summary>Whether <see cref="Read"/> must be called in order under the lock (one cursor).</summary>
    protected abstract bool Sequential { get; }

    protected abstract TWorker NewWorker();

    /// <summary>Reads sample <paramref name="k"/> into the worker's buffers; false at the end of the data.</summary>
    protected abstract bool Read(long k, TWorker worker);

    /// <summary>Processes the worker's sample <paramref name="k"/> into index <paramref name="index"/> of the batch in <paramref name="slot"/>. No TorchSharp.</summary>
    protected abstract void Process(long k, TWorker worker, int slot, int index);

    /// <summary>Makes the buffers of a batch of <paramref name="count"/> samples in <paramref name="slot"/> (consuming thread).</summary>
    protected abstract void Prepare(long batch, int slot, int count);

    /// <summary>Hands out the complete batch in <paramref name="slot"/> (consuming thread).</summary>
    protected abstract TBatch Make(long batch, int slot, int count);

    /// <summary>Frees what <paramref name="slot"/> still holds (consuming thread).</summary>
    protected abstract void Clear(int slot);

    /// <summary>Positions the pipeline and starts the workers; the derived constructor calls it last.</summary>
    /// <param name="firstBatch">The first batch to hand out (earlier ones are skipped, their samples never claimed).</param>
    /// <param name="count">The number of samples from sample 0, or null when the end is found by reading.</param>
    protected void Start(long firstBatch, long? count)
    {
        if (count is long c) _end = _dropLast ? c / BatchSize * BatchSize : c;
        _next = firstBatch * BatchSize;
        _released = firstBatch;
        for (int i = 0; i < Depth; i++) PrepareIfExists(firstBatch + i);
        _started = true;
        if (_workerCount == 0)
        {
            _inline = NewWorker();
            return;
        }
        _workers = new Thread[_workerCount];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"MtLora data loader {i + 1}" };
            _workers[i].Start();
        }
    }

    private long BatchOf(long k) => k / BatchSize;

    private int SlotOf(long batch) => (int)(batch % Depth);

    private void PrepareIfExists(long b)
    {
        int count;
        lock (_gate) count = ExpectedLocked(b);
        if (count > 0) Prepare(b, SlotOf(b), count);
    }

    private void Work()
    {
        Interlocked.Increment(ref LoaderWorkers.Live);
        try
        {
            var worker = NewWorker();
            while (TryClaim(worker, onlyBatch: null, out long k, out bool read)) Run(worker, k, read);
        }
        finally
        {
            Interlocked.Decrement(ref LoaderWorkers.Live);
        }
    }

    /// <summary>Claims the next sample under the lock, waiting while it is beyond the window. False when there is nothing more to do.</summary>
    private bool TryClaim(TWorker worker, long? onlyBatch, out long k, out bool read)
    {
        k = -1;
        read = false;
        lock (_gate)
        {
            while (true)
            {
                if (_stopping || _failure is not null || _next >= _end) return false;
                if (onlyBatch is long only && BatchOf(_next) != only) return false;
                if (BatchOf(_next) < _released + Depth) break;
                Monitor.Wait(_gate);
            }
            k = _next++;
            if (!Sequential) return true;
            try
            {
                if (!Read(k, worker))
                {
                    _end = k;
                    Monitor.PulseAll(_gate);
                    return false;
                }
                read = true;
                return true;
            }
            catch (Exception e)
            {
                FailLocked(k, e);
                return false;
            }
        }
    }

    private void Run(TWorker worker, long k, bool read)
    {
        int slot = SlotOf(BatchOf(k));
        try
        {
            if (!read && !Read(k, worker))
                throw new InvalidOperationException($"Sample {k} could not be read although the data holds {_end} samples.");
            Process(k, worker, slot, (int)(k % BatchSize));
            lock (_gate)
            {
                _done[slot]++;
                Monitor.PulseAll(_gate);
            }
        }
        catch (Exception e)
        {
            lock (_gate) FailLocked(k, e);
        }
    }

    private void FailLocked(long k, Exception e)
    {
        if (k < _failedAt)
        {
            _failedAt = k;
            _failure = ExceptionDispatchInfo.Capture(e);
        }
        Monitor.PulseAll(_gate);
    }

    /// <summary>The samples batch <paramref name="b"/> holds when complete (by what is known of the end so far).</summary>
    private int ExpectedLocked(long b) => (int)Math.Clamp(_end - b * BatchSize, 0, BatchSize);

    private bool IsCompleteLocked(long b)
    {
        int expected = ExpectedLocked(b);
        return expected > 0 && _done[SlotOf(b)] == expected && (expected == BatchSize || _end != long.MaxValue);
    }

    /// <summary>Batch <paramref name="b"/> (the batches are asked for in order), made on the calling thread; null after the last.</summary>
    public TBatch? Next(long b)
    {
        if (!_started) throw new InvalidOperationException("The pipeline was not started.");
        if (_inline is not null)
            while (TryClaim(_inline, b, out long k, out bool read)) Run(_inline, k, read);
        bool failed;
        lock (_gate)
        {
            while (true)
            {
                failed = _failure is not null;
                if (failed || IsCompleteLocked(b)) break;
                if (ExpectedLocked(b) == 0) return null;
                Monitor.Wait(_gate);
            }
        }
        if (failed)
        {
            StopWorkers();
            lock (_gate)
                if (!IsCompleteLocked(b)) _failure!.Throw();
        }
        int count;
        lock (_gate) count = ExpectedLocked(b);
        if (count < BatchSize && _dropLast) return null;
        int slot = SlotOf(b);
        try
        {
            return Make(b, slot, count);
        }
        finally
        {
            // The slot now serves batch b + depth: its buffers are made before the workers may claim into it.
            Clear(slot);
            lock (_gate) _done[slot] = 0;
            PrepareIfExists(b + Depth);
            lock (_gate)
            {
                _released = b + 1;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void StopWorkers()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        foreach (var w in _workers) w.Join();
    }

    /// <summary>Stops and joins the workers, then frees every slot.</summary>
    public virtual void Dispose()
    {
        StopWorkers();
        for (int i = 0; i < Depth; i++) Clear(i);
    }
}

/// <summary>Loader worker threads running now in the whole process (diagnostics: the tests check that none outlives its pipeline).</summary>
internal static class LoaderWorkers
{
    internal static int Live;

    public static int Count => Volatile.Read(ref Live);
}
