using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// The architecture of the multi-task Swin network with MTLoRA adapters: the one source of truth for every
/// architectural hyperparameter. Defaults are the paper's main setting (Swin-T at 448×448, MTLoRA with shared rank 64,
/// task rank 4, scale 4; reference config <c>mtlora_tiny_448_r64_scale4_pertask</c>).
/// </summary>
/// <remarks>
/// JSON form (<see cref="FromJson"/>, <see cref="ToJson"/>) uses the reference's snake_case keys: <c>tasks, embed_dim, depths,
/// num_heads, window_size, img_size, patch_size, mlp_ratio, mode, shared_rank, task_rank, lora_scale, lora_dropout,
/// mtlora_plus, lora_on {qkv, proj, fc1, fc2}, freeze {patch_embed, norm, relative_position_bias, patch_merging},
/// decoder_channels, drop_path_rate</c>. Missing keys take the defaults; unknown keys are errors. <c>shared_rank</c>,
/// <c>task_rank</c>, <c>lora_scale</c> and <c>lora_dropout</c> take a number or a list of 4, one per stage (the reference's
/// <c>R</c>, <c>SHARED_SCALE</c>, <c>DROPOUT</c>); <c>task_rank</c> also an object from task name to a number or such a list
/// (<c>R_PER_TASK</c>), and <c>lora_scale</c> an object with <c>shared</c> and task names (<c>SCALE_PER_TASK</c>); see
/// <see cref="SharedRankPerStage"/> and the members beside it.
/// </remarks>
public sealed partial class MtLoraNetworkOptions
{
    /// <summary>The tasks, in output order. Default: all four in the reference order (semseg, human_parts, sal, normals).</summary>
    public IReadOnlyList<DenseTaskDescriptor> Tasks { get; set; } = DenseTaskDescriptor.Pascal.ToArray();

    /// <summary>Channels of the patch embedding (stage 0). Default 96 (Swin-T).</summary>
    public int EmbedDim { get; set; } = 96;

    /// <summary>Blocks per stage, 4 stages. Default [2, 2, 6, 2] (Swin-T).</summary>
    public IReadOnlyList<int> Depths { get; set; } = [2, 2, 6, 2];

    /// <summary>Attention heads per stage. Default [3, 6, 12, 24] (Swin-T).</summary>
    public IReadOnlyList<int> NumHeads { get; set; } = [3, 6, 12, 24];

    /// <summary>Attention window side. Default 7.</summary>
    public int WindowSize { get; set; } = 7;

    /// <summary>Input image side (square). Default 448. The network accepts exactly this size.</summary>
    public int ImageSize { get; set; } = 448;

    /// <summary>Patch side of the patch embedding. Default 4.</summary>
    public int PatchSize { get; set; } = 4;

    /// <summary>MLP hidden width as a multiple of the block width. Default 4.</summary>
    public double MlpRatio { get; set; } = 4.0;

    /// <summary>What trains and which adapters exist. Default <see cref="NetworkMode.MtLora"/>.</summary>
    public NetworkMode Mode { get; set; } = NetworkMode.MtLora;

    /// <summary>Rank of the shared (task-agnostic) LoRA in every stage, unless <see cref="SharedRankPerStage"/> is set. Default 64.</summary>
    public int SharedRank { get; set; } = 64;

    /// <summary>Rank of each task-specific LoRA in every stage, unless <see cref="TaskRankPerStage"/> or <see cref="TaskRankPerTask"/> says otherwise. Default 4.</summary>
    public int TaskRank { get; set; } = 4;

    /// <summary>LoRA scale: a plain multiplier of every LoRA delta (not alpha/r), shared and task, unless <see cref="LoraScalePerStage"/> or <see cref="TaskScalePerTask"/> says otherwise. Default 4.</summary>
    public double LoraScale { get; set; } = 4.0;

