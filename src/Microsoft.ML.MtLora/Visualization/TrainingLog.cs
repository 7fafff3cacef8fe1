using System.Globalization;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// Reads and writes <see cref="TrainingCurvePoint"/>s as CSV (the CLI's <c>training_log.csv</c>).
/// </summary>
/// <remarks>
/// Format: a header <c>step,epoch,learning_rate,total_loss,loss_&lt;task&gt;...</c>, then one row per point. Task columns follow
/// <see cref="DenseTasks.All"/> for the reference task names, then any other names in first-seen order. Numbers use the invariant
/// culture and round-trip exactly (<c>R</c> format; <c>NaN</c>, <c>Infinity</c> allowed); a task missing from a point is an empty cell.
/// </remarks>
public static class TrainingLog
{
    private const string TaskPrefix = "loss_";
    private static readonly string[] FixedColumns = ["step", "epoch", "learning_rate", "total_loss"];

    /// <summary>Writes the points to a CSV file (to a temporary name, then moved into place; the folder is created when missing).</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="points">The points, in the order to write them.</param>
    public static void WriteCsv(string path, IEnumerable<TrainingCurvePoint> points)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var writer = new StringWriter(CultureInfo.InvariantCulture);
        Write(writer, points);
        AtomicFile.WriteAllText(path, writer.ToString());
    }

    /// <summary>Writes the points as CSV text.</summary>
    /// <param name="writer">Where to write.</param>
    /// <param name="points">The points.</param>
    public static void Write(TextWriter writer, IEnumerable<TrainingCurvePoint> points)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(points);
        var list = points.ToList();
        var tasks = TaskColumns(list);
        WriteHeader(writer, tasks);
        WriteRows(writer, list, tasks);
    }

    /// <summary>
    /// Writes the header line for the given task columns: with <see cref="WriteRows"/>, a log can be kept open during a run
    /// and grow by one row per step, so that it survives an interruption up to its last complete line.
    /// </summary>
    /// <param name="writer">Where to write.</param>
    /// <param name="taskColumns">The task names, in column order (see <see cref="GetTaskColumns"/>).</param>
    public static void WriteHeader(TextWriter writer, IReadOnlyList<string> taskColumns)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(taskColumns);
        writer.Write(string.Join(',', FixedColumns.Concat(taskColumns.Select(t => TaskPrefix + t))));
        writer.Write('\n');
    }

    /// <summary>Writes one row per point, with the task columns of the header (a task a point lacks is an empty cell).</summary>
    /// <param name="writer">Where to write.</param>
    /// <param name="points">The points.</param>
    /// <param name="taskColumns">The task columns of the header the rows belong to.</param>
    /// <exception cref="ArgumentException">A point has a task loss that has no column.</exception>
    public static void WriteRows(TextWriter writer, IEnumerable<TrainingCurvePoint> points, IReadOnlyList<string> taskColumns)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(taskColumns);
        var tasks = taskColumns;
        var line = new StringBuilder();
        foreach (var p in points)
        {
            ArgumentNullException.ThrowIfNull(p.TaskLosses, nameof(TrainingCurvePoint.TaskLosses));
            if (p.TaskLosses.Keys.FirstOrDefault(t => !tasks.Contains(t)) is { } extra)
                throw new ArgumentException($"The loss of task '{extra}' at step {p.Step} has no column in the log (columns: {string.Join(", ", tasks)}).", nameof(points));
            line.Clear();
            line.Append(p.Step.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(p.Epoch.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(Format(p.LearningRate)).Append(',')
                .Append(Format(p.TotalLoss));
            foreach (var task in tasks)
            {
                line.Append(',');
                if (p.TaskLosses.TryGetValue(task, out var loss)) line.Append(Format(loss));
            }
            writer.Write(line.Append('\n').ToString());
        }
    }

    /// <summary>Reads points from a CSV file written by <see cref="WriteCsv"/>.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The points, in file order.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The header or a cell is malformed; the message names the file, line and column.</exception>
    public static List<TrainingCurvePoint> ReadCsv(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Training log '{path}' does not exist.", path);
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Read(reader, path);
    }

    /// <summary>Reads points from CSV text. A last line without its line break that does not parse (a write cut short by a
    /// killed process) is left out.</summary>
    /// <param name="reader">The text.</param>
    /// <param name="name">A name for error messages (usually the file path).</param>
    /// <returns>The points, in order.</returns>
    /// <exception cref="InvalidDataException">The header or a cell is malformed; the message names the source, line and column.</exception>
    public static List<TrainingCurvePoint> Read(TextReader reader, string name)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var header = reader.ReadLine() ?? throw new InvalidDataException($"Training log '{name}' is empty; expected the header '{string.Join(',', FixedColumns)},loss_<task>...'.");
        var columns = header.Trim().Split(',');
        for (int i = 0; i < FixedColumns.Length; i++)
        {
            if (i >= columns.Length || columns[i] != FixedColumns[i])
                throw new InvalidDataException($"Training log '{name}', line 1: column {i + 1} is '{(i < columns.Length ? columns[i] : "")}'; expected '{FixedColumns[i]}' (header '{string.Join(',', FixedColumns)},loss_<task>...').");
        }
        var tasks = new string[columns.Length - FixedColumns.Length];
        for (int i = 0; i < tasks.Length; i++)
        {
            var column = columns[FixedColumns.Length + i];
            if (!column.StartsWith(TaskPrefix, StringComparison.Ordinal) || column.Length == TaskPrefix.Length)
                throw new InvalidDataException($"Training log '{name}', line 1: column {FixedColumns.Length + i + 1} is '{column}'; expected 'loss_<task>'.");
            tasks[i] = column[TaskPrefix.Length..];
        }

        var points = new List<TrainingCurvePoint>();
        int lineNumber = 1;
        // Rows are read whole; a last line without its line break is a write that was cut short (a killed run whose log
        // grew row by row): it is left out when it does not parse.
        var rest = reader.ReadToEnd();
        var lines = rest.Split('\n');
        bool lastIsPartial = lines[^1].Length > 0;
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            if (lastIsPartial && i == lines.Length - 1)
            {
                try { points.Add(ParseRow(line, columns, tasks, name, lineNumber)); }
                catch (InvalidDataException) { }
                continue;
            }
            points.Add(ParseRow(line, columns, tasks, name, lineNumber));
        }
        return points;
    }

    private static TrainingCurvePoint ParseRow(string line, string[] columns, string[] tasks, string name, int lineNumber)
    {
        var cells = line.Split(',');
        if (cells.Length != columns.Length)
            throw new InvalidDataException($"Training log '{name}', line {lineNumber}: {cells.Length} cells; expected {columns.Length} as in the header.");
        var losses = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int i = 0; i < tasks.Length; i++)
        {
            var cell = cells[FixedColumns.Length + i];
            if (cell.Length > 0) losses[tasks[i]] = ParseDouble(cell, name, lineNumber, columns[FixedColumns.Length + i]);
        }
        return new TrainingCurvePoint(
            ParseLong(cells[0], name, lineNumber, "step"),
            checked((int)ParseLong(cells[1], name, lineNumber, "epoch")),
            losses,
            ParseDouble(cells[3], name, lineNumber, "total_loss"),
            ParseDouble(cells[2], name, lineNumber, "learning_rate"));
    }

    /// <summary>The task columns a log of these points has: reference tasks first in their usual order, then the rest in first-seen order.</summary>
    /// <param name="points">The points.</param>
    /// <returns>The task names, in column order.</returns>
    /// <exception cref="ArgumentException">A task name cannot be a CSV column.</exception>
    public static IReadOnlyList<string> GetTaskColumns(IEnumerable<TrainingCurvePoint> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        return TaskColumns(points);
    }

    /// <summary>The task names of the points, reference tasks first in their usual order, then the rest in first-seen order.</summary>
    internal static List<string> TaskColumns(IEnumerable<TrainingCurvePoint> points)
    {
        var seen = new List<string>();
        foreach (var p in points)
        {
            ArgumentNullException.ThrowIfNull(p.TaskLosses, nameof(TrainingCurvePoint.TaskLosses));
            foreach (var task in p.TaskLosses.Keys)
            {
                if (string.IsNullOrEmpty(task) || task.AsSpan().IndexOfAny(",\"\r\n") >= 0)
                    throw new ArgumentException($"Task name '{task}' at step {p.Step} cannot be a CSV column: it must be non-empty, without commas, quotes or line breaks.");
                if (!seen.Contains(task)) seen.Add(task);
            }
        }
        var known = DenseTasks.All.Select(t => t.ReferenceName()).Where(seen.Contains);
        return known.Concat(seen.Where(t => !DenseTasks.All.Any(d => d.ReferenceName() == t))).ToList();
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static double ParseDouble(string cell, string name, int line, string column) =>
        double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new InvalidDataException($"Training log '{name}', line {line}, column '{column}': '{cell}' is not a number.");

    private static long ParseLong(string cell, string name, int line, string column) =>
        long.TryParse(cell, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new InvalidDataException($"Training log '{name}', line {line}, column '{column}': '{cell}' is not an integer.");
}
