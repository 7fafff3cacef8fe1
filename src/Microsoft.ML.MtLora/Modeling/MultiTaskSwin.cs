using System.Text;
using Microsoft.ML.MtLora.Modeling.Adapters;
using Microsoft.ML.MtLora.Modeling.Decoders;
using Microsoft.ML.MtLora.Modeling.Swin;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling;

/// <summary>
/// The multi-task Swin network of MTLoRA (reference <c>models/swin_mtl.py::MultiTaskSwin</c>): a Swin backbone with MTLoRA
/// adapters, a per-task 1×1 downsampler of the four stage outputs, and a per-task HRNet head whose output is upsampled to the
/// input size.
/// </summary>
/// <remarks>
/// <para>Submodule and parameter names equal the reference state dict (<c>backbone.layers.i.blocks.j.attn.qkv.linear.weight</c>,
/// <c>…proj.lora_tasks_A.semseg</c>, <c>downsampler.semseg.downsample_0.weight</c>, <c>decoders.decoders.semseg.last_layer.1.running_mean</c>, …),
/// so a reference checkpoint loads name for name with <see cref="LoadStateDict"/>.</para>
/// <para>Initialisation follows the reference and draws from TorchSharp's global generator: call <c>torch.manual_seed</c> before
/// construction for reproducible weights.</para>
/// </remarks>
public sealed class MultiTaskSwin : nn.Module<Tensor, Dictionary<string, Tensor>>
{
    private static readonly string[] ClassifierKeys = ["norm.weight", "norm.bias", "head.weight", "head.bias"];

    [ComponentName(Name = "backbone")]

    private readonly SwinBackbone _backbone;
    [ComponentName(Name = "downsampler")]
    private readonly NamedModules<TaskDownsampler> _downsampler;
    [ComponentName(Name = "decoders")]
    private readonly DecoderGroup _decoders;
    private readonly string[] _taskNames;

