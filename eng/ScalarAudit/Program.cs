using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

// Finds every public TorchSharp member whose body (or a TorchSharp member it calls, transitively) converts a .NET value to a
// TorchSharp.Scalar implicitly, or calls a Scalar-returning member and never disposes the result: each leaves a Scalar to the
// finalizer, which TorchSharp 0.107 uses to free the native value (the race in eng/TorchScalarRule.targets). See README.md.
//
// scalar-audit <TorchSharp's src/TorchSharp folder> [--tsv <file>] [--ban-list <file> [--existing <BannedSymbols.txt>]
//              [--source <text for the header>]] [--reference <dll>]...
// Without --tsv and --ban-list the TSV (documentation-comment ID, reason) goes to standard output.
if (args.Length == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
{
    Console.Error.WriteLine("usage: scalar-audit <TorchSharp src/TorchSharp folder> [--tsv <file>] [--ban-list <file> [--existing <BannedSymbols.txt>] [--source <text>]] [--reference <dll>]...");
    return 2;
}
var root = args[0];
string? tsvPath = null, banListPath = null, existingPath = null, source = null;
var extraReferences = new List<string>();
for (var a = 1; a < args.Length; a++)
{
    var value = a + 1 < args.Length ? args[a + 1] : throw new ArgumentException($"option {args[a]} needs a value");
    switch (args[a])
    {
        case "--tsv": tsvPath = value; break;
        case "--ban-list": banListPath = value; break;
        case "--existing": existingPath = value; break;
        case "--source": source = value; break;
        case "--reference": extraReferences.Add(value); break;
        default: throw new ArgumentException($"unknown option {args[a]}");
    }
    a++;
}
if (!Directory.Exists(root))
{
    Console.Error.WriteLine($"scalar-audit: TorchSharp source folder '{root}' does not exist (expected TorchSharp's src/TorchSharp).");
    return 2;
}

var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
    .Where(f => !f.Contains("TorchVision") && !f.EndsWith("netstandard.cs")).OrderBy(f => f, StringComparer.Ordinal).ToList();
var parse = new CSharpParseOptions(LanguageVersion.Latest, preprocessorSymbols: ["NET8_0_OR_GREATER", "NET6_0_OR_GREATER", "NETCOREAPP"]);
var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, f)).ToList();
// The tool's own dependencies (Google.Protobuf, SharpZipLib, SkiaSharp: see the .csproj) resolve TorchSharp's references.
var refs = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator).Select(p => MetadataReference.CreateFromFile(p)).ToList();
refs.AddRange(extraReferences.Select(p => MetadataReference.CreateFromFile(p)));
var comp = CSharpCompilation.Create("TorchSharp", trees, refs,
    new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
var errors = comp.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
Console.Error.WriteLine($"{files.Count} files, {errors.Count} compile errors");
foreach (var e in errors.Take(10)) Console.Error.WriteLine(e);
var scalar = comp.GetTypeByMetadataName("TorchSharp.Scalar")!;

var direct = new Dictionary<ISymbol, string>(SymbolEqualityComparer.Default);
var calls = new Dictionary<ISymbol, HashSet<ISymbol>>(SymbolEqualityComparer.Default);
foreach (var tree in trees)
{
    var model = comp.GetSemanticModel(tree);
    foreach (var node in tree.GetRoot().DescendantNodes())
    {
        // Local functions are analysed as part of the enclosing member.
        if (node is not (BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or PropertyDeclarationSyntax or IndexerDeclarationSyntax)) continue;
        if (node is PropertyDeclarationSyntax p && p.ExpressionBody is null) continue;
        if (node is IndexerDeclarationSyntax ix && ix.ExpressionBody is null) continue;
        var symbol = model.GetDeclaredSymbol(node);
        if (symbol is null) continue;
        if (node is PropertyDeclarationSyntax or IndexerDeclarationSyntax) symbol = ((IPropertySymbol)symbol).GetMethod ?? symbol;
        SyntaxNode? body = node switch
        {
            BaseMethodDeclarationSyntax m => (SyntaxNode?)m.Body ?? m.ExpressionBody,
            AccessorDeclarationSyntax acc => (SyntaxNode?)acc.Body ?? acc.ExpressionBody,
            PropertyDeclarationSyntax pp => pp.ExpressionBody,
            IndexerDeclarationSyntax ii => ii.ExpressionBody,
            _ => null,
        };
        if (body is null) continue;
        var callees = calls.TryGetValue(symbol, out var set) ? set : calls[symbol] = new HashSet<ISymbol>(SymbolEqualityComparer.Default);
        var rootOp = model.GetOperation(node) ?? model.GetOperation(body);
        if (rootOp is null) continue;
        foreach (var op in rootOp.DescendantsAndSelf())
        {
            switch (op)
            {
                case IConversionOperation c when c.OperatorMethod is { } om:
                    if (SymbolEqualityComparer.Default.Equals(om.ContainingType, scalar) && om.Name == "op_Implicit" && !direct.ContainsKey(symbol))
                        direct[symbol] = $"{Path.GetFileName(tree.FilePath)}:{Line(op)}";
                    callees.Add(om.OriginalDefinition);
                    break;
                case IInvocationOperation i:
                    callees.Add(i.TargetMethod.OriginalDefinition);
                    if (SymbolEqualityComparer.Default.Equals(i.TargetMethod.ReturnType, scalar) && !Owned(i) && !direct.ContainsKey(symbol))
                        direct[symbol] = $"{Path.GetFileName(tree.FilePath)}:{Line(op)} (undisposed {i.TargetMethod.Name})";
                    break;
                case IObjectCreationOperation o when o.Constructor is not null: callees.Add(o.Constructor.OriginalDefinition); break;
                case IPropertyReferenceOperation pr:
                    if (pr.Property.GetMethod is { } g) callees.Add(g.OriginalDefinition);
                    if (pr.Property.SetMethod is { } s2) callees.Add(s2.OriginalDefinition);
                    break;
                case IBinaryOperation b when b.OperatorMethod is not null: callees.Add(b.OperatorMethod.OriginalDefinition); break;
                case IUnaryOperation u when u.OperatorMethod is not null: callees.Add(u.OperatorMethod.OriginalDefinition); break;
                case ICompoundAssignmentOperation ca when ca.OperatorMethod is not null: callees.Add(ca.OperatorMethod.OriginalDefinition); break;
            }
        }
    }
}
// Transitive closure within TorchSharp (static calls only: a virtual call through a base type, such as Sequential calling
// its modules' forward, is not followed; README.md says what that misses).
var tainted = new Dictionary<ISymbol, string>(direct, SymbolEqualityComparer.Default);
bool changed = true;
while (changed)
{
    changed = false;
    foreach (var (m, cs) in calls)
    {
        if (tainted.ContainsKey(m)) continue;
        var hit = cs.FirstOrDefault(c => tainted.ContainsKey(c));
        if (hit is not null) { tainted[m] = "calls " + hit.ToDisplayString(); changed = true; }
    }
}

// Virtual dispatch: a tainted override runs wherever the base member is called (Sequential and Module.call run forward,
// training loops call Optimizer.step), and no call site names it. So a class is tainted when the most-derived override of
// some virtual member, in the class or inherited, is tainted; then the class itself (T:, which also bans its constructors
// and members) and every public static TorchSharp method that returns it (the factories: nn.BatchNorm2d, optim.SGD) are.
var taintedTypes = new Dictionary<INamedTypeSymbol, string>(SymbolEqualityComparer.Default);
foreach (var type in AllTypes(comp.Assembly.GlobalNamespace).Where(t => t.TypeKind == TypeKind.Class && Visible(t)))
{
    var overridden = new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default);
    for (var t = type; t is not null && SymbolEqualityComparer.Default.Equals(t.ContainingAssembly, comp.Assembly); t = t.BaseType)
        foreach (var m in t.GetMembers().OfType<IMethodSymbol>().Where(m => m.IsOverride))
        {
            var baseMember = m.OverriddenMethod;
            while (baseMember?.OverriddenMethod is not null) baseMember = baseMember.OverriddenMethod;
            if (baseMember is null || !overridden.Add(baseMember)) continue;   // a more derived override was seen first
            if (tainted.ContainsKey(m.OriginalDefinition)) { taintedTypes[type] = m.ToDisplayString(); break; }
        }
}
var factories = new Dictionary<ISymbol, string>(SymbolEqualityComparer.Default);
foreach (var type in AllTypes(comp.Assembly.GlobalNamespace).Where(Visible))
    foreach (var m in type.GetMembers().OfType<IMethodSymbol>().Where(m => m.IsStatic && m.MethodKind == MethodKind.Ordinary && Visible(m)))
        if (m.ReturnType is INamedTypeSymbol r && taintedTypes.TryGetValue(r.OriginalDefinition, out var via) && !tainted.ContainsKey(m))
            factories[m] = $"returns {r.ToDisplayString()}, whose {via} is reached by virtual calls";
