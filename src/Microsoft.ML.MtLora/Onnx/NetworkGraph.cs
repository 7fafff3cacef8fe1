using Microsoft.ML.MtLora.Modeling;
using Microsoft.ML.MtLora.Modeling.Swin;
using Microsoft.ML.MtLora.Onnx.Protobuf;
using TorchSharp;
using static Microsoft.ML.MtLora.Onnx.OnnxGraph;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// Writes the multi-task Swin network in evaluation mode as an ONNX graph, from the architecture options and a state dict
/// with the reference's names (docs/mtlora-reference.md §0–§2.7), never from the module classes: what the graph computes is
/// read off the options and the weights.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Tokens stay (N, L, C) row-major. The cyclic shift and the window partition (§1.3.2–1.3.3) are one <c>Gather</c> of
/// tokens by a precomputed permutation, and the reverse one <c>Gather</c> by its inverse; patch merging's 2×2 neighbour
/// concatenation (§1.3.8) is a <c>Gather</c> followed by a reshape.</item>
/// <item>Every linear without task adapters has its shared LoRA merged into the frozen weight: <c>W + s·B·A</c> (§2.4, no
/// dropout in evaluation). The linears with task adapters (last block of a stage, §2.5) keep the frozen weight unmerged,
/// because each task output reads <c>W·x + b</c> without the shared delta (§2.7): one full matmul, then the shared and
/// every task delta as rank-r matmuls.</item>
/// <item>The relative-position bias is gathered at export time into a constant (nH, N, N); the shift mask is a constant
/// (nW, 1, N, N) added after it, as the reference adds them.</item>
/// <item>The decoder's BatchNorm (running statistics, evaluation mode) is folded into the 1×1 convolution before it.
/// The per-task 1×1 downsamplers are matmuls on the tokens. Bilinear resizes (align_corners=False) are
/// <c>Resize(linear, pytorch_half_pixel)</c> by integer scale factors.</item>
/// </list>
/// </remarks>
internal sealed class NetworkGraph
{
    /// <summary>The graph input's name.</summary>
    public const string InputName = "input";

    private const float BatchNormEps = 1e-5f;   // §9: BN eps 1e-5
    private const float LayerNormEps = 1e-5f;   // §1.1: LayerNorm eps 1e-5

    private readonly MtLoraNetworkOptions _o;
    private readonly StateDictWeights _w;
    private readonly OnnxGraph _g = new();
    private readonly string[] _tasks;
    private readonly string _sqrt2;
    private readonly string _one;
    private readonly string _half;

    private NetworkGraph(MtLoraNetworkOptions options, StateDictWeights weights)
    {
        _o = options;
        _w = weights;
        _tasks = options.Tasks.Select(t => t.Name).ToArray();
        _sqrt2 = _g.Scalar("gelu_sqrt2", MathF.Sqrt(2f));
        _one = _g.Scalar("gelu_one", 1f);
        _half = _g.Scalar("gelu_half", 0.5f);
    }

    /// <summary>Builds the graph; every state-dict key must be read (else <see cref="NotSupportedException"/>).</summary>
    public static OnnxGraph Build(MtLoraNetworkOptions options, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var weights = new StateDictWeights(stateDict);
        var builder = new NetworkGraph(options, weights);
        using (var scope = NewDisposeScope())
        using (no_grad())
            builder.BuildNetwork();
        weights.ThrowOnUnused();
        return builder._g;
    }

    private void BuildNetwork()
    {
        int s = _o.ImageSize;
        _g.Input(InputName, [null, 3, s, s], "batch");
        var stages = _o.Stages();

        // Patch embedding: Conv p×p/p → (N, C, H/p, W/p) → (N, L, C) → LayerNorm (§1.3.1).
        int p = _o.PatchSize, c0 = _o.EmbedDim;
        var convW = _g.Float("backbone.patch_embed.proj.weight", _w.Floats("backbone.patch_embed.proj.weight", c0, 3, p, p), c0, 3, p, p);
        var convB = _g.Float("backbone.patch_embed.proj.bias", _w.Floats("backbone.patch_embed.proj.bias", c0), c0);
        var x = _g.Node("Conv", "backbone.patch_embed.proj", [InputName, convW, convB], Attr("kernel_shape", new long[] { p, p }), Attr("strides", new long[] { p, p }));
        long l0 = (long)stages[0].Resolution * stages[0].Resolution;
        x = _g.Node("Reshape", "backbone.patch_embed", [x, _g.Int64([0, c0, l0])]);                       // (N, C, L)
        x = _g.Node("Transpose", "backbone.patch_embed", [x], Attr("perm", new long[] { 0, 2, 1 }));      // (N, L, C)
        x = LayerNorm("backbone.patch_embed.norm", x, c0);

        var stageOutputs = new List<(string Shared, Dictionary<string, string>? Tasks)>();
        foreach (var g in stages)
        {
            var (shared, tasks) = Stage(g, x);
            stageOutputs.Add((shared, tasks));
            x = shared;
        }

        for (int t = 0; t < _tasks.Length; t++)
            Decoder(_o.Tasks[t], _tasks[t], stages, stageOutputs.Select(so => so.Tasks is not null && so.Tasks.TryGetValue(_tasks[t], out var v) ? v : so.Shared).ToArray());
    }

