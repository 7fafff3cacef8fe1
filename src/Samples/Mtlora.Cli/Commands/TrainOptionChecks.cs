using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.MtLora.Modeling;

namespace MtLora.Cli.Commands;

/// <summary>
/// The bounds of <c>train</c>'s numeric options, checked before anything is built or read, each refused with a line that
/// names the option and why. The bounds about the model are the library's own (<see cref="MtLoraNetworkOptions.Validate"/>,
/// <c>MtLoraOptions.Validate</c>, which a C# user meets too); this class words their messages with the command line's
/// option names and adds the bounds that are about the machine (cores, memory).
/// </summary>
internal static partial class TrainOptionChecks
{
    /// <summary>
    /// Bytes of activations kept per image for the backward pass, per token and channel of every Swin block: 40 floats.
    /// Calibrated on the reference: Swin-T at 448 px (Σ blocks tokens × channels = 5,720,064) takes 35.1 GiB at batch 32
    /// on an H100 (eng/benchmarks/README.md), about 51 floats; 40 keeps the estimate below what a run really takes, so
    /// only a run that cannot fit is refused.
    /// </summary>
    private const long ActivationBytesPerTokenChannel = 40 * sizeof(float);

    /// <summary>MtLoraOptions members and the options that set them.</summary>
    private static readonly (string Member, string Option)[] OptionNames =
    [
        ("Epochs", "--epochs"), ("MaxSteps", "--max-steps"), ("BatchSize", "--batch-size"), ("LearningRate", "--lr"),
        ("WarmupEpochs", "--warmup-epochs"), ("CheckpointEverySteps", "--checkpoint-every"), ("CheckpointDirectory", "--checkpoint-dir"),
        ("ResumeFrom", "--resume"), ("Device", "--device"), ("ValidationEveryEpochs", "--val-every"), ("Seed", "--seed"),
        ("PretrainedWeightsPath", "--backbone/--init-checkpoint"), ("Keep", "--keep"),
    ];

    /// <summary>--threads: 1 up to the cores this process may use.</summary>
    public static void Threads(int? threads)
    {
        int cores = Environment.ProcessorCount;
        if (threads is { } n && (n < 1 || n > cores))
            throw new CliCommon.UsageException(string.Create(CultureInfo.InvariantCulture,
                $"--threads is {n}; it must be in 1..{cores}: this machine gives the process {cores} core(s), and more threads than cores only make libtorch's threads wait for each other."));
    }

    /// <summary>The message of an ArgumentException without the " (Parameter 'X')" that .NET appends.</summary>
    public static string MessageOf(ArgumentException e) =>
        e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;

    /// <summary>An error of <c>MtLoraOptions.Validate</c>, worded with the option names of the command line.</summary>
    public static CliCommon.UsageException OptionsError(ArgumentException e)
    {
        var message = MessageOf(e);
        foreach (var (member, option) in OptionNames)
        {
            message = message.Replace($"MtLoraOptions.{member}: is ", $"{option} is ", StringComparison.Ordinal)
                .Replace($"MtLoraOptions.{member}:", $"{option}:", StringComparison.Ordinal);
            message = Regex.Replace(message, $@"\b{member}\b", option);
        }
        // The network's own messages come wrapped as "MtLoraOptions.Network: ..."; the command line has no such option.
        message = message.Replace("MtLoraOptions.Network: ", "network options: ", StringComparison.Ordinal);
        return new CliCommon.UsageException(message);
    }

    /// <summary>
    /// An error of <see cref="MtLoraNetworkOptions.Validate"/> (which names JSON keys), worded with the option that set the
    /// value: --shared-rank, --task-rank, --image-size, --tasks, --mode when given, else --config (or the defaults).
    /// </summary>
    public static CliCommon.UsageException NetworkError(ArgumentException e, TrainCommand.Settings s)
    {
        var flags = new List<(string Key, string Option)>();
        if (s.SharedRank is not null) flags.Add(("shared_rank", "--shared-rank"));
        if (s.TaskRank is not null) flags.Add(("task_rank", "--task-rank"));
        if (s.ImageSize is not null) flags.Add(("img_size", "--image-size"));
        if (s.Tasks is not null) flags.Add(("tasks", "--tasks"));
        if (s.Mode is not null) { flags.Add(("mode", "--mode")); flags.Add(("mtlora_plus", "--mode")); }
        var message = MessageOf(e);
        bool named = false;
        foreach (var (key, option) in flags)
        {
            if (!message.Contains($"'{key}'", StringComparison.Ordinal)) continue;
            message = message.Replace($"'{key}'", option, StringComparison.Ordinal);
            named = true;
        }
        if (named) return new CliCommon.UsageException(message);
        return new CliCommon.UsageException(s.Config is not null ? $"--config '{s.Config}': {message}" : $"network options: {message}");
    }

    /// <summary>--batch-size against the training images: the reference drops the incomplete last batch, so a larger batch never steps.</summary>
    public static void BatchFitsData(int batchSize, long trainImages)
    {
        if (batchSize > trainImages)
            throw new CliCommon.UsageException($"--batch-size is {batchSize}, more than the {trainImages} training images: incomplete batches are dropped (as the reference does), so no step could run.");
    }

    /// <summary>
    /// Refuses a CPU run whose estimated memory (weights, gradients, AdamW moments, and the activations of a batch) is
    /// above the machine's memory, before anything is allocated: the kernel would otherwise kill it, or the whole machine
    /// would swap, far into the run.
    /// </summary>
    public static void MemoryFits(MtLoraNetworkOptions network, ParameterCounts counts, int batchSize, bool cpu)
    {
        if (!cpu) return; // the GPU's memory is not known here; CUDA reports its own out-of-memory error
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long need = EstimateTrainingBytes(network, counts, batchSize);
        if (need > available)
            throw new CliCommon.UsageException(string.Create(CultureInfo.InvariantCulture,
                $"--batch-size {batchSize} at --image-size {network.ImageSize} would need about {OutputPaths.Size(need)} of memory to train ({counts.Total:N0} parameters), but this machine has {OutputPaths.Size(available)}: lower --batch-size or --image-size."));
    }

    /// <summary>An estimate of training memory in bytes (a lower bound in practice; see <see cref="ActivationBytesPerTokenChannel"/>).</summary>
    internal static long EstimateTrainingBytes(MtLoraNetworkOptions network, ParameterCounts counts, int batchSize)
    {
        double tokenChannels = 0;
        foreach (var stage in network.Stages())
            tokenChannels += (double)stage.Depth * stage.Resolution * stage.Resolution * stage.Dim;
        double weights = (counts.Total + 3.0 * counts.Trainable) * sizeof(float); // weights; gradients and two AdamW moments
        double bytes = weights + batchSize * tokenChannels * ActivationBytesPerTokenChannel;
        return bytes >= long.MaxValue ? long.MaxValue : (long)bytes;
    }
}