Console.Error.WriteLine($"{taintedTypes.Count} classes with a tainted override, {factories.Count} more factories");

var found = tainted
    .Where(kv => Visible(kv.Key) && !SymbolEqualityComparer.Default.Equals(kv.Key.ContainingType, scalar)) // the conversions themselves are banned by hand
    .Select(kv => (Id: kv.Key.GetDocumentationCommentId()!, Why: kv.Value, Type: kv.Key.ContainingType.GetDocumentationCommentId()!))
    .Concat(taintedTypes.Select(kv => (Id: kv.Key.GetDocumentationCommentId()!, Why: $"virtual {kv.Value}", Type: kv.Key.GetDocumentationCommentId()!)))
    .Concat(factories.Select(kv => (Id: kv.Key.GetDocumentationCommentId()!, Why: kv.Value, Type: kv.Key.ContainingType.GetDocumentationCommentId()!)))
    .OrderBy(x => x.Id, StringComparer.Ordinal).ToList();
Console.Error.WriteLine($"{direct.Count} members convert directly, {tainted.Count} with callers, {found.Count} public");

var tsv = found.Select(x => $"{x.Id}\t{x.Why}").ToList();
if (tsvPath is not null) File.WriteAllLines(tsvPath, tsv);
if (banListPath is not null)
{
    // Skip what the hand-written list already bans: the same member, or a member of a banned type.
    var existing = existingPath is null ? [] : File.ReadAllLines(existingPath)
        .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
        .Select(l => l.Split(';', 2)[0].Trim()).ToHashSet(StringComparer.Ordinal);
    var bannedTypes = found.Where(x => x.Id.StartsWith("T:", StringComparison.Ordinal)).Select(x => x.Id).ToHashSet(StringComparer.Ordinal);
    var kept = found.Where(x => !existing.Contains(x.Id) && !existing.Contains(x.Type) && (x.Id.StartsWith("T:", StringComparison.Ordinal) || !bannedTypes.Contains(x.Type))).ToList();
    var lines = new List<string>
    {
        "# GENERATED by eng/ScalarAudit (eng/ScalarAudit/generate-ban-list.sh); do not edit: regenerate (README.md there).",
        $"# TorchSharp source: {source ?? root}",
        "# Public TorchSharp members that create a Scalar inside TorchSharp and leave it to the finalizer (an implicit conversion,",
        "# or an undisposed Scalar-returning call), directly or through the TorchSharp members they call; and the classes with such",
        "# an override (reached by virtual calls: Sequential running forward, Optimizer.step) with their factories. TorchSharp 0.107",
        "# frees a Scalar's native value from its finalizer, so a GC triggered by another thread can free it while the call reads it.",
        $"# {kept.Count} entries; what eng/BannedSymbols.txt already bans (by member or by type), and the members of a type banned",
        "# here, are left out. The fix is the overload that takes every Scalar explicitly (src/Microsoft.ML.MtLora/Runtime/TorchScalars.cs,",
        "# or `using var s = v.ToScalar();`), or our own replacement (Modeling/SafeBatchNorm2d, Training/FlatAdamW).",
    };
    lines.AddRange(kept.Select(x => $"{x.Id};leaves a Scalar to the finalizer inside TorchSharp ({Reason(x.Why)}): use the overload that takes every Scalar explicitly (TorchScalars), or avoid the member"));
    File.WriteAllLines(banListPath, lines);
    var byHand = found.Count(x => existing.Contains(x.Id) || existing.Contains(x.Type));
    Console.Error.WriteLine($"{kept.Count} entries written to {banListPath} ({byHand} of the {found.Count} found are banned by hand, {found.Count - kept.Count - byHand} are members of a type banned here)");
}
if (tsvPath is null && banListPath is null)
    foreach (var line in tsv) Console.WriteLine(line);
