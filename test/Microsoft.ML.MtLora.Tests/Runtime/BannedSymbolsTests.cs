using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Microsoft.ML.MtLora.Tests.Runtime;

/// <summary>
/// The ban lists of eng/TorchScalarRule.targets name real TorchSharp symbols. BannedApiAnalyzers ignores an entry whose
/// documentation ID resolves to nothing, so a typo or a TorchSharp upgrade that renames a member would silently lift a ban.
/// </summary>
public class BannedSymbolsTests
{
    [Theory]
    [InlineData("eng/BannedSymbols.txt")]
    [InlineData("eng/BannedSymbols.TorchSharp.txt")]
    public void EveryEntryResolvesToATorchSharpSymbolAndGivesAReason(string file)
    {
        var compilation = CSharpCompilation.Create("BanProbe", references:
        [
            MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location),
            .. ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
                .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal))
                .Select(p => MetadataReference.CreateFromFile(p)),
        ]);
        var lines = File.ReadAllLines(Path.Combine(Fixture.RepoRoot(), file))
            .Select((text, index) => (Text: text.Trim(), Line: index + 1))
            .Where(l => l.Text.Length > 0 && !l.Text.StartsWith('#')).ToList();
        Assert.NotEmpty(lines);
        var unresolved = new List<string>();
        foreach (var (text, line) in lines)
        {
            var parts = text.Split(';', 2);
            Assert.True(parts.Length == 2 && parts[1].Trim().Length > 0, $"{file}:{line}: no reason after ';'");
            if (DocumentationCommentId.GetFirstSymbolForDeclarationId(parts[0], compilation) is null)
                unresolved.Add($"{file}:{line}: {parts[0]}");
        }
        Assert.True(unresolved.Count == 0, "entries that name no symbol:\n" + string.Join("\n", unresolved));
    }
}