    /// <summary>Dropout on the LoRA input of the shared stream (training only) in every stage, unless <see cref="LoraDropoutPerStage"/> is set. Default 0.05.</summary>
    public double LoraDropout { get; set; } = 0.05;

    /// <summary>MTLoRA+: also put a shared LoRA on the patch-merging reductions, which are then frozen. Default false.</summary>
    public bool MtLoraPlus { get; set; }

    /// <summary>Which block linears carry LoRA. Default all four.</summary>
    public LoraTargets LoraOn { get; set; } = new();

    /// <summary>Backbone parts to freeze in the LoRA modes. Default none.</summary>
    public FrozenParts Freeze { get; set; } = new();

    /// <summary>Channels of the per-task 1×1 downsamplers, one per stage output. Default [18, 36, 72, 144] (HRNet-W18 head).</summary>
    public IReadOnlyList<int> DecoderChannels { get; set; } = [18, 36, 72, 144];

    /// <summary>Stochastic-depth rate of the last block (linear from 0 over all blocks). Default 0.2.</summary>
    public double DropPathRate { get; set; } = 0.2;

    /// <summary>Number of Swin stages (fixed by the architecture).</summary>
    public const int StageCount = 4;

    /// <summary>
    /// The largest <see cref="ImageSize"/> accepted: 2048 px. Activation memory grows with the square of the size: the
    /// reference's Swin-T takes about 1.1 GiB per training image at 448 px (35.1 GiB at batch 32 on the H100 of
    /// eng/benchmarks/README.md), so about 23 GiB per image at 2048 px, and four times that at 4096 px.
    /// </summary>
    public const int MaxImageSize = 2048;

    /// <summary>A deep copy.</summary>
    public MtLoraNetworkOptions Clone()
    {
        var copy = new MtLoraNetworkOptions
        {
            Tasks = Tasks.ToArray(), EmbedDim = EmbedDim, Depths = Depths.ToArray(), NumHeads = NumHeads.ToArray(),
            WindowSize = WindowSize, ImageSize = ImageSize, PatchSize = PatchSize, MlpRatio = MlpRatio, Mode = Mode,
            SharedRank = SharedRank, TaskRank = TaskRank, LoraScale = LoraScale, LoraDropout = LoraDropout,
            MtLoraPlus = MtLoraPlus, LoraOn = LoraOn.Clone(), Freeze = Freeze.Clone(),
            DecoderChannels = DecoderChannels.ToArray(), DropPathRate = DropPathRate,
        };
        CopyPerStageTo(copy);
        return copy;
    }

    /// <summary>Whether the backbone carries LoRA adapters (<see cref="NetworkMode.MtLora"/> or <see cref="NetworkMode.TaskAgnosticOnly"/>).</summary>
    public bool UsesLora => Mode is NetworkMode.MtLora or NetworkMode.TaskAgnosticOnly;

    /// <summary>Whether the last block of each stage carries task-specific LoRA.</summary>
    public bool UsesTaskLora => Mode == NetworkMode.MtLora;

