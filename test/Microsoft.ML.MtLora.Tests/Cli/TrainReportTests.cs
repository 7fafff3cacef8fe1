using Microsoft.ML.MtLora.Evaluation;
using Microsoft.ML.MtLora.Modeling;
using MtLora.Cli.Commands;

namespace Microsoft.ML.MtLora.Tests.Cli;

/// <summary>
/// What train's report takes from Fit: the configured ranks (per stage and per task where they differ) and, when Fit's
/// validation already scored the returned weights with the same baselines and protocol, its metrics.
/// </summary>
public class TrainReportTests
{
    [Fact]
    public void UniformRanksAreOneNumberEach()
    {
        Assert.Equal("shared rank 8, task rank 4", TrainCommand.Ranks(TrainCommand.SmallNetwork()));
    }

    [Fact]
    public void PerStageAndPerTaskRanksArePrintedAsConfigured()
    {
        var network = TrainCommand.SmallNetwork();
        network.SharedRankPerStage = [8, 16, 32, 64];
        network.TaskRankPerStage = [1, 2, 3, 4];
        Assert.Equal("shared rank 8-16-32-64, task rank 1-2-3-4", TrainCommand.Ranks(network));
        network.TaskRankPerTask = new Dictionary<string, IReadOnlyList<int>> { ["sal"] = [2, 2, 2, 2], ["normals"] = [4, 4, 8, 8] };
        Assert.Equal("shared rank 8-16-32-64, task rank semseg 1-2-3-4, human_parts 1-2-3-4, sal 2, normals 4-4-8-8", TrainCommand.Ranks(network));
        // The JSON form of the reference's per-task ranks reads into the same line.
        var fromJson = MtLoraNetworkOptions.FromJson("""{ "shared_rank": [8, 16, 32, 64], "task_rank": { "semseg": [4, 4, 8, 8], "human_parts": 2, "sal": 2, "normals": 2 } }""");
        Assert.Equal("shared rank 8-16-32-64, task rank semseg 4-4-8-8, human_parts 2, sal 2, normals 2", TrainCommand.Ranks(fromJson));
    }

    private static MtLoraValidationReport Validation(int epoch, long step, EvaluationProtocol protocol = EvaluationProtocol.Reference) =>
        new(epoch, step, new MultiTaskMetrics(null, null, null, null, SingleTaskBaselines.None) { Protocol = protocol });

    [Fact]
    public void FitsValidationIsReusedOnlyWhenItScoredTheReturnedWeightsAsTheReportWould()
    {
        var baselines = SingleTaskBaselines.Parse("semseg=40");
        var options = new MtLoraOptions { ValidationBaselines = baselines, ValidationProtocol = EvaluationProtocol.Reference, Keep = MtLoraKeep.Last };
        var best = Validation(1, 3);
        var last = Validation(2, 6);
        var keptLast = new MtLoraTrainingReport(6, 0, EvaluationProtocol.Reference, best, last, MtLoraKeep.Last);
        Assert.Same(last, TrainCommand.ScoredByFit(keptLast, options, baselines));
        // Not when the report uses other baselines, nor when the last validation came before the last step, nor without a report.
        Assert.Null(TrainCommand.ScoredByFit(keptLast, options, SingleTaskBaselines.None));
        Assert.Null(TrainCommand.ScoredByFit(keptLast with { Steps = 7 }, options, baselines));
        Assert.Null(TrainCommand.ScoredByFit(null, options, baselines));
        Assert.Null(TrainCommand.ScoredByFit(keptLast with { Last = Validation(2, 6, EvaluationProtocol.Native) }, options, baselines));
        // --keep best: the best validation, an earlier epoch's, scored the returned weights; if no best was kept, nothing is reused.
        options.Keep = MtLoraKeep.Best;
        Assert.Same(best, TrainCommand.ScoredByFit(keptLast with { Kept = MtLoraKeep.Best }, options, baselines));
        Assert.Null(TrainCommand.ScoredByFit(keptLast, options, baselines));
    }
}
