using System.Text;
using Microsoft.ML.MtLora.Visualization;

namespace MtLora.Cli.Commands;

/// <summary>
/// The training log of one <c>train</c> run, <c>training_log.csv</c>, and its curves, <c>training_curves.html</c>: the log
/// grows by one row per step while training, so it survives an interruption; a resumed run continues the earlier log
/// (its rows up to the step the run resumes from), so the log and the curves cover the whole run from its first step.
/// </summary>
/// <remarks>
/// Writing the log never stops training: a failed write is reported once as a warning, and <see cref="Finish"/> (after
/// the model is saved) writes the whole log again and the curves, and says what could not be written.
/// </remarks>
internal sealed class TrainingLogFile : IDisposable
{
    public const string LogFileName = "training_log.csv";
    public const string CurvesFileName = "training_curves.html";

    private readonly TextWriter _stderr;
    private readonly IReadOnlyList<string> _columns;
    private List<TrainingCurvePoint> _earlier;
    private readonly List<TrainingCurvePoint> _points = [];
    private Stream? _append;
    private string? _failure;

    /// <summary>Prepares the log in <paramref name="folder"/>; with <paramref name="continueEarlier"/>, reads the log already there.</summary>
    /// <param name="folder">The log folder (created at the first write).</param>
    /// <param name="tasks">The reference names of the tasks trained.</param>
    /// <param name="continueEarlier">Whether the run resumes an earlier one whose log is to be continued.</param>
    /// <param name="stderr">Where warnings go.</param>
    public TrainingLogFile(string folder, IEnumerable<string> tasks, bool continueEarlier, TextWriter stderr)
    {
        Folder = folder;
        _stderr = stderr;
        _earlier = [];
        if (continueEarlier && File.Exists(LogPath))
        {
            try { _earlier = TrainingLog.ReadCsv(LogPath); }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                Warn($"the earlier training log '{LogPath}' cannot be read ({e.Message.ReplaceLineEndings(" ").Trim()}); this run's log replaces it");
            }
        }
        var all = _earlier.Append(new TrainingCurvePoint(0, 0, tasks.ToDictionary(t => t, _ => 0.0), 0, 0));
        _columns = TrainingLog.GetTaskColumns(all);
    }

    /// <summary>The log folder.</summary>
    public string Folder { get; }

    /// <summary>The CSV file.</summary>
    public string LogPath => Path.Combine(Folder, LogFileName);

    /// <summary>The curves file.</summary>
    public string CurvesPath => Path.Combine(Folder, CurvesFileName);

    /// <summary>Every point of the run: the earlier log's (when continued) and this run's.</summary>
    public IReadOnlyList<TrainingCurvePoint> Points => [.. _earlier, .. _points];

    /// <summary>How many steps this run logged.</summary>
    public int StepsThisRun => _points.Count;

    /// <summary>The last step logged, or null when none.</summary>
    public long? LastStep => _points.Count > 0 ? _points[^1].Step : _earlier.Count > 0 ? _earlier[^1].Step : null;

    /// <summary>Logs one step. The first one rewrites the file (the earlier rows before it, if continued), the others append a row.</summary>
    public void Add(TrainingCurvePoint point)
    {
        if (_points.Count == 0)
        {
            // Rows from the step this run starts at on were logged by the interrupted run after its last checkpoint: they are redone now.
            _earlier = _earlier.Where(p => p.Step < point.Step).ToList();
            _points.Add(point);
            if (_failure is null) Rewrite();
            return;
        }
        _points.Add(point);
        if (_failure is not null || _append is null) return;
        try
        {
            var text = new StringWriter();
            TrainingLog.WriteRows(text, [point], _columns);
            _append.Write(Encoding.UTF8.GetBytes(text.ToString()));
            _append.Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Failed(e);
        }
    }

    /// <summary>
    /// Closes the log, writes it again when a write failed during the run, and writes the curves.
    /// </summary>
    /// <returns>Null when everything was written, else one line saying what could not be written and why.</returns>
    public string? Finish()
    {
        CloseAppend();
        var points = Points;
        if (points.Count == 0) return null;
        var problems = new List<string>();
        if (_failure is not null && WriteAll(points) is { } logCause) problems.Add($"'{LogPath}' ({logCause})");
        if (OutputPaths.TryWrite(CurvesPath, s => s.Write(Encoding.UTF8.GetBytes(TrainingCurves.ToHtml(points)))) is { } curvesCause)
            problems.Add($"'{CurvesPath}' ({curvesCause})");
        return problems.Count == 0 ? null : $"cannot write {string.Join(" and ", problems)}";
    }

    public void Dispose() => CloseAppend();

    private void Rewrite()
    {
        if (WriteAll([.. _earlier, .. _points]) is { } cause)
        {
            _failure = cause;
            Warn($"cannot write the training log '{LogPath}' ({cause}); training goes on, and the log is written again at the end");
            return;
        }
        try { _append = OutputPaths.OpenAppend(LogPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Failed(e); }
    }

    private string? WriteAll(IReadOnlyList<TrainingCurvePoint> points)
    {
        var text = new StringWriter();
        TrainingLog.WriteHeader(text, _columns);
        TrainingLog.WriteRows(text, points, _columns);
        var cause = OutputPaths.TryWrite(LogPath, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
        if (cause is null) _failure = null;
        return cause;
    }

    private void Failed(Exception e)
    {
        _failure = OutputPaths.Cause(e);
        CloseAppend();
        Warn($"cannot write the training log '{LogPath}' ({_failure}); training goes on, and the log is written again at the end");
    }

    private void CloseAppend()
    {
        try { _append?.Dispose(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _failure ??= OutputPaths.Cause(e); }
        _append = null;
    }

    private void Warn(string message) => _stderr.WriteLine($"mtlora train: warning: {message}");
}
