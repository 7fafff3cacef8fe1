using System.Globalization;
using System.Text;

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
        writer.Write(string.Join(',', FixedColumns.Concat(tasks.Select(t => TaskPrefix + t))));
        writer.Write('\n');
        var line = new StringBuilder();
        foreach (var p in list)
        {
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

    /// <summary>Reads points from CSV text.</summary>
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
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Trim().Length == 0) continue;
            var cells = line.Split(',');
            if (cells.Length != columns.Length)
                throw new InvalidDataException($"Training log '{name}', line {lineNumber}: {cells.Length} cells; expected {columns.Length} as in the header.");
            var losses = new Dictionary<string, double>(StringComparer.Ordinal);
            for (int i = 0; i < tasks.Length; i++)
            {
                var cell = cells[FixedColumns.Length + i];
                if (cell.Length > 0) losses[tasks[i]] = ParseDouble(cell, name, lineNumber, columns[FixedColumns.Length + i]);
            }
            points.Add(new TrainingCurvePoint(
                ParseLong(cells[0], name, lineNumber, "step"),
                checked((int)ParseLong(cells[1], name, lineNumber, "epoch")),
                losses,
                ParseDouble(cells[3], name, lineNumber, "total_loss"),
                ParseDouble(cells[2], name, lineNumber, "learning_rate")));
        }
        return points;
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