    /// <summary>Builds the network and applies the trainable policy of its mode.</summary>
    /// <param name="options">The architecture; validated and copied (later changes to it have no effect).</param>
    /// <param name="device">Where to allocate parameters and buffers (default CPU). The <c>meta</c> device builds shapes only
    /// (no storage, no initialisation), which is enough for <see cref="CountParameters"/> and state-dict key listings.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message names the option.</exception>
    public MultiTaskSwin(MtLoraNetworkOptions options, Device? device = null) : base(nameof(MultiTaskSwin))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options.Clone();
        _taskNames = Options.Tasks.Select(t => t.Name).ToArray();
        _backbone = new SwinBackbone(Options, device);
        _downsampler = new NamedModules<TaskDownsampler>();
        foreach (var t in _taskNames) _downsampler.Add(t, new TaskDownsampler(_backbone.Stages, Options.DecoderChannels, device));
        _decoders = new DecoderGroup(Options.Tasks, Options.DecoderChannels, Options.ImageSize, device);
        register_module("backbone", _backbone);
        register_module("downsampler", _downsampler);
        register_module("decoders", _decoders);
        ApplyTrainablePolicy();
    }

    /// <summary>The architecture (a private copy; do not modify).</summary>
    public MtLoraNetworkOptions Options { get; }

    /// <summary>The per-stage geometry (token grid, width, heads, window, shift, output size).</summary>
    public IReadOnlyList<StageGeometry> Stages => _backbone.Stages;

    /// <summary>Reference names of the tasks, in output order.</summary>
    public IReadOnlyList<string> TaskNames => _taskNames;

    /// <summary>Whether the shared LoRA deltas are folded into the base weights (<see cref="MergeLora"/>).</summary>
    public bool IsMerged { get; private set; }

    /// <summary>Runs the network.</summary>
    /// <param name="images">Normalised images (B, 3, S, S), S = <see cref="MtLoraNetworkOptions.ImageSize"/>, float.</param>
    /// <returns>Raw outputs per task reference name: <c>semseg</c> (B, 21, S, S) logits, <c>human_parts</c> (B, 7, S, S) logits,
    /// <c>sal</c> (B, 1, S, S) logit, <c>normals</c> (B, 3, S, S) unnormalised vectors.</returns>
    /// <exception cref="ArgumentException">The input shape or type is wrong.</exception>
    /// <exception cref="InvalidOperationException">The model is merged and in training mode.</exception>
    public override Dictionary<string, Tensor> forward(Tensor images)
    {
        CheckInput(images);
        if (IsMerged && training)
            throw new InvalidOperationException("MultiTaskSwin: LoRA is merged into the weights; call UnmergeLora() before training.");
        var stages = _backbone.Forward(images);
        var outputs = new Dictionary<string, Tensor>(_taskNames.Length);
        foreach (var t in _taskNames)
        {
            // A stage without task outputs (no task LoRA) hands every task its shared output.
            var tokens = stages.Select(s => s.Tasks is not null && s.Tasks.TryGetValue(t, out var x) ? x : s.Shared).ToArray();
            var maps = _downsampler.Get(t).Forward(tokens);
            outputs[t] = _decoders.Forward(t, maps);                     // (B, n_out, S, S)
        }
        return outputs;
    }

    /// <summary>
    /// Runs the backbone only and returns the shared stream of each stage after its patch merging, tokens (B, L_i, C_i) with
    /// L_i = <see cref="StageGeometry.OutputResolution"/>², as the reference's <c>forward_features(return_stages=True)</c> computes it.
    /// </summary>
    /// <param name="images">Normalised images (B, 3, S, S).</param>
    /// <returns>Four tensors, stage 0 to 3.</returns>
    /// <exception cref="ArgumentException">The input shape or type is wrong.</exception>
    public IReadOnlyList<Tensor> ForwardSharedStages(Tensor images)
    {
        CheckInput(images);
        return _backbone.Forward(images).Select(s => s.Shared).ToArray();
    }

    private void CheckInput(Tensor images)
    {
        int s = Options.ImageSize;
        var shape = "(" + string.Join(", ", images.shape) + ")";
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != s || images.shape[3] != s)
            throw new ArgumentException($"MultiTaskSwin expects images of shape (B, 3, {s}, {s}) (img_size {s}), got {shape}.", nameof(images));
        if (!images.is_floating_point())
            throw new ArgumentException($"MultiTaskSwin expects floating-point images, got {images.dtype}.", nameof(images));
    }

    /// <summary>
    /// Sets <c>requires_grad</c> on every parameter for the mode (§3.1–3.2). Called by the constructor; call again after changing flags by hand.
    /// </summary>
    /// <remarks>
    /// MtLora / TaskAgnosticOnly: a backbone parameter trains iff its name contains <c>lora_</c>, <c>patch_embed</c> (unless
    /// <see cref="FrozenParts.PatchEmbed"/>), <c>norm</c> (unless <see cref="FrozenParts.Norm"/>), <c>downsample.reduction</c>
    /// (unless <see cref="FrozenParts.PatchMerging"/> or MTLoRA+), or <c>relative_position_bias_table</c> (unless
    /// <see cref="FrozenParts.RelativePositionBias"/>); the reference's substring rule, so e.g. <c>patch_embed.norm</c> trains
    /// while either of the first two switches is off. FullFineTune: everything trains. DecodersOnly: the backbone is frozen.
    /// Downsamplers and heads always train.
    /// </remarks>
    public void ApplyTrainablePolicy()
    {
        foreach (var (name, p) in named_parameters())
            p.requires_grad = IsTrainable(name);
    }

    internal bool IsTrainable(string name)
    {
        const string prefix = "backbone.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return true;
        var o = Options;
        return o.Mode switch
        {
            NetworkMode.FullFineTune => true,
            NetworkMode.DecodersOnly => false,
            _ => name.Contains("lora_", StringComparison.Ordinal)
                || (!o.Freeze.PatchEmbed && name.Contains("patch_embed", StringComparison.Ordinal))
                || (!o.Freeze.Norm && name.Contains("norm", StringComparison.Ordinal))
                || (!(o.Freeze.PatchMerging || o.MtLoraPlus) && name.Contains("downsample.reduction", StringComparison.Ordinal))
                || (!o.Freeze.RelativePositionBias && name.Contains("relative_position_bias_table", StringComparison.Ordinal)),
        };
    }

    /// <summary>Counts parameters as the reference prints them (§3.3).</summary>
    public ParameterCounts CountParameters()
    {
        long trainable = 0, lora = 0, decoder = 0, total = 0;
        foreach (var (name, p) in named_parameters())
        {
            long n = p.numel();
            total += n;
            if (!name.Contains("backbone", StringComparison.Ordinal)) decoder += n;
            if (!p.requires_grad) continue;
            trainable += n;
            if (name.Contains("lora", StringComparison.Ordinal)) lora += n;
        }
        return new ParameterCounts(trainable, lora, decoder, total);
    }

    /// <summary>The parameters that train under the current policy, with their state-dict names (for an optimizer).</summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableParameters()
        => named_parameters().Where(np => np.parameter.requires_grad).Select(np => (np.name, np.parameter));

    /// <summary>
    /// Loads a full model state dict (e.g. a reference MTLoRA checkpoint's <c>model</c>). Tensors are copied (converted to the
    /// parameter's type and device). <c>attn_mask</c> buffers are rebuilt, never read; <c>relative_position_index</c> is checked
    /// against the model's and not required. Nothing is copied unless every check passes.
    /// </summary>
    /// <param name="stateDict">Tensors by reference name.</param>
    /// <param name="strict">Throw when keys are missing or unexpected (else report them).</param>
    /// <returns>What was loaded, missing, unexpected and ignored.</returns>
    /// <exception cref="InvalidDataException">Strict and keys are missing or unexpected (all listed by name); or a shape differs,
    /// or a relative_position_index differs (always; the message names the key and both shapes).</exception>
    public StateDictLoadReport LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        return Load(state_dict(), stateDict, strict, prefix: "", backbone: false);
    }

    /// <summary>
    /// Loads an ImageNet Swin backbone checkpoint whose keys are already renamed to this backbone's keys (relative to
    /// <c>backbone.</c>, e.g. <c>layers.0.blocks.0.attn.qkv.linear.weight</c>; a <c>backbone.</c> prefix is accepted too).
    /// Missing LoRA tensors are expected and keep their initialisation; classification-only <c>norm.*</c>/<c>head.*</c> and
    /// <c>attn_mask</c> buffers are ignored; <c>relative_position_index</c> is checked.
    /// </summary>
    /// <param name="mappedKeys">Tensors by backbone key.</param>
    /// <param name="strict">Throw when a non-LoRA backbone key is missing or a key is unexpected (else report them).</param>
    /// <returns>What was loaded (names relative to the backbone), missing (non-LoRA only), unexpected and ignored.</returns>
    /// <exception cref="InvalidDataException">As for <see cref="LoadStateDict"/>.</exception>
    public StateDictLoadReport LoadPretrainedBackbone(IReadOnlyDictionary<string, Tensor> mappedKeys, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(mappedKeys);
        var stripped = new Dictionary<string, Tensor>(mappedKeys.Count);
        foreach (var (k, v) in mappedKeys)
            stripped[k.StartsWith("backbone.", StringComparison.Ordinal) ? k["backbone.".Length..] : k] = v;
        return Load(_backbone.state_dict(), stripped, strict, prefix: "backbone.", backbone: true);
    }

    private static StateDictLoadReport Load(Dictionary<string, Tensor> ours, IReadOnlyDictionary<string, Tensor> theirs, bool strict, string prefix, bool backbone)
    {
        static bool IsDerived(string key) => key.EndsWith("attn_mask", StringComparison.Ordinal) || key.EndsWith("relative_position_index", StringComparison.Ordinal);
        var loaded = new List<string>();
        var unexpected = new List<string>();
        var ignored = new List<string>();
        var errors = new List<string>();
        foreach (var (key, src) in theirs)
        {
            if (key.EndsWith("attn_mask", StringComparison.Ordinal)) { ignored.Add(key); continue; }
            if (backbone && ClassifierKeys.Contains(key)) { ignored.Add(key); continue; }
            if (!ours.TryGetValue(key, out var dst)) { unexpected.Add(key); continue; }
            if (!src.shape.SequenceEqual(dst.shape))
            {
                errors.Add($"'{prefix}{key}': checkpoint shape [{string.Join(", ", src.shape)}], model shape [{string.Join(", ", dst.shape)}]");
                continue;
            }
            if (key.EndsWith("relative_position_index", StringComparison.Ordinal))
            {
                if (!src.to(dst.dtype).cpu().eq(dst.cpu()).all().item<bool>())
                    errors.Add($"'{prefix}{key}': relative_position_index differs from the one this window size defines");
                else ignored.Add(key);
                continue;
            }
            loaded.Add(key);
        }
        var missing = ours.Keys.Where(k => !theirs.ContainsKey(k) && !IsDerived(k) && !(backbone && k.Contains("lora_", StringComparison.Ordinal))).ToList();
        if (errors.Count > 0)
            throw new InvalidDataException($"state dict does not fit the model: {string.Join("; ", errors)}.");
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var sb = new StringBuilder("state dict does not match the model");
            if (missing.Count > 0) sb.Append($"; missing {missing.Count} key(s): ").Append(string.Join(", ", missing.Select(k => prefix + k)));
            if (unexpected.Count > 0) sb.Append($"; unexpected {unexpected.Count} key(s): ").Append(string.Join(", ", unexpected));
            throw new InvalidDataException(sb.Append('.').ToString());
        }
        using (no_grad())
        {
            foreach (var key in loaded) ours[key].copy_(theirs[key]);
        }
        return new StateDictLoadReport(loaded.Select(k => prefix + k).ToList(), missing.Select(k => prefix + k).ToList(), unexpected, ignored);
    }

    /// <summary>
    /// Folds every shared LoRA delta <c>s·B·A</c> into its frozen linear weight for inference (see <see cref="MtLoraLinear"/>
    /// for how task outputs stay exact). Requires evaluation mode. No-op when already merged.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is in training mode.</exception>
    public void MergeLora()
    {
        if (training) throw new InvalidOperationException("MultiTaskSwin: merge LoRA only in evaluation mode (call eval() first).");
        if (IsMerged) return;
        foreach (var m in modules().OfType<MtLoraLinear>()) m.Merge();
        IsMerged = true;
    }

    /// <summary>Restores the exact original linear weights saved by <see cref="MergeLora"/>. No-op when not merged.</summary>
    public void UnmergeLora()
    {
        if (!IsMerged) return;
        foreach (var m in modules().OfType<MtLoraLinear>()) m.Unmerge();
        IsMerged = false;
    }
}
