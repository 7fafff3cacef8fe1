using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// One Swin Transformer block (reference <c>SwinTransformerBlock</c>). The last block of a stage may carry task LoRA:
/// it then returns one output per task beside the shared one (dataflow of §2.7: task residuals start from the shared block
/// input; each stream draws its own DropPath mask).
/// </summary>
internal sealed class SwinBlock : nn.Module
{
    [ComponentName(Name = "norm1")]
    private readonly LayerNorm _norm1;
    [ComponentName(Name = "attn")]
    private readonly WindowAttention _attn;
    [ComponentName(Name = "norm2")]
    private readonly LayerNorm _norm2;
    [ComponentName(Name = "mlp")]
    private readonly SwinMlp _mlp;
    [ComponentName(Name = "attn_mask")]
    private readonly Tensor? _attnMask;
    private readonly int _resolution;
    private readonly int _window;
    private readonly int _shift;
    private readonly double _dropPath;

    public SwinBlock(StageGeometry g, int shift, double dropPath, bool taskLora, MtLoraNetworkOptions o, Device? device) : base(nameof(SwinBlock))
    {
        _resolution = g.Resolution;
        _window = g.Window;
        _shift = shift;
        _dropPath = dropPath;
        _norm1 = SwinInit.LayerNorm(g.Dim, device);
        _attn = new WindowAttention(g.Dim, g.Window, g.Heads, taskLora, o, g.Index, device);
        _norm2 = SwinInit.LayerNorm(g.Dim, device);
        _mlp = new SwinMlp(g.Dim, (int)(g.Dim * o.MlpRatio), taskLora, o, g.Index, device);
        register_module("norm1", _norm1);
        register_module("attn", _attn);
        register_module("norm2", _norm2);
        register_module("mlp", _mlp);
        if (shift > 0)
        {
            _attnMask = WindowOps.ShiftMask(g.Resolution, g.Resolution, g.Window, shift).to(device ?? CPU); // (nW, N, N)
            register_buffer("attn_mask", _attnMask, true);
        }
    }

    public double DropPathRate => _dropPath;

    /// <summary>Runs the block on tokens (B, L, C).</summary>
    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x)
    {
        x = ProfileRegions.Enter("block.norm_window_residual", x);
        long b = x.shape[0], c = x.shape[2];
        var hx = SwinInit.Normalize(_norm1, x).view(b, _resolution, _resolution, c);  // (B, H, W, C)
        if (_shift > 0) hx = hx.roll(new long[] { -_shift, -_shift }, new long[] { 1, 2 });
        var windows = WindowOps.Partition(hx, _window);                 // (B·nW, N, C)

        // Bias and shift mask are combined once per forward and broadcast over the batch.
        var bias = _attn.Bias();                                          // (nH, N, N)
        var biasMask = _attnMask is null ? bias : bias.unsqueeze(0).add(_attnMask.unsqueeze(1), TorchScalars.One); // (nW, nH, N, N)
        var (a, aTasks) = _attn.Forward(windows, biasMask);
        a = ProfileRegions.Enter("block.norm_window_residual", a);

        var x1 = WindowOps.AddDropPath(x, Unwindow(a, b, c), _dropPath, training);  // (B, L, C)
        Dictionary<string, Tensor>? x1Tasks = aTasks?.ToDictionary(
            kv => kv.Key, kv => WindowOps.AddDropPath(x, Unwindow(kv.Value, b, c), _dropPath, training));

        var u = SwinInit.Normalize(_norm2, x1);
        var uTasks = x1Tasks?.ToDictionary(kv => kv.Key, kv => SwinInit.Normalize(_norm2, kv.Value));
        var (m, mTasks) = _mlp.Forward(ProfileRegions.Enter("mlp", u), uTasks);
        m = ProfileRegions.Enter("block.norm_window_residual", m);
        var shared = WindowOps.AddDropPath(x1, m, _dropPath, training);
        if (mTasks is null) return (shared, null);
        var outs = new Dictionary<string, Tensor>(mTasks.Count);
        foreach (var (t, mt) in mTasks)
        {
            // A task stream that branched only in the MLP continues from the shared residual.
            var res = x1Tasks is not null && x1Tasks.TryGetValue(t, out var r) ? r : x1;
            outs[t] = WindowOps.AddDropPath(res, mt, _dropPath, training);
        }
        return (shared, outs);
    }

    private Tensor Unwindow(Tensor windows, long b, long c)
    {
        var y = WindowOps.Reverse(windows, _window, _resolution, _resolution); // (B, H, W, C)
        if (_shift > 0) y = y.roll(new long[] { _shift, _shift }, new long[] { 1, 2 });
        return y.reshape(b, (long)_resolution * _resolution, c);           // (B, L, C)
    }
}
