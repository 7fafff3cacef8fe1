using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Data.Pascal;
using Microsoft.ML.MtLora.Evaluation;
using Spectre.Console;

namespace MtLora.Cli.Commands;

/// <summary>What the train, evaluate and predict verbs share: user errors, progress bars on stderr, JSON output, model loading.</summary>
internal static class CliCommon
{
    /// <summary>A mistake in the command line or its files; reported as one line on stderr with exit code 2.</summary>
    internal sealed class UsageException(string message) : Exception(message);

    /// <summary>
    /// Runs a verb's body: user errors (bad options, missing or damaged files) become one line on <paramref name="stderr"/>
    /// and exit code 2; bugs keep their stack trace.
    /// </summary>
    public static int Guard(string verb, TextWriter stderr, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (UserError(e) is { } user)
        {
            stderr.WriteLine($"mtlora {verb}: error: {OneLine(user.Message)}");
            return 2;
        }
    }

    /// <summary>
    /// The user error that <paramref name="e"/> reports: <paramref name="e"/> itself, or the first user error inside the
    /// wrappers that only carry another exception (reflection, tasks, type initialisers), so the line names the file at
    /// fault; <see langword="null"/> for a bug, which keeps its stack trace.
    /// </summary>
    internal static Exception? UserError(Exception e)
    {
        for (Exception? x = e; x is not null; x = x is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : x.InnerException)
        {
            if (x is UsageException || Program.IsUserError(x)) return x;
            if (x is not (TargetInvocationException or AggregateException or TypeInitializationException)) return null;
        }
        return null;
    }

    internal static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();