return 0;

static string Reason(string why) => why.StartsWith("calls ", StringComparison.Ordinal) || why.StartsWith("returns ", StringComparison.Ordinal) || why.StartsWith("virtual ", StringComparison.Ordinal)
    ? why.Replace("TorchSharp.torch.", "", StringComparison.Ordinal).Replace("TorchSharp.", "", StringComparison.Ordinal)
    : "TorchSharp " + why;

static IEnumerable<INamedTypeSymbol> AllTypes(INamespaceSymbol ns)
{
    foreach (var t in ns.GetTypeMembers())
        foreach (var n in Nested(t)) yield return n;
    foreach (var child in ns.GetNamespaceMembers())
        foreach (var t in AllTypes(child)) yield return t;
}

static IEnumerable<INamedTypeSymbol> Nested(INamedTypeSymbol t)
{
    yield return t;
    foreach (var n in t.GetTypeMembers())
        foreach (var m in Nested(n)) yield return m;
}

static int Line(IOperation op) => op.Syntax.GetLocation().GetLineSpan().StartLinePosition.Line + 1;

// A Scalar-returning call is safe when its result is disposed by a using, or handed to the caller (returned).
static bool Owned(IOperation op)
{
    for (var p = op.Parent; p is not null; p = p.Parent)
    {
        if (p is IUsingOperation or IUsingDeclarationOperation or IReturnOperation) return true;
        if (p is IArgumentOperation or IInvocationOperation or IBinaryOperation) return false;
        if (p is IBlockOperation or IExpressionStatementOperation) return false;
    }
    return false;
}

static bool Visible(ISymbol s)
{
    for (var x = s; x is not null && x is not INamespaceSymbol; x = x.ContainingSymbol)
        if (x.DeclaredAccessibility is not (Accessibility.Public or Accessibility.Protected or Accessibility.ProtectedOrInternal)) return false;
    return true;
}
