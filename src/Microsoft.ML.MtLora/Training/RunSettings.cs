using System.Globalization;

namespace Microsoft.ML.MtLora.Training;

/// <summary>What a resume does when a recorded <see cref="RunSetting"/> differs from the resumed run's.</summary>
internal enum SettingChange
{
    /// <summary>The resumed run would not continue the checkpoint's run (other data, order or network): it is refused.</summary>
    Refuse,

    /// <summary>The change is legitimate (the same batches and schedule, computed another way): a warning says what it does.</summary>
    Warn,
}

/// <summary>
/// A setting that decides what a run's data and steps look like, recorded in each checkpoint's <c>manifest.json</c>
/// (under <c>settings</c>) and compared when the run is resumed (<see cref="RunSettings.Compare"/>).
/// </summary>
/// <param name="Key">The manifest key.</param>
/// <param name="Option">The option that sets it, as messages name it (e.g. <c>MtLoraOptions.BatchSize</c>, or <c>--batch-size</c> for <c>mtlora train</c>).</param>
/// <param name="Value">The value as text; two runs agree when the texts are equal.</param>
/// <param name="OnChange">Whether a different value refuses the resume or warns.</param>
/// <param name="Consequence">For <see cref="SettingChange.Warn"/>: what the change does to the continued run.</param>
internal sealed record RunSetting(string Key, string Option, string Value, SettingChange OnChange, string? Consequence = null);

/// <summary>
/// The settings recorded with each checkpoint so that a resume is known to continue the same run: what the augmentation
/// draws (a pure function of seed, epoch and sample index, <c>AugmentationDraws</c>), the data order (seed, shuffle), the
/// batches (batch size) and the network's input and outputs (image size, tasks) depend on. The position and seed were
/// recorded before; these came later, so a checkpoint without them still resumes, with a note that they were not checked.
/// </summary>
internal static class RunSettings
{
    /// <summary>The manifest keys, in the order they are written.</summary>
    internal const string Tasks = "tasks", ImageSize = "image_size", BatchSize = "batch_size", Seed = "seed", Shuffle = "shuffle",
        Augmentation = "augmentation", Geometry = "augmentation_geometry", AccumulationSteps = "accumulation_steps";

    /// <summary>The settings of an estimator run.</summary>
    /// <param name="o">The options.</param>
    /// <param name="seed">The seed in effect (the options' or the context's).</param>
    /// <param name="optionName">Names an <see cref="MtLoraOptions"/> member (e.g. <c>BatchSize</c>, <c>Network.ImageSize</c>) in
    /// messages; null: <c>MtLoraOptions.Member</c>.</param>
    public static IReadOnlyList<RunSetting> Of(MtLoraOptions o, int seed, Func<string, string?>? optionName = null)
    {
        var ci = CultureInfo.InvariantCulture;
        string Name(string member) => optionName?.Invoke(member) ?? "MtLoraOptions." + member;
        return
        [
            new(Tasks, Name("Network.Tasks"), string.Join(",", o.Network.Tasks.Select(t => t.Name)), SettingChange.Refuse),
            new(ImageSize, Name("Network.ImageSize"), o.Network.ImageSize.ToString(ci), SettingChange.Refuse),
            new(BatchSize, Name("BatchSize"), o.BatchSize.ToString(ci), SettingChange.Refuse),
            new(Seed, Name("Seed"), seed.ToString(ci), SettingChange.Refuse),
            new(Shuffle, Name("Shuffle"), o.Shuffle ? "true" : "false", SettingChange.Refuse),
            // The draws written out (a preset and the same ranges given by hand agree); "none" when Augment is off.
            new(Augmentation, Name("AugmentationDraws"), o.Augment ? o.AugmentationDraws.Describe() : "none (Augment = false)", SettingChange.Refuse),
            new(Geometry, Name("AugmentationGeometry"), o.AugmentationGeometry == Data.Preprocessing.AugmentationGeometry.ReferenceTwoStep ? "reference-two-step" : "single-pass", SettingChange.Warn,
                "both geometries apply the same draws to the same samples, so the images differ only by interpolation"),
            new(AccumulationSteps, Name("AccumulationSteps"), o.AccumulationSteps.ToString(ci), SettingChange.Warn,
                "the batches and the learning rate stay the same; the gradients differ by float rounding and by BatchNorm statistics taken per micro-batch"),
        ];
    }

    /// <summary>
    /// Compares a resumed run's settings with those a checkpoint recorded.
    /// </summary>
    /// <param name="folder">The checkpoint folder (for the messages).</param>
    /// <param name="recorded">The checkpoint's settings by key; null when its manifest records none (an earlier version).</param>
    /// <param name="given">The resumed run's settings.</param>
    /// <returns>The refusal (one line naming each option that differs with the checkpoint's and the given value; null when
    /// the run may continue) and the warnings (legitimate changes, and the settings the checkpoint could not be checked for).</returns>
    public static (string? Refusal, IReadOnlyList<string> Warnings) Compare(string folder, IReadOnlyDictionary<string, string>? recorded, IReadOnlyList<RunSetting> given)
    {
        var warnings = new List<string>();
        var refused = new List<string>();
        var notRecorded = new List<string>();
        foreach (var s in given)
        {
            if (recorded is null || !recorded.TryGetValue(s.Key, out var was)) { notRecorded.Add(s.Option); continue; }
            if (string.Equals(was, s.Value, StringComparison.Ordinal)) continue;
            string change = $"{s.Option} is {s.Value}, but the checkpoint was written with {was}";
            if (s.OnChange == SettingChange.Refuse) refused.Add(change);
            else warnings.Add($"Resuming '{folder}': {change}; the run continues with {s.Value}: {s.Consequence}.");
        }
        if (notRecorded.Count > 0)
            warnings.Insert(0, $"Resuming '{folder}': the checkpoint does not record {string.Join(", ", notRecorded)} (it was written by an earlier version of Microsoft.ML.MtLora), "
                + "so the resumed run could not be checked against them.");
        string? refusal = refused.Count == 0 ? null
            : $"Cannot resume from '{folder}': {string.Join("; ", refused)}. The resumed run would not continue the checkpoint's run: "
              + (refused.Count == 1 ? "give the checkpoint's value" : "give the checkpoint's values") + ", or start a new run without resuming.";
        return (refusal, warnings);
    }
}