    /// <summary>
    /// Progress bars go to the real stderr of a terminal only: not when stderr is redirected, when <c>CI</c> is set
    /// (logs would fill with redraws), or when the verb writes to another writer (tests).
    /// </summary>
    public static bool ProgressBarsEnabled(TextWriter stderr) =>
        ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected
        && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>A Spectre console writing to stderr (stdout stays for the results).</summary>
    public static IAnsiConsole StderrConsole() => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>
    /// Runs <paramref name="work"/> with a progress bar of <paramref name="total"/> units on stderr, or with plain
    /// progress lines (at most one every few seconds) when bars are disabled. The callback takes the units done and a
    /// short status text.
    /// </summary>
    public static T WithProgress<T>(TextWriter stderr, string description, double total, Func<Action<double, string>, T> work)
    {
        if (ProgressBarsEnabled(stderr))
        {
            T result = default!;
            StderrConsole().Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(description), maxValue: Math.Max(total, 1));
                    result = work((done, status) =>
                    {
                        task.Value = Math.Min(done, task.MaxValue);
                        task.Description = Markup.Escape(string.IsNullOrEmpty(status) ? description : $"{description} {status}");
                    });
                    task.Value = task.MaxValue;
                });
            return result;
        }
        var last = DateTime.MinValue;
        return work((done, status) =>
        {
            var now = DateTime.UtcNow;
            if (now - last < TimeSpan.FromSeconds(5) && done < total) return;
            last = now;
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{description} {done:0}/{total:0} {status}"));
        });
    }

    /// <summary>Runs <paramref name="work"/> with a spinner on stderr (work of unknown length), or a line before it.</summary>
    public static T WithStatus<T>(TextWriter stderr, string description, Func<T> work)
    {
        if (ProgressBarsEnabled(stderr))
            return StderrConsole().Status().Start(Markup.Escape(description), _ => work());
        stderr.WriteLine(description);
        return work();
    }

    /// <summary>Scores <paramref name="data"/> with <paramref name="model"/> and evaluates it, with a progress bar over its rows.</summary>
    public static MultiTaskMetrics EvaluateWithProgress(MLContext ml, ITransformer model, IDataView data, SingleTaskBaselines baselines,
        TextWriter stderr, string description, EvaluationProtocol protocol = EvaluationProtocol.Reference)
    {
        long rows = data.GetRowCount() ?? 0;
        return WithProgress(stderr, description, rows, report =>
            MultiTaskCatalog.EvaluateModel(model, data, new MultiTaskEvaluatorOptions { Baselines = baselines, Protocol = protocol }, n => report(n, "")));
    }

    /// <summary>Parses <c>--protocol</c>: <c>reference</c> or <c>native</c>; anything else is a usage error naming the option.</summary>
    public static EvaluationProtocol ParseProtocol(string? text) =>
        EvaluationProtocols.TryParse(text ?? "reference", out var protocol)
            ? protocol
            : throw new UsageException($"--protocol: unknown protocol '{text}'; expected reference (the paper's: labels resized to the network's input size) or native (each image at its own size).");

    /// <summary>
    /// Says once per split how many label files were resized because their size differed from their image's (the loader
    /// does what the reference does, silently per file), so a broken download is noticed.
    /// </summary>
    public static void WriteLabelNotes(PascalContextDataView view, TextWriter stderr)
    {
        var resized = view.ResizedLabelFiles;
        if (resized.Count == 0) return;
        stderr.WriteLine($"mtlora: note: split '{view.Split}' of '{view.Root}': {resized.Count} label file(s) differ in size from their image " +
            $"and were resized to it, as the reference does (first: '{resized[0]}'); many usually mean a damaged or mixed-up download.");
    }

    /// <summary>Writes one indented JSON object and a newline.</summary>
    public static void WriteJson(JsonNode node, TextWriter stdout) =>
        stdout.WriteLine(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>
    /// Loads a model.zip written by <c>mtlora train</c> (or <c>mlContext.Model.Save</c>), with clear errors for a
    /// missing or damaged file.
    /// </summary>
    /// <param name="ml">The context.</param>
    /// <param name="path">The model.zip.</param>
    /// <param name="inputSchema">The input schema the model was saved with.</param>
    /// <param name="stderr">Where the loader's warnings go as notes (e.g. a model saved without the SHA-256 of its
    /// weights, before layout 0x00010002); null to drop them.</param>
    public static ITransformer LoadModel(MLContext ml, string? path, out DataViewSchema inputSchema, TextWriter? stderr = null)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new UsageException("give --model <model.zip>.");
        if (!File.Exists(path)) throw new UsageException($"--model: file '{path}' does not exist (expected a model.zip written by 'mtlora train').");
        try
        {
            // ML.NET does not check the CRC-32 of the members it reads: a flipped bit in a deflated member would load.
            ZipIntegrity.Verify(path);
            var warnings = new List<string>();
            void OnLog(object? sender, LoggingEventArgs e)
            {
                if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Add(e.RawMessage);
            }
            ml.Log += OnLog;
            try { return ml.Model.Load(path, out inputSchema); }
            finally
            {
                ml.Log -= OnLog;
                foreach (var w in warnings) stderr?.WriteLine($"mtlora: note: '{path}': {OneLine(w)}");
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or InvalidOperationException
            or ArgumentException or EndOfStreamException or System.Reflection.TargetInvocationException)
        {
            var inner = e is System.Reflection.TargetInvocationException { InnerException: { } i } ? i : e;
            throw new UsageException($"--model: '{path}' is not a readable ML.NET model.zip ({OneLine(inner.Message)}).");
        }
    }

    /// <summary>The MTLoRA transformer inside a loaded model (alone or last in a chain).</summary>
    public static MtLoraTransformer? FindMtLora(ITransformer model) => model switch
    {
        MtLoraTransformer t => t,
        TransformerChain<ITransformer> chain => chain.OfType<MtLoraTransformer>().LastOrDefault(),
        _ => null,
    };

    /// <summary>Parses <c>semseg,human_parts,sal,normals</c> (any subset, any order; each task once).</summary>
    public static IReadOnlyList<DenseTask> ParseTasks(string text, string option)
    {
        var tasks = new List<DenseTask>();
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!DenseTasks.TryParse(name, out var task))
                throw new UsageException($"{option}: unknown task '{name}'; expected a comma-separated list of semseg, human_parts, sal, normals.");
            if (tasks.Contains(task))
                throw new UsageException($"{option}: '{name}' is listed more than once; list each task once.");
            tasks.Add(task);
        }
        if (tasks.Count == 0) throw new UsageException($"{option}: no task given; expected e.g. semseg,human_parts,sal,normals.");
        return tasks;
    }

    /// <summary>Formats a duration as m:ss or h:mm:ss.</summary>
    public static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : $"{(int)t.TotalMinutes}:{t:ss}";
}

/// <summary>
/// Passes a data view through unchanged and reports how many rows its cursors have read, so work that streams over a
/// view with no progress hook of its own (the evaluator) can drive a progress bar.
/// </summary>
internal sealed class RowCountingDataView(IDataView inner, Action<long> rowsRead) : IDataView
{
    private long _rows;

    public bool CanShuffle => inner.CanShuffle;

    public DataViewSchema Schema => inner.Schema;

    public long? GetRowCount() => inner.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, inner.GetRowCursor(columnsNeeded, rand));

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        inner.GetRowCursorSet(columnsNeeded, n, rand).Select(c => (DataViewRowCursor)new Cursor(this, c)).ToArray();

    private void OnRow() => rowsRead(Interlocked.Increment(ref _rows));

    private sealed class Cursor(RowCountingDataView owner, DataViewRowCursor inner) : DataViewRowCursor
    {
        public override DataViewSchema Schema => inner.Schema;

        public override long Position => inner.Position;

        public override long Batch => inner.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => inner.GetGetter<TValue>(column);

        public override bool MoveNext()
        {
            if (!inner.MoveNext()) return false;
            owner.OnRow();
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