    /// <summary>
    /// Checks every value and the stage geometry.
    /// </summary>
    /// <exception cref="ArgumentException">A value is invalid; the message names the option (by its JSON key) and what was expected.</exception>
    public void Validate()
    {
        if (Tasks is null || Tasks.Count == 0) throw new ArgumentException("'tasks' must list at least one task (semseg, human_parts, sal, normals).");
        DenseTaskDescriptor.Validate(Tasks, "tasks");
        Positive(EmbedDim, "embed_dim");
        FourPositive(Depths, "depths");
        FourPositive(NumHeads, "num_heads");
        FourPositive(DecoderChannels, "decoder_channels");
        Positive(WindowSize, "window_size");
        Positive(ImageSize, "img_size");
        Positive(PatchSize, "patch_size");
        if (!(MlpRatio > 0) || double.IsInfinity(MlpRatio)) throw new ArgumentException($"'mlp_ratio' must be a positive number, got {MlpRatio}.");
        if (!Enum.IsDefined(Mode)) throw new ArgumentException($"'mode' has an unknown value {(int)Mode}.");
        if (SharedRank < 0) throw new ArgumentException($"'shared_rank' must be positive, got {SharedRank}.");
        if (TaskRank < 0) throw new ArgumentException($"'task_rank' must be positive, got {TaskRank}.");
        if (double.IsNaN(LoraScale) || double.IsInfinity(LoraScale)) throw new ArgumentException($"'lora_scale' must be a finite number, got {LoraScale}.");
        if (!(LoraDropout >= 0 && LoraDropout < 1)) throw new ArgumentException($"'lora_dropout' must be in [0, 1), got {LoraDropout}.");
        if (!(DropPathRate >= 0 && DropPathRate < 1)) throw new ArgumentException($"'drop_path_rate' must be in [0, 1), got {DropPathRate}.");
        if (MtLoraPlus && !UsesLora) throw new ArgumentException($"'mtlora_plus' needs a LoRA mode ('mtlora' or 'task_agnostic_only'), but 'mode' is '{ModeName(Mode)}'.");
        if (LoraOn is null) throw new ArgumentException("'lora_on' must not be null.");
        if (Freeze is null) throw new ArgumentException("'freeze' must not be null.");
        ValidatePerStage();
        if (ImageSize > MaxImageSize)
            throw new ArgumentException($"'img_size' {ImageSize} is above the largest supported size {MaxImageSize}: activation memory grows with the square of the size (about 1.1 GiB per training image at 448 px for Swin-T).");

        for (int i = 0; i < StageCount; i++)
        {
            long dim = (long)EmbedDim << i;
            if (dim % NumHeads[i] != 0)
                throw new ArgumentException($"'num_heads'[{i}] = {NumHeads[i]} must divide the stage {i} width embed_dim·2^{i} = {dim}.");
        }
        if (ImageSize % PatchSize != 0)
            throw new ArgumentException($"'img_size' {ImageSize} must be divisible by 'patch_size' {PatchSize}; try {SuggestSizes(PatchSize)}.");
        int res = ImageSize / PatchSize;
        for (int i = 0; i < StageCount; i++)
        {
            if (res < 1)
                throw new ArgumentException($"'img_size' {ImageSize} is too small: stage {i} would have no tokens; try {SuggestSizes(PatchSize * 8 * WindowSize)}.");
            if (res > WindowSize && res % WindowSize != 0)
                throw new ArgumentException(
                    $"stage {i} has a {res}x{res} token grid, which the window {WindowSize} does not divide (the reference has no padding); " +
                    $"'img_size' must be a multiple of patch_size·8·window_size = {PatchSize * 8 * WindowSize}, e.g. {SuggestSizes(PatchSize * 8 * WindowSize)}.");
            if (i < StageCount - 1 && res % 2 != 0)
                throw new ArgumentException(
                    $"stage {i} has a {res}x{res} token grid, which patch merging cannot halve; 'img_size' must be a multiple of patch_size·8 = {PatchSize * 8}, " +
                    $"e.g. {SuggestSizes(PatchSize * 8 * WindowSize)}.");
            if (i < StageCount - 1) res /= 2;
        }
    }

    /// <summary>The resolved per-stage geometry (validates first).</summary>
    public IReadOnlyList<StageGeometry> Stages()
    {
        Validate();
        var stages = new StageGeometry[StageCount];
        int res = ImageSize / PatchSize;
        for (int i = 0; i < StageCount; i++)
        {
            int dim = EmbedDim << i;
            // Reference SwinTransformerBlock rule: a window at least as large as the grid becomes the grid, with no shift.
            bool whole = res <= WindowSize;
            int window = whole ? res : WindowSize;
            int shift = whole ? 0 : WindowSize / 2;
            bool merge = i < StageCount - 1;
            stages[i] = new StageGeometry(i, res, dim, NumHeads[i], Depths[i], window, shift, merge,
                merge ? res / 2 : res, merge ? dim * 2 : dim);
            if (merge) res /= 2;
        }
        return stages;
    }