    // ---- backbone ----

    private (string Shared, Dictionary<string, string>? Tasks) Stage(StageGeometry g, string x)
    {
        string key = $"backbone.layers.{g.Index}";
        Dictionary<string, string>? tasks = null;
        for (int j = 0; j < g.Depth; j++)
        {
            int shift = j % 2 == 0 ? 0 : g.Shift;
            bool taskLora = _o.UsesTaskLora && j == g.Depth - 1;
            (x, tasks) = Block($"{key}.blocks.{j}", g, shift, taskLora, x);
        }
        if (!g.HasMerging) return (x, tasks);
        var merge = new PatchMerging(this, $"{key}.downsample", g);
        return (merge.Apply(x), tasks?.ToDictionary(kv => kv.Key, kv => merge.Apply(kv.Value)));
    }

    private (string Shared, Dictionary<string, string>? Tasks) Block(string key, StageGeometry g, int shift, bool taskLora, string x)
    {
        int c = g.Dim, n = g.Window * g.Window;
        long l = (long)g.Resolution * g.Resolution;
        var (forward, inverse) = TokenPermutations.Windows(g.Resolution, g.Window, shift);
        if (shift > 0) _w.Skip($"{key}.attn_mask");

        var h = LayerNorm($"{key}.norm1", x, c);
        var windows = _g.Node("Gather", $"{key}.attn", [h, _g.Int64(forward)], Attr("axis", 1L));          // (N, L, C) rolled, window-major
        windows = _g.Node("Reshape", $"{key}.attn", [windows, _g.Int64([-1, n, c])]);                      // (N·nW, N_w, C)
        var a = Attention($"{key}.attn", g, shift, windows);                                                // (N·nW, N_w, C)
        var (pShared, pTasks) = Linear($"{key}.attn.proj", c, c, _o.UsesLora && _o.LoraOn.Proj, taskLora && _o.LoraOn.Proj, a, null);

        string Unwindow(string v)
        {
            var y = _g.Node("Reshape", $"{key}.attn", [v, _g.Int64([-1, l, c])]);                            // (N, L, C) window-major
            return _g.Node("Gather", $"{key}.attn", [y, _g.Int64(inverse)], Attr("axis", 1L));              // (N, L, C) row-major, unrolled
        }
        var x1 = _g.Node("Add", key, [x, Unwindow(pShared)]);
        // Task residuals start from the shared block input (§2.7 step 3).
        var x1Tasks = pTasks?.ToDictionary(kv => kv.Key, kv => _g.Node("Add", $"{key}.{kv.Key}", [x, Unwindow(kv.Value)]));

        var u = LayerNorm($"{key}.norm2", x1, c);
        var uTasks = x1Tasks?.ToDictionary(kv => kv.Key, kv => LayerNorm($"{key}.norm2", kv.Value, c));
        int hidden = (int)(c * _o.MlpRatio);
        var (f1, f1Tasks) = Linear($"{key}.mlp.fc1", c, hidden, _o.UsesLora && _o.LoraOn.Fc1, taskLora && _o.LoraOn.Fc1, u, uTasks);
        var gelu = Gelu($"{key}.mlp", f1);
        var geluTasks = f1Tasks?.ToDictionary(kv => kv.Key, kv => Gelu($"{key}.mlp", kv.Value));
        var (m, mTasks) = Linear($"{key}.mlp.fc2", hidden, c, _o.UsesLora && _o.LoraOn.Fc2, taskLora && _o.LoraOn.Fc2, gelu, geluTasks);

        var shared = _g.Node("Add", key, [x1, m]);
        if (mTasks is null) return (shared, null);
        var outs = new Dictionary<string, string>(mTasks.Count, StringComparer.Ordinal);
        foreach (var (t, mt) in mTasks)
        {
            // A task stream that branched only in the MLP continues from the shared residual.
            var res = x1Tasks is not null && x1Tasks.TryGetValue(t, out var r) ? r : x1;
            outs[t] = _g.Node("Add", $"{key}.{t}", [res, mt]);
        }
        return (shared, outs);
    }

