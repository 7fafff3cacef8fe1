using Plotly.NET;

namespace Microsoft.ML.MtLora.Visualization;

/// <summary>
/// Shared pieces of the Plotly.NET figures: traces and layout parts as plotly.js JSON attributes, and the self-contained HTML page.
/// </summary>
/// <remarks>
/// The figures are built from Plotly.NET's object layer (<see cref="Trace2D"/>, <see cref="Layout"/>, which are dynamic objects
/// holding plotly.js attributes) rather than its F# <c>Chart</c> functions: from C# those take every one of their 30-odd F#
/// optional arguments (they carry no default values C# can see), and the attribute names here are plotly.js's own, documented
/// at plotly.com/javascript/reference.
/// </remarks>
internal static class PlotlyFigures
{
    /// <summary>Category10 (matplotlib's tab10), the colours of the series in order.</summary>
    private static readonly string[] Category10 =
        ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    /// <summary>The Category10 colour of series <paramref name="index"/> as <c>#rrggbb</c>.</summary>
    public static string SeriesColor(int index) => Category10[index % Category10.Length];

    /// <summary>A scatter trace (plotly.js <c>type: "scatter"</c>) with the given attributes.</summary>
    public static Trace2D Scatter(string name, double[] x, double[] y, string mode, IReadOnlyDictionary<string, object>? attributes = null)
    {
        var trace = new Trace2D("scatter");
        trace.SetProperty("name", name);
        trace.SetProperty("x", x);
        trace.SetProperty("y", y);
        trace.SetProperty("mode", mode);
        if (attributes is not null)
        {
            foreach (var (key, value) in attributes) trace.SetProperty(key, value);
        }
        return trace;
    }

    /// <summary>A layout with the given top-level plotly.js attributes (<c>title</c>, <c>xaxis</c>, <c>shapes</c>, ...).</summary>
    public static Layout Layout(IReadOnlyDictionary<string, object> attributes)
    {
        var layout = new Layout();
        foreach (var (key, value) in attributes) layout.SetProperty(key, value);
        return layout;
    }

    /// <summary>A chart of the traces and layout whose HTML inlines plotly.js, titled <paramref name="documentTitle"/>.</summary>
    public static GenericChart Chart(IEnumerable<Trace> traces, Layout layout, string documentTitle)
    {
        var chart = GenericChart.ofTraceObjects(true, traces.ToArray());
        chart = GenericChart.setLayout(layout, chart);
        // PlotlyJSReference.Full writes the whole plotly.js bundle into the page (about 3.5 MB), so the file renders offline;
        // the default (CDN) would leave a <script src> pointing at the internet.
        var display = DisplayOptions.setPlotlyReference(PlotlyJSReference.Full).Invoke(new DisplayOptions());
        display = DisplayOptions.setDocumentTitle(documentTitle).Invoke(display);
        display = DisplayOptions.setDocumentCharset("utf-8").Invoke(display);
        return GenericChart.setDisplayOptions(display, chart);
    }

    /// <summary>The chart as a complete HTML document with plotly.js inlined.</summary>
    public static string ToHtml(GenericChart chart) => GenericChart.toEmbeddedHTML(chart);

    /// <summary>An axis title attribute.</summary>
    public static Dictionary<string, object> Title(string text) => new() { ["text"] = text };
}
