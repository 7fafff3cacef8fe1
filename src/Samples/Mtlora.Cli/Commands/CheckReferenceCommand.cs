using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.ML.MtLora;
using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Training;
using static TorchSharp.torch;

namespace MtLora.Cli.Commands;

/// <summary>
/// <c>mtlora check-reference --config c.json --checkpoint model.(pth|safetensors) --io io.safetensors [--tolerance 1e-4]</c>:
/// loads a reference MTLoRA state dict strictly, runs the <c>input</c> tensor of the io file through the network in evaluation
/// mode and compares each task output with <c>out.&lt;task&gt;</c>. Prints
/// <c>{"tasks": {"semseg": {"max_abs_error": …, "loss": …}, …}, "loss_total": …, "metrics": {…}, "tolerance": …, "passed": …}</c>.
/// When the io file also holds <c>target.&lt;task&gt;</c> tensors, each task's loss (the reference's loss functions), the
/// weighted total (weights 1/2/5/10) and the evaluation metrics of the network's outputs against those targets are
/// reported too. Exit code 0 when every output is within tolerance, 1 when one is not, 2 on bad input.
/// </summary>
internal static class CheckReferenceCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config") { Description = "Network config JSON of the reference model.", Required = true };
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "The reference state dict (.safetensors, or a torch.save checkpoint).", Required = true };
        var io = new Option<FileInfo>("--io") { Description = "safetensors with 'input' (B,3,S,S) and the reference outputs 'out.<task>'.", Required = true };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest accepted absolute difference per element.", DefaultValueFactory = _ => 1e-4 };
        var cmd = new Command("check-reference", "Check that the network reproduces a reference implementation's outputs from the same weights.");
        cmd.Options.Add(config);
        cmd.Options.Add(checkpoint);
        cmd.Options.Add(io);
        cmd.Options.Add(tolerance);
        cmd.SetAction(parseResult =>
        {
            var inv = parseResult.InvocationConfiguration;
            return Run(parseResult.GetValue(config)!.FullName, parseResult.GetValue(checkpoint)!.FullName, parseResult.GetValue(io)!.FullName,
                parseResult.GetValue(tolerance), inv.Output, inv.Error);
        });
        return cmd;
    }

    private static int Run(string configPath, string checkpointPath, string ioPath, double tolerance, TextWriter stdout, TextWriter stderr)
    {
        if (!(tolerance >= 0))
        {
            stderr.WriteLine($"mtlora check-reference: --tolerance must be a non-negative number, got {tolerance}.");
            return 2;
        }
        using var scope = NewDisposeScope();
        MultiTaskSwin model;
        Dictionary<string, Tensor> io;
        try
        {
            var options = MtLoraNetworkOptions.Load(configPath);
            TorchRuntime.Initialize(); // honours MTLORA_LIBTORCH
            model = new MultiTaskSwin(options);
            var weights = StateDictFile.Load(checkpointPath);
            try { model.LoadStateDict(weights); }
            catch (InvalidDataException e) { throw new InvalidDataException($"checkpoint '{checkpointPath}': {e.Message}", e); }
            finally { foreach (var t in weights.Values) t.Dispose(); }
            io = SafeTensors.Load(ioPath);
            if (!io.ContainsKey("input")) throw new InvalidDataException($"io file '{ioPath}' has no tensor 'input'.");
            var missing = model.TaskNames.Where(t => !io.ContainsKey("out." + t)).ToList();
            if (missing.Count > 0)
                throw new InvalidDataException($"io file '{ioPath}' lacks the reference output(s) {string.Join(", ", missing.Select(t => "'out." + t + "'"))}.");
        }
        catch (Exception e) when (e is FileNotFoundException or FormatException or InvalidDataException or NotSupportedException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"mtlora check-reference: {e.Message}");
            return 2;
        }

        using (model)
        {
            model.eval();
            Dictionary<string, Tensor> outputs;
            try
            {
                using var _ = no_grad();
                outputs = model.forward(io["input"].to(float32));
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine($"mtlora check-reference: io file '{ioPath}': {e.Message}");
                return 2;
            }

            var tasks = new JsonObject();
            bool passed = true;
            foreach (var t in model.TaskNames)
            {
                var expected = io["out." + t];
                if (!expected.shape.SequenceEqual(outputs[t].shape))
                {
                    stderr.WriteLine($"mtlora check-reference: io file '{ioPath}': 'out.{t}' has shape [{string.Join(", ", expected.shape)}], the network gives [{string.Join(", ", outputs[t].shape)}].");
                    return 2;
                }
                double err = (outputs[t] - expected.to(float32)).abs().max().item<float>();
                bool ok = err <= tolerance;                              // NaN fails
                passed &= ok;
                tasks[t] = new JsonObject { ["max_abs_error"] = err, ["passed"] = ok };
                stderr.WriteLine($"{t}: max abs error {err:G3} {(ok ? "ok" : "TOO LARGE")}");
            }
            var result = new JsonObject { ["tasks"] = tasks };
            AddLossesAndMetrics(model.TaskNames, outputs, io, tasks, result, stderr);
            result["tolerance"] = tolerance;
            result["passed"] = passed;
            // A NaN error is written as "NaN" rather than failing to serialise.
            var json = new JsonSerializerOptions { WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
            stdout.WriteLine(result.ToJsonString(json));
            return passed ? 0 : 1;
        }
    }

    /// <summary>Losses and metrics of the network's outputs against <c>target.&lt;task&gt;</c>, for the tasks that have one.</summary>
    private static void AddLossesAndMetrics(IReadOnlyList<string> taskNames, Dictionary<string, Tensor> outputs,
        Dictionary<string, Tensor> io, JsonObject tasks, JsonObject result, TextWriter stderr)
    {
        var withTargets = taskNames.Where(t => io.ContainsKey("target." + t)).ToList();
        if (withTargets.Count == 0) return;
        var outs = withTargets.ToDictionary(t => t, t => outputs[t]);
        var targets = withTargets.ToDictionary(t => t, t => io["target." + t].to(float32));
        using (var losses = TaskLosses.Compute(outs, targets))
        {
            foreach (var t in withTargets)
            {
                double loss = losses.PerTask[t].item<float>();
                tasks[t]!["loss"] = loss;
                stderr.WriteLine($"{t}: loss {loss:G6}");
            }
            result["loss_total"] = (double)losses.Total.item<float>();
        }
        var meter = new MultiTaskMeter(withTargets.Select(t => DenseTasks.Parse(t).ToDescriptor()));
        meter.Update(withTargets.ToDictionary(t => DenseTasks.Parse(t).ToDescriptor(), t => outs[t]), withTargets.ToDictionary(t => DenseTasks.Parse(t).ToDescriptor(), t => targets[t]));
        result["metrics"] = meter.GetMetrics().ToJson();
    }
}