    /// <summary>Window attention with relative-position bias and shift mask (§1.3.5–1.3.6) up to, not including, proj.</summary>
    private string Attention(string key, StageGeometry g, int shift, string windows)
    {
        int c = g.Dim, heads = g.Heads, hd = c / heads, ws = g.Window, n = ws * ws;
        var (qkv, _) = Linear($"{key}.qkv", c, 3 * c, _o.UsesLora && _o.LoraOn.Qkv, false, windows, null);  // (B', N_w, 3C)
        qkv = _g.Node("Reshape", key, [qkv, _g.Int64([-1, n, 3, heads, hd])]);
        qkv = _g.Node("Transpose", key, [qkv], Attr("perm", new long[] { 2, 0, 3, 1, 4 }));                // (3, B', nH, N_w, hd)
        var q = _g.Node("Gather", key, [qkv, _g.Int64([0], scalar: true)], Attr("axis", 0L));             // (B', nH, N_w, hd)
        var k = _g.Node("Gather", key, [qkv, _g.Int64([1], scalar: true)], Attr("axis", 0L));
        var v = _g.Node("Gather", key, [qkv, _g.Int64([2], scalar: true)], Attr("axis", 0L));
        q = _g.Node("Mul", key, [q, _g.Scalar($"{key}.scale", MathF.Pow(hd, -0.5f))]);
        var kt = _g.Node("Transpose", key, [k], Attr("perm", new long[] { 0, 1, 3, 2 }));
        var attn = _g.Node("MatMul", key, [q, kt]);                                                          // (B', nH, N_w, N_w)
        attn = _g.Node("Add", key, [attn, RelativePositionBias(key, ws, heads)]);
        if (shift > 0)
        {
            int nW = g.WindowsPerImage;
            attn = _g.Node("Reshape", key, [attn, _g.Int64([-1, nW, heads, n, n])]);
            attn = _g.Node("Add", key, [attn, ShiftMask(g, shift)]);
            attn = _g.Node("Reshape", key, [attn, _g.Int64([-1, heads, n, n])]);
        }
        attn = _g.Node("Softmax", key, [attn], Attr("axis", -1L));
        var o = _g.Node("MatMul", key, [attn, v]);                                                           // (B', nH, N_w, hd)
        o = _g.Node("Transpose", key, [o], Attr("perm", new long[] { 0, 2, 1, 3 }));
        return _g.Node("Reshape", key, [o, _g.Int64([-1, n, c])]);                                           // (B', N_w, C)
    }

    private string RelativePositionBias(string key, int ws, int heads)
    {
        int n = ws * ws;
        long entries = (2L * ws - 1) * (2L * ws - 1);
        if (_w.Has($"{key}.relative_position_index")) _w.Skip($"{key}.relative_position_index"); // rebuilt, as the model does
        var table = _w.Floats($"{key}.relative_position_bias_table", entries, heads);                       // (T, nH)
        using var indexTensor = WindowOps.RelativePositionIndex(ws);                                         // (N_w, N_w)
        var index = indexTensor.data<long>().ToArray();
        var bias = new float[heads * n * n];                                                                 // (nH, N_w, N_w)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < n * n; i++)
                bias[h * n * n + i] = table[index[i] * heads + h];
        return _g.Float($"{key}.relative_position_bias", bias, heads, n, n);
    }

    private readonly Dictionary<(int Stage, int Shift), string> _masks = [];

    private string ShiftMask(StageGeometry g, int shift)
    {
        if (_masks.TryGetValue((g.Index, shift), out var name)) return name;
        int n = g.Window * g.Window;
        using var mask = WindowOps.ShiftMask(g.Resolution, g.Resolution, g.Window, shift);                  // (nW, N_w, N_w)
        name = _g.Float($"backbone.layers.{g.Index}.shift_mask", StateDictWeights.ToArray(mask), g.WindowsPerImage, 1, n, n);
        _masks[(g.Index, shift)] = name;
        return name;
    }

