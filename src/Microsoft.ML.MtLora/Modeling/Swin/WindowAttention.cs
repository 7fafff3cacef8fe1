using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>
/// Window multi-head self-attention with relative-position bias (reference <c>WindowAttention</c>, §1.3.5–1.3.6).
/// qkv never carries task LoRA, so all tasks share one attention map; proj may emit one output per task.
/// </summary>
internal sealed class WindowAttention : nn.Module
{
    [ComponentName(Name = "relative_position_bias_table")]
    private readonly Parameter _table;
    [ComponentName(Name = "relative_position_index")]
    private readonly Tensor _index;
    [ComponentName(Name = "qkv")]
    private readonly nn.Module _qkv;
    [ComponentName(Name = "proj")]
    private readonly nn.Module _proj;
    private readonly int _heads;
    private readonly int _window;
    // head_dim^-0.5 as one long-lived Scalar (no implicit Scalar temporaries: see TorchScalars); disposed with the module.
    private readonly Scalar _qkScale;

    public WindowAttention(int dim, int window, int heads, bool taskLora, MtLoraNetworkOptions o, Device? device) : base(nameof(WindowAttention))
    {
        _heads = heads;
        _window = window;
        _qkScale = Math.Pow(dim / heads, -0.5).ToScalar();
        bool lora = o.UsesLora;
        _table = nn.Parameter(empty(new long[] { (2 * window - 1) * (2 * window - 1), heads }, device: device));  // (169, nH) for window 7
        SwinInit.TruncNormal(_table);
        _index = WindowOps.RelativePositionIndex(window).to(device ?? CPU);                 // (N, N) int64
        _qkv = TaskLinear.Create(dim, 3 * dim, true, lora && o.LoraOn.Qkv, false, o, device);
        _proj = TaskLinear.Create(dim, dim, true, lora && o.LoraOn.Proj, taskLora && o.LoraOn.Proj, o, device);
        register_parameter("relative_position_bias_table", _table);
        register_buffer("relative_position_index", _index, true);
        register_module("qkv", _qkv);
        register_module("proj", _proj);
    }

    /// <summary>The relative-position bias (nH, N, N) gathered from the table.</summary>
    public Tensor Bias()
    {
        int n = _window * _window;
        return _table.index_select(0, _index.view(-1))                   // (N·N, nH)
            .view(n, n, _heads).permute(2, 0, 1);                         // (nH, N, N)
    }

    /// <summary>Attention over windows.</summary>
    /// <param name="x">Windows (B·nW, N, C).</param>
    /// <param name="biasMask">Bias plus shift mask, (nW, nH, N, N), or the bias alone (nH, N, N) when the block does not shift.</param>
    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x, Tensor biasMask)
    {
        long bw = x.shape[0], n = x.shape[1], c = x.shape[2];
        var (qkv, _) = TaskLinear.Apply(_qkv, x, null);                 // (B·nW, N, 3C)
        qkv = qkv.reshape(bw, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4); // (3, B·nW, nH, N, hd)
        var q = qkv[0].mul(_qkScale);
        var k = qkv[1];
        var v = qkv[2];
        var attn = q.matmul(k.transpose(-2, -1));                         // (B·nW, nH, N, N)
        if (biasMask.dim() == 4)
        {
            long nW = biasMask.shape[0];
            attn = attn.view(bw / nW, nW, _heads, n, n).add(biasMask.unsqueeze(0)).view(bw, _heads, n, n);
        }
        else
        {
            attn = attn.add(biasMask.unsqueeze(0));
        }
        attn = attn.softmax(-1);
        var a = attn.matmul(v).transpose(1, 2).reshape(bw, n, c);        // (B·nW, N, C)
        return TaskLinear.Apply(_proj, a, null);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkScale.Dispose();
        base.Dispose(disposing);
    }
}
