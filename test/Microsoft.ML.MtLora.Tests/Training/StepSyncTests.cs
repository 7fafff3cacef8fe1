using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.ML.MtLora.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Training;

/// <summary>
/// A training step reads exactly one tensor back to the host: the loss values, for the progress report and the NaN check.
/// On a GPU every other read (a label count, a clipping norm returned as a number, a data-dependent shape) would stall the
/// launch queue in the middle of the step. Shown in two parts: the step calls its one read seam once per optimizer step,
/// whatever the number of micro-batches; and no code the step runs (the network's modules, the losses, AdamW, the loop)
/// contains another device-to-host read, apart from the listed places that run outside the step or on host copies.
/// </summary>
[Collection(SerialCollection.Name)]
public class StepSyncTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void StepReadsTheHostOncePerOptimizerStep(int accumulationSteps)
    {
        using var model = new TinyMultiTaskNet(seed: 21);
        var settings = new MultiTaskTrainerSettings
        {
            Epochs = 2, WarmupEpochs = 1, MaxSteps = 3, AccumulationSteps = accumulationSteps,
            BaseLearningRate = 1e-3, WarmupLearningRate = 1e-4, MinLearningRate = 1e-5,
        };
        using var trainer = new MultiTaskTrainer(model, new TinyData(samples: 8, batchSize: 4), settings);
        var read = trainer.ReadToHost;
        int reads = 0;
        trainer.ReadToHost = t =>
        {
            reads++;
            Assert.Equal(accumulationSteps * 5, t.numel());   // every micro-batch's four task losses and total, at once
            return read(t);
        };
        Assert.Equal(3, trainer.Train().GlobalStep);
        Assert.Equal(3, reads);
    }

    /// <summary>The calls that copy a tensor's values to the host, or make its shape depend on them.</summary>
    private static readonly HashSet<string> HostReads = ["item", "cpu", "data", "bytes", "tolist", "masked_select", "nonzero", "clip_grad_norm_", "ToArray"];

    /// <summary>
    /// The places in the step's code that may read: each runs outside the step, or on the host copy of a batch.
    /// (file relative to src/Microsoft.ML.MtLora, member) → why.
    /// </summary>
    private static readonly Dictionary<(string File, string Member), string> Allowed = new()
    {
        [("Training/MultiTaskTrainer.cs", "ReadToHost")] = "the step's one read, the loss values",
        [("Training/MultiTaskTrainer.cs", "Resume")] = "reads a checkpoint file before training",
        [("Training/TaskLosses.cs", "CheckLabels")] = "checks the batch's CPU copy before it moves to the device",
        [("Modeling/Adapters/DropoutMask.cs", "Cpu")] = "CPU tensors only: the generator seed and the mask's own memory",
        [("Modeling/Swin/SwinInit.cs", "Erf")] = "initialisation",
        [("Modeling/MultiTaskSwin.cs", "Load")] = "loading a state dict",
    };

    [Fact]
    public void StepCodeHasNoOtherHostRead()
    {
        var root = Path.Combine(Fixture.RepoRoot(), "src", "Microsoft.ML.MtLora");
        var files = Directory.GetFiles(Path.Combine(root, "Modeling"), "*.cs", SearchOption.AllDirectories)
            .Concat(new[] { "MultiTaskTrainer.cs", "TaskLosses.cs", "FlatAdamW.cs", "OptimizerFactory.cs" }.Select(f => Path.Combine(root, "Training", f)));
        var found = new List<string>();
        foreach (var file in files)
        {
            var relative = Path.GetRelativePath(root, file).Replace('\\', '/');
            var tree = CSharpSyntaxTree.ParseText(File.ReadAllText(file));
            foreach (var name in tree.GetRoot().DescendantNodes().OfType<SimpleNameSyntax>())
            {
                if (!HostReads.Contains(name.Identifier.Text) || name.Parent is not MemberAccessExpressionSyntax access || access.Name != name) continue;
                var member = name.Ancestors().Select(MemberName).FirstOrDefault(m => m is not null) ?? "?";
                // LINQ's ToArray on host collections is not a read; a tensor's values come out through data<T>() first.
                if (name.Identifier.Text == "ToArray" && !access.Expression.ToString().Contains("data<", StringComparison.Ordinal)) continue;
                if (!Allowed.ContainsKey((relative, member)))
                    found.Add($"{relative}: {member}: {access}");
            }
        }
        Assert.True(found.Count == 0, "host reads in the training step's code:\n" + string.Join("\n", found));
    }

    private static string? MemberName(SyntaxNode node) => node switch
    {
        MethodDeclarationSyntax m => m.Identifier.Text,
        PropertyDeclarationSyntax p => p.Identifier.Text,
        ConstructorDeclarationSyntax c => c.Identifier.Text,
        LocalFunctionStatementSyntax l => l.Identifier.Text,
        _ => null,
    };
}