    /// <summary>
    /// One linear site on a shared input and optional task inputs, as the reference computes it in evaluation mode
    /// (§2.4, §2.7): a plain linear (keys <c>weight</c>, <c>bias</c>), an MTLoRA linear with only the shared adapter
    /// (merged), or one with task adapters (frozen weight unmerged; task outputs omit the shared delta and read their
    /// own input only through their adapter).
    /// </summary>
    private (string Shared, Dictionary<string, string>? Tasks) Linear(string key, int inFeatures, int outFeatures, bool lora, bool taskLora,
        string x, IReadOnlyDictionary<string, string>? xTasks)
    {
        string prefix = lora ? key + ".linear" : key;
        var w = _w.Get($"{prefix}.weight", outFeatures, inFeatures);                                        // (out, in)
        var bias = _w.Floats($"{prefix}.bias", outFeatures);
        if (!lora)
        {
            var plain = Affine(key, w, bias);
            return (plain(x), xTasks?.ToDictionary(kv => kv.Key, kv => plain(kv.Value)));
        }

        int stage = StageOf(key);
        int r = _o.SharedRankAt(stage);
        var a = _w.Get($"{key}.lora_shared_A", r, inFeatures);                                              // (r, in)
        var b = _w.Get($"{key}.lora_shared_B", outFeatures, r);                                             // (out, r)
        using var scale = _o.SharedScaleAt(stage).ToScalar();
        if (!taskLora)
        {
            // As MtLoraLinear.Merge: W + (B·A)·s.
            var merged = Affine(key, w.add(b.matmul(a).mul(scale), TorchScalars.One), bias);
            return (merged(x), xTasks?.ToDictionary(kv => kv.Key, kv => merged(kv.Value)));
        }

        var frozen = Affine(key, w, bias);
        var y0 = frozen(x);                                                                                  // W·x + b
        var shared = _g.Node("Add", key, [y0, LowRank($"{key}.lora_shared", a, b.mul(scale), x)]);
        var outs = new Dictionary<string, string>(_tasks.Length, StringComparer.Ordinal);
        for (int i = 0; i < _tasks.Length; i++)
        {
            string t = _tasks[i];
            int rt = _o.TaskRankAt(stage, _o.Tasks[i]);
            var at = _w.Get($"{key}.lora_tasks_A.{t}", rt, inFeatures);
            var bt = _w.Get($"{key}.lora_tasks_B.{t}", outFeatures, rt);
            var u = xTasks is not null && xTasks.TryGetValue(t, out var xt) ? xt : x;
            using var taskScale = _o.TaskScaleAt(stage, _o.Tasks[i]).ToScalar();
            outs[t] = _g.Node("Add", $"{key}.{t}", [y0, LowRank($"{key}.lora_tasks.{t}", at, bt.mul(taskScale), u)]);
        }
        return (shared, outs);
    }

