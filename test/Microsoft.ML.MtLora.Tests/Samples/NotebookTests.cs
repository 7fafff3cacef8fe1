using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;
using Microsoft.Data.Analysis;
using SkiaSharp;

namespace Microsoft.ML.MtLora.Tests.Samples;

/// <summary>
/// Runs the quickstart notebook's C# cells in order with Roslyn scripting, as the .NET Interactive kernel would (that
/// kernel is not available here): <c>#i</c> package sources are dropped, <c>#r "nuget: ..."</c> become references to the
/// assemblies this test process already loaded, and <c>display</c>/<c>HTML</c> record what would be shown.
/// </summary>
[Collection(SerialCollection.Name)]
public partial class NotebookTests
{
    private static string NotebookPath =>
        Path.Combine(RepoRoot(), "src", "Samples", "notebooks", "mtlora-quickstart.ipynb");

    [Fact]
    public void NotebookIsAPolyglotCSharpNotebook()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(NotebookPath));
        var root = doc.RootElement;
        Assert.Equal(4, root.GetProperty("nbformat").GetInt32());
        var kernel = root.GetProperty("metadata").GetProperty("kernelspec");
        Assert.Equal(".net-csharp", kernel.GetProperty("name").GetString());
        Assert.Equal("C#", kernel.GetProperty("language").GetString());
        Assert.Equal("polyglot-notebook", root.GetProperty("metadata").GetProperty("language_info").GetProperty("name").GetString());

        var cells = root.GetProperty("cells").EnumerateArray().ToList();
        Assert.Equal("markdown", cells[0].GetProperty("cell_type").GetString());
        var first = CodeCells().First();
        Assert.Contains("#i \"nuget: ", first);
        Assert.Contains("#r \"nuget: Microsoft.ML.MtLora, 0.1.0\"", first);
        Assert.Contains("#r \"nuget: libtorch-cpu-linux-x64, 2.10.0\"", first);
        // Every code cell is explained by the markdown cell before it.
        for (int i = 1; i < cells.Count; i++)
            if (cells[i].GetProperty("cell_type").GetString() == "code")
                Assert.Equal("markdown", cells[i - 1].GetProperty("cell_type").GetString());
    }

    [Fact]
    public async Task NotebookCellsRunInOrder()
    {
        var globals = new NotebookGlobals();
        var options = ScriptOptions.Default
            .WithLanguageVersion(LanguageVersion.Latest)
            .WithImports("System", "System.Collections.Generic", "System.Linq", "System.Text", "System.Threading.Tasks"); // the kernel's default usings
        ScriptState<object>? state = null;
        var cells = CodeCells();
        try
        {
            for (int i = 0; i < cells.Count; i++)
            {
                var (code, references) = MapMagics(cells[i], i);
                options = options.AddReferences(references);
                try
                {
                    state = state is null
                        ? await CSharpScript.RunAsync(code, options, globals, typeof(NotebookGlobals))
                        : await state.ContinueWithAsync(code, options);
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException($"Notebook code cell {i} failed: {e.Message}\n--- cell ---\n{cells[i]}", e);
                }
            }
        }
        finally
        {
            // The notebook deletes its temporary folder in its last cell; clean up here when a cell before it failed.
            if (state?.GetVariable("root")?.Value is string root && Directory.Exists(root))
                Directory.Delete(root, recursive: true);
        }

        var frames = globals.Displayed.OfType<DataFrame>().ToList();
        Assert.Equal(2, frames.Count);
        Assert.Equal(4, frames[0].Rows.Count); // the metrics: one row per task
        Assert.Contains("Gain", frames[0].Columns.Select(c => c.Name));
        Assert.Equal(4, frames[1].Rows.Count); // the modes
        Assert.Equal(["MTLoRA", "MTLoRA+", "Decoders only", "Full fine-tuning"], frames[1].Columns["Mode"].Cast<string>());
        var trainable = frames[1].Columns["Trainable parameters"].Cast<long>().ToArray();
        Assert.True(trainable[2] < trainable[0] && trainable[0] < trainable[3], $"trainable parameters {string.Join(", ", trainable)}");
        Assert.Contains(globals.Displayed.OfType<string>(), s => s.StartsWith("Δm = ", StringComparison.Ordinal));

        var fragments = globals.Displayed.OfType<HtmlFragment>().ToList();
        var plot = Assert.Single(fragments, f => f.Html.Contains("plotly", StringComparison.OrdinalIgnoreCase));
        foreach (var mode in new[] { "MTLoRA", "MTLoRA+", "Decoders only", "Full fine-tuning" }) Assert.Contains(mode, plot.Html);
        var pictures = fragments.Where(f => f != plot).ToList();
        Assert.Equal(2, pictures.Count);
        foreach (var picture in pictures)
        {
            var base64 = PngSource().Match(picture.Html);
            Assert.True(base64.Success, picture.Html[..Math.Min(200, picture.Html.Length)]);
            using var png = SKBitmap.Decode(Convert.FromBase64String(base64.Groups[1].Value));
            Assert.NotNull(png);
            Assert.True(png.Width > 96 * 5);
        }
    }

    /// <summary>The source of each code cell, in order.</summary>
    private static List<string> CodeCells()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(NotebookPath));
        return doc.RootElement.GetProperty("cells").EnumerateArray()
            .Where(c => c.GetProperty("cell_type").GetString() == "code")
            .Select(c => string.Concat(c.GetProperty("source").EnumerateArray().Select(l => l.GetString())))
            .ToList();
    }

    /// <summary>Replaces the kernel's magic commands by blank lines (keeping line numbers) and returns the references they ask for.</summary>
    private static (string Code, List<Assembly> References) MapMagics(string cell, int index)
    {
        var references = new List<Assembly>();
        var lines = cell.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("#i ", StringComparison.Ordinal)) lines[i] = "";
            else if (NugetReference().Match(line) is { Success: true } m)
            {
                references.AddRange(m.Groups[1].Value switch
                {
                    // The package and its dependency closure: the library and every assembly it references.
                    "Microsoft.ML.MtLora" => [typeof(MtLoraOptions).Assembly, .. typeof(MtLoraOptions).Assembly.GetReferencedAssemblies().Select(Assembly.Load)],
                    "libtorch-cpu-linux-x64" => [], // native libraries only
                    var other => throw new InvalidOperationException($"Notebook code cell {index} references the package '{other}', which this test does not map."),
                });
                lines[i] = "";
            }
            else if (line.StartsWith('#') && !line.StartsWith("#region", StringComparison.Ordinal) && !line.StartsWith("#endregion", StringComparison.Ordinal))
                throw new InvalidOperationException($"Notebook code cell {index} has a magic command this test does not map: {line}");
        }
        return (string.Join('\n', lines), references);
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MtLora.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"No MtLora.sln above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex("""^#r\s+"nuget:\s*([^,"]+)\s*(?:,\s*[^"]+)?"$""")]
    private static partial Regex NugetReference();

    [GeneratedRegex("""src="data:image/png;base64,([A-Za-z0-9+/=]+)" """)]
    private static partial Regex PngSource();
}

/// <summary>What the .NET Interactive kernel provides to a cell: <c>display</c> and <c>HTML</c>; here they record.</summary>
public sealed class NotebookGlobals
{
    /// <summary>Everything displayed, in order.</summary>
    public List<object?> Displayed { get; } = [];

#pragma warning disable IDE1006 // the kernel's names
    /// <summary>Records a displayed value.</summary>
    public void display(object? value) => Displayed.Add(value);

    /// <summary>Marks a string as HTML, as the kernel's <c>HTML(...)</c>.</summary>
    public HtmlFragment HTML(string html) => new(html);
#pragma warning restore IDE1006
}

/// <summary>An HTML fragment passed to <c>display</c>.</summary>
public sealed record HtmlFragment(string Html);
