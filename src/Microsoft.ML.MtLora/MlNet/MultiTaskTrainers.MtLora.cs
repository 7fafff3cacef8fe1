using Microsoft.ML.MtLora.Modeling;

namespace Microsoft.ML.MtLora;

public sealed partial class MultiTaskTrainers
{
    /// <summary>
    /// The MTLoRA trainer (Agiza et al., CVPR 2024): fine-tunes a Swin Transformer for several dense tasks at once with
    /// shared (task-agnostic) and task-specific low-rank adapters, and returns an <see cref="MtLoraTransformer"/>.
    /// </summary>
    /// <param name="options">All settings; the defaults are the paper's main setting (see <see cref="MtLoraOptions"/>).</param>
    /// <returns>The estimator.</returns>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public MtLoraEstimator MtLora(MtLoraOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new MtLoraEstimator(Context, options);
    }

    /// <summary>
    /// The MTLoRA trainer with the common settings; everything else takes the paper's defaults (Swin-T 448, ranks 64/4,
    /// loss weights 1/2/5/10, AdamW 0.05, warmup 20 epochs, clip 5, the reference augmentation).
    /// </summary>
    /// <param name="pretrainedWeightsPath">A Microsoft Swin ImageNet checkpoint (e.g. <c>swin_tiny_patch4_window7_224.pth</c>) or an
    /// MTLoRA checkpoint to start from; null to start from random weights.</param>
    /// <param name="tasks">The tasks to learn; null for all four (semantic segmentation, human parts, saliency, surface normals).</param>
    /// <param name="imageColumnName">The image column (<c>MLImage</c>). Default <c>Image</c>.</param>
    /// <param name="epochs">Training epochs. Default 300. The warmup is 20 epochs, or epochs − 1 when that is shorter.</param>
    /// <param name="batchSize">Images per step; the learning rate follows the reference's linear scaling. Default 32.</param>
    /// <param name="device"><c>cpu</c>, <c>cuda</c>, <c>cuda:N</c> or <c>auto</c>. Default <c>auto</c>.</param>
    /// <returns>The estimator.</returns>
    /// <exception cref="ArgumentException">An argument is invalid; the message names it.</exception>
    public MtLoraEstimator MtLora(
        string? pretrainedWeightsPath = null,
        IEnumerable<DenseTaskDescriptor>? tasks = null,
        string imageColumnName = MtLoraColumnNames.Image,
        int epochs = 300,
        int batchSize = 32,
        string device = "auto")
    {
        var network = new MtLoraNetworkOptions();
        if (tasks is not null) network.Tasks = tasks.Distinct().ToArray();
        return MtLora(new MtLoraOptions
        {
            Network = network,
            PretrainedWeightsPath = pretrainedWeightsPath,
            ImageColumnName = imageColumnName,
            Epochs = epochs,
            WarmupEpochs = Math.Min(20, Math.Max(epochs - 1, 0)),
            BatchSize = batchSize,
            Device = device,
        });
    }
}