    /// <summary>The stage index i of a backbone key <c>backbone.layers.{i}.…</c> (its adapters' ranks and scales are the stage's).</summary>
    private static int StageOf(string key)
    {
        const string layers = "backbone.layers.";
        int start = key.IndexOf(layers, StringComparison.Ordinal) + layers.Length;
        int end = key.IndexOf('.', start);
        return int.Parse(key.AsSpan(start, end - start), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>x ↦ x·Wᵀ (+ b) as MatMul (+ Add), with Wᵀ stored once.</summary>
    private Func<string, string> Affine(string key, Tensor weight, float[]? bias)
    {
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        var wt = _g.Float($"{key}.weight_t", StateDictWeights.ToArray(weight.t()), inFeatures, outFeatures);
        var bName = bias is null ? null : _g.Float($"{key}.bias", bias, outFeatures);
        return input =>
        {
            var y = _g.Node("MatMul", key, [input, wt]);
            return bName is null ? y : _g.Node("Add", key, [y, bName]);
        };
    }

    /// <summary>(x·Aᵀ)·(sB)ᵀ: a rank-r delta as two thin matmuls.</summary>
    private string LowRank(string key, Tensor a, Tensor scaledB, string x)
    {
        var at = _g.Float($"{key}_A_t", StateDictWeights.ToArray(a.t()), a.shape[1], a.shape[0]);
        var bt = _g.Float($"{key}_B_t", StateDictWeights.ToArray(scaledB.t()), scaledB.shape[1], scaledB.shape[0]);
        var y = _g.Node("MatMul", key, [x, at]);                                                             // (…, r)
        return _g.Node("MatMul", key, [y, bt]);                                                              // (…, out)
    }

    private string LayerNorm(string key, string x, long dim)
    {
        var scale = _g.Float($"{key}.weight", _w.Floats($"{key}.weight", dim), dim);
        var bias = _g.Float($"{key}.bias", _w.Floats($"{key}.bias", dim), dim);
        return _g.Node("LayerNormalization", key, [x, scale, bias], Attr("axis", -1L), Attr("epsilon", LayerNormEps));
    }

    /// <summary>Exact GELU, 0.5·x·(1 + erf(x/√2)) (§1.1); ONNX Runtime fuses this pattern into one Gelu kernel.</summary>
    private string Gelu(string key, string x)
    {
        var e = _g.Node("Erf", key, [_g.Node("Div", key, [x, _sqrt2])]);
        var y = _g.Node("Mul", key, [x, _g.Node("Add", key, [e, _one])]);
        return _g.Node("Mul", key, [y, _half]);
    }

    /// <summary>Patch merging (§1.3.8): 2×2 neighbours concatenated in the order x0, x1, x2, x3, LayerNorm(4C), reduction 4C → 2C.</summary>
    private sealed class PatchMerging
    {
        private readonly NetworkGraph _n;
        private readonly string _key;
        private readonly StageGeometry _g;
        private readonly long[] _order;
        private readonly Func<string, string> _reduction;
        private readonly string _normScale;
        private readonly string _normBias;

        public PatchMerging(NetworkGraph n, string key, StageGeometry g)
        {
            _n = n;
            _key = key;
            _g = g;
            _order = TokenPermutations.Merge(g.Resolution);
            int c4 = 4 * g.Dim;
            _normScale = n._g.Float($"{key}.norm.weight", n._w.Floats($"{key}.norm.weight", c4), c4);
            _normBias = n._g.Float($"{key}.norm.bias", n._w.Floats($"{key}.norm.bias", c4), c4);
            // The reduction is a plain linear (key reduction.weight), or in MTLoRA+ a shared-only MTLoRA linear (§2.5), no bias.
            _reduction = n.ReductionSite($"{key}.reduction", c4, 2 * g.Dim, n._o.MtLoraPlus && n._o.UsesLora);
        }

        public string Apply(string x)
        {
            long outTokens = (long)(_g.Resolution / 2) * (_g.Resolution / 2);
            var y = _n._g.Node("Gather", _key, [x, _n._g.Int64(_order)], Attr("axis", 1L));                 // (N, L, C) in 2×2 groups
            y = _n._g.Node("Reshape", _key, [y, _n._g.Int64([-1, outTokens, 4 * _g.Dim])]);                  // (N, L/4, 4C)
            y = _n._g.Node("LayerNormalization", $"{_key}.norm", [y, _normScale, _normBias], Attr("axis", -1L), Attr("epsilon", LayerNormEps));
            return _reduction(y);                                                                            // (N, L/4, 2C)
        }
    }

    /// <summary>The patch-merging reduction as a reusable x ↦ y (plain, or MTLoRA+ shared LoRA merged), weights stored once.</summary>
    private Func<string, string> ReductionSite(string key, int inFeatures, int outFeatures, bool lora)
    {
        var w = _w.Get($"{(lora ? key + ".linear" : key)}.weight", outFeatures, inFeatures);
        if (!lora) return Affine(key, w, null);
        int stage = StageOf(key);
        var a = _w.Get($"{key}.lora_shared_A", _o.SharedRankAt(stage), inFeatures);
        var b = _w.Get($"{key}.lora_shared_B", outFeatures, _o.SharedRankAt(stage));
        using var scale = _o.SharedScaleAt(stage).ToScalar();
        return Affine(key, w.add(b.matmul(a).mul(scale), TorchScalars.One), null);
    }

    // ---- decoders ----

    /// <summary>Per-task downsampler (1×1 projections of the stage outputs) and HRNet head (§0, reference models/swin_mtl.py, seg_hrnet.py).</summary>
    private void Decoder(DenseTaskDescriptor task, string name, IReadOnlyList<StageGeometry> stages, string[] tokens)
    {
        var channels = _o.DecoderChannels;
        int r0 = stages[0].OutputResolution;
        var maps = new string[stages.Count];
        for (int k = 0; k < stages.Count; k++)
        {
            var g = stages[k];
            string key = $"downsampler.{name}.downsample_{k}";
            var w = _w.Floats($"{key}.weight", channels[k], g.OutputDim, 1, 1);                              // (ch, C, 1, 1)
            var wt = _g.Float($"{key}.weight_t", Transpose2D(w, channels[k], g.OutputDim), g.OutputDim, channels[k]);
            var y = _g.Node("MatMul", key, [tokens[k], wt]);                                                   // (N, r², ch)
            y = _g.Node("Transpose", key, [y], Attr("perm", new long[] { 0, 2, 1 }));                          // (N, ch, r²)
            y = _g.Node("Reshape", key, [y, _g.Int64([0, channels[k], g.OutputResolution, g.OutputResolution])]); // (N, ch, r, r)
            if (k > 0 && g.OutputResolution != r0) y = Upsample(key, y, r0 / g.OutputResolution);
            maps[k] = y;
        }

        string head = $"decoders.decoders.{name}.last_layer";
        int sum = channels.Sum(), mid = 4 * sum, outputs = task.OutputChannels;
        var cat = _g.Node("Concat", head, maps, Attr("axis", 1L));                                             // (N, Σch, r0, r0)
        var (w0, b0) = FoldBatchNorm(head, mid, sum);
        var h = _g.Node("Conv", $"{head}.0", [cat, _g.Float($"{head}.0.weight_bn", w0, mid, sum, 1, 1), _g.Float($"{head}.0.bias_bn", b0, mid)],
            Attr("kernel_shape", new long[] { 1, 1 }));
        h = _g.Node("Relu", $"{head}.2", [h]);
        var w3 = _g.Float($"{head}.3.weight", _w.Floats($"{head}.3.weight", outputs, mid, 1, 1), outputs, mid, 1, 1);
        var b3 = _g.Float($"{head}.3.bias", _w.Floats($"{head}.3.bias", outputs), outputs);
        h = _g.Node("Conv", $"{head}.3", [h, w3, b3], Attr("kernel_shape", new long[] { 1, 1 }));             // (N, n_out, r0, r0)
        int s = _o.ImageSize;
        _g.NodeTo("Resize", name, [h, "", ResizeScales(s / r0)], ResizeAttributes());                         // (N, n_out, S, S)
        _g.Output(name, [null, outputs, s, s], "batch");
    }

    /// <summary>Conv(270→1080) followed by BatchNorm in evaluation mode, as one conv: W·γ/√(σ²+ε), (b − μ)·γ/√(σ²+ε) + β.</summary>
    private (float[] Weight, float[] Bias) FoldBatchNorm(string head, int mid, int sum)
    {
        var w = _w.Floats($"{head}.0.weight", mid, sum, 1, 1);
        var b = _w.Floats($"{head}.0.bias", mid);
        var gamma = _w.Floats($"{head}.1.weight", mid);
        var beta = _w.Floats($"{head}.1.bias", mid);
        var mean = _w.Floats($"{head}.1.running_mean", mid);
        var variance = _w.Floats($"{head}.1.running_var", mid);
        if (_w.Has($"{head}.1.num_batches_tracked")) _w.Skip($"{head}.1.num_batches_tracked"); // a training counter
        var fw = new float[w.Length];
        var fb = new float[mid];
        for (int o = 0; o < mid; o++)
        {
            double k = gamma[o] / Math.Sqrt(variance[o] + (double)BatchNormEps);
            for (int i = 0; i < sum; i++) fw[o * sum + i] = (float)(w[o * sum + i] * k);
            fb[o] = (float)((b[o] - mean[o]) * k + beta[o]);
        }
        return (fw, fb);
    }

    private string Upsample(string key, string x, int factor) => _g.Node("Resize", key, [x, "", ResizeScales(factor)], ResizeAttributes());

    private readonly Dictionary<int, string> _scales = [];

    private string ResizeScales(int factor)
    {
        if (!_scales.TryGetValue(factor, out var name))
            _scales[factor] = name = _g.Float($"resize_scales_x{factor}", [1f, 1f, factor, factor], 4);
        return name;
    }

    // PyTorch's interpolate(bilinear, align_corners=False): half-pixel centres, edge clamped (§9).
    private static AttributeProto[] ResizeAttributes() =>
        [Attr("mode", "linear"), Attr("coordinate_transformation_mode", "pytorch_half_pixel")];

    private static float[] Transpose2D(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                t[j * rows + i] = m[i * cols + j];
        return t;
    }
}
