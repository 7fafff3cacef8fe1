using Microsoft.ML.MtLora.Training;

namespace Microsoft.ML.MtLora.Tests.Training;

public class TrainingRecipeTests
{
    [Fact]
    public void ThePaperPresetIsTheReferencesRecipe()
    {
        // docs/mtlora-reference.md §6: 300 epochs, 20 of warmup, batch 32, lr 5e-4·32/512, AdamW 0.9/0.999/1e-8, wd 0.05, clip 5, EVAL_FREQ 5.
        var r = TrainingRecipe.Paper;
        Assert.Equal((300, 20, 32, 0.05, 0.9, 0.999, 1e-8, (double?)5.0, 5), (r.Epochs, r.WarmupEpochs, r.BatchSize, r.WeightDecay, r.Beta1, r.Beta2, r.Epsilon, r.GradientClipNorm, r.ValidationEveryEpochs));
        Assert.Equal(3.125e-5, TrainingRecipe.PeakLearningRate(32), 15);
        Assert.Equal(3.125e-8, TrainingRecipe.WarmupLearningRate(32), 1e-20);
        Assert.Equal(3.125e-7, TrainingRecipe.MinLearningRate(32), 1e-19);
    }

    [Fact]
    public void OptionsAndTrainerSettingsTakeTheirDefaultsFromTheRecipe()
    {
        var r = TrainingRecipe.Paper;
        var o = MtLoraOptions.PaperMainSetting();
        var s = new MultiTaskTrainerSettings();
        Assert.Equal((r.Epochs, r.WarmupEpochs, r.BatchSize, r.WeightDecay, r.GradientClipNorm, r.ValidationEveryEpochs),
            (o.Epochs, o.WarmupEpochs, o.BatchSize, o.WeightDecay, o.GradientClipNorm, o.ValidationEveryEpochs));
        Assert.Equal((r.Epochs, r.WarmupEpochs, r.WeightDecay, r.Beta1, r.Beta2, r.Epsilon, r.GradientClipNorm, r.ValidationEveryEpochs),
            (s.Epochs, s.WarmupEpochs, s.WeightDecay, s.Beta1, s.Beta2, s.Epsilon, s.ClipGradientNorm, s.ValidateEveryEpochs));
        Assert.Equal(o.EffectiveLearningRate, s.BaseLearningRate);
        Assert.Equal((448, 64, 4, 4), (o.Network.ImageSize, o.Network.SharedRank, o.Network.TaskRank, o.Network.Tasks.Count));
    }

    [Theory]
    [InlineData("Epochs")]
    [InlineData("WarmupEpochs")]
    [InlineData("WeightDecay")]
    [InlineData("AccumulationSteps")]
    [InlineData("KeepCheckpoints")]
    public void OptionsAndTrainerSettingsRejectABadValueWithTheSameRule(string name)
    {
        var o = new MtLoraOptions { Network = new Microsoft.ML.MtLora.Modeling.MtLoraNetworkOptions() };
        var s = new MultiTaskTrainerSettings();
        switch (name)
        {
            case "Epochs": o.Epochs = 0; s = s with { Epochs = 0 }; break;
            case "WarmupEpochs": o.WarmupEpochs = 300; s = s with { WarmupEpochs = 300 }; break;
            case "WeightDecay": o.WeightDecay = -1; s = s with { WeightDecay = -1 }; break;
            case "AccumulationSteps": o.AccumulationSteps = 0; s = s with { AccumulationSteps = 0 }; break;
            case "KeepCheckpoints": o.KeepCheckpoints = 0; s = s with { KeepCheckpoints = 0 }; break;
        }
        var fromOptions = Assert.ThrowsAny<ArgumentException>(o.Validate).Message;
        var fromSettings = Assert.ThrowsAny<ArgumentException>(s.Validate).Message;
        Assert.StartsWith($"MtLoraOptions.{name}: is ", fromOptions, StringComparison.Ordinal);
        Assert.StartsWith($"{name} is ", fromSettings, StringComparison.Ordinal);
        string Rule(string message) => message[message.IndexOf("; it must", StringComparison.Ordinal)..].Split(" (Parameter")[0];
        Assert.Equal(Rule(fromOptions), Rule(fromSettings));
    }
}