    private string SuggestSizes(int multiple)
    {
        int lo = Math.Max(multiple, ImageSize / multiple * multiple);
        return $"{lo} or {lo + multiple}";
    }

    private static void Positive(int value, string key)
    {
        if (value <= 0) throw new ArgumentException($"'{key}' must be positive, got {value}.");
    }

    /// <summary>
    /// The width of the narrowest linear that carries a LoRA of this kind (shared, or task-specific), in stage 0 where the
    /// blocks are narrowest: qkv C → 3C, proj C → C, fc1 C → rC, fc2 rC → C, and with MTLoRA+ the patch-merging reduction
    /// 4C → 2C. Task LoRA sits on proj, fc1 and fc2 only (reference <c>models/swin_mtlora.py</c>). Null when no site carries one.
    /// </summary>
    private long? NarrowestLoraWidth(bool taskSitesOnly)
    {
        long c = EmbedDim, hidden = (long)(EmbedDim * MlpRatio);
        var widths = new List<long>();
        if (LoraOn.Qkv && !taskSitesOnly) widths.Add(c);
        if (LoraOn.Proj) widths.Add(c);
        if (LoraOn.Fc1 || LoraOn.Fc2) widths.Add(Math.Min(c, hidden));
        if (MtLoraPlus && !taskSitesOnly) widths.Add(2 * c);
        return widths.Count == 0 ? null : widths.Min();
    }

    // A rank-r delta B·A of an (out × in) layer has rank at most min(in, out): a larger r adds parameters and memory, not expressiveness.
    private static void RankFits(int rank, string key, long? width, int stage)
    {
        if (width is { } w && rank > w)
            throw new ArgumentException($"'{key}' {rank} is larger than the narrowest layer it adapts ({w} features in stage {stage}): a LoRA's rank cannot exceed its layer's width, so use at most {w}.");
    }

    private static void FourPositive(IReadOnlyList<int>? values, string key)
    {
        if (values is null || values.Count != StageCount || values.Any(v => v <= 0))
            throw new ArgumentException($"'{key}' must have {StageCount} positive entries, got [{string.Join(", ", values ?? [])}].");
    }

    internal static string ModeName(NetworkMode mode) => mode switch
    {
        NetworkMode.MtLora => "mtlora",
        NetworkMode.FullFineTune => "full_finetune",
        NetworkMode.DecodersOnly => "decoders_only",
        NetworkMode.TaskAgnosticOnly => "task_agnostic_only",
        _ => mode.ToString(),
    };

    /// <summary>Parses options from JSON text (snake_case keys; missing keys take defaults) and validates them.</summary>
    /// <param name="json">The JSON object.</param>
    /// <param name="source">A name for error messages, usually the file path.</param>
    /// <returns>The options.</returns>
    /// <exception cref="FormatException">Malformed JSON, an unknown key, a value of the wrong type, or an invalid value; the message names the source and the key.</exception>
    public static MtLoraNetworkOptions FromJson(string json, string source = "<json>") => NetworkOptionsJson.Parse(json, source);

    /// <summary>Loads options from a JSON file (see <see cref="FromJson"/>).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The options.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="FormatException">The content is invalid; the message names the file and the key.</exception>
    public static MtLoraNetworkOptions Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"config '{path}' does not exist.", path);
        return NetworkOptionsJson.Parse(File.ReadAllText(path), path);
    }

    /// <summary>The options as an indented JSON object with snake_case keys (every key written).</summary>
    public string ToJson() => ToJsonNode().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>The options as a JSON object node with snake_case keys.</summary>
    public JsonObject ToJsonNode() => NetworkOptionsJson.ToNode(this);
}
