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

    public WindowAttention(int dim, int window, int heads, bool taskLora, MtLoraNetworkOptions o, int stage, Device? device) : base(nameof(WindowAttention))
    {
        _heads = heads;
        _window = window;
        _qkScale = Math.Pow(dim / heads, -0.5).ToScalar();
        bool lora = o.UsesLora;
        _table = nn.Parameter(empty(new long[] { (2 * window - 1) * (2 * window - 1), heads }, device: device));  // (169, nH) for window 7
        SwinInit.TruncNormal(_table);
        _index = WindowOps.RelativePositionIndex(window).to(device ?? CPU);                 // (N, N) int64
        _qkv = TaskLinear.Create(dim, 3 * dim, true, lora && o.LoraOn.Qkv, false, o, stage, device);
        _proj = TaskLinear.Create(dim, dim, true, lora && o.LoraOn.Proj, taskLora && o.LoraOn.Proj, o, stage, device);
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
    /// <remarks>
    /// The scores are <c>softmax(q·kᵀ·hd^-0.5 + bias + mask)</c> (§1.3.6). They go through libtorch's
    /// <c>scaled_dot_product_attention</c> with the bias and the shift mask as one additive mask (its default scale is the
    /// reference's hd^-0.5): a fused kernel on the CPU in inference and on CUDA, the same maths without it elsewhere. The one
    /// exception is training on the CPU with a trainable bias table: libtorch's fused CPU kernel has no gradient for the mask,
    /// so its dispatcher would fall back to an unfused path that first copies the mask out for every image; the explicit
    /// formula below broadcasts it instead.
    /// </remarks>
    public (Tensor Shared, Dictionary<string, Tensor>? Tasks) Forward(Tensor x, Tensor biasMask)
    {
        long bw = x.shape[0], n = x.shape[1], c = x.shape[2];
        var (qkv, _) = TaskLinear.Apply(_qkv, ProfileRegions.Enter("attention.qkv", x), null);   // (B·nW, N, 3C)
        qkv = ProfileRegions.Enter("attention.core", qkv);
        // unbind, not three selects: its backward stacks the three gradients once, where each select's would fill a
        // zero tensor of the whole qkv size and the three would then be added.
        var parts = qkv.reshape(bw, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4).unbind(0);   // 3 × (B·nW, nH, N, hd) views
        var q = parts[0];
        var k = parts[1];
        var v = parts[2];
        Tensor a;                                                                               // (B·nW, nH, N, hd)
        if (biasMask.requires_grad && is_grad_enabled() && x.device_type == DeviceType.CPU)
        {
            var attn = q.mul(_qkScale).matmul(k.transpose(-2, -1));                            // (B·nW, nH, N, N)
            if (biasMask.dim() == 4)
            {
                long nW = biasMask.shape[0];
                attn = attn.view(bw / nW, nW, _heads, n, n).add(biasMask.unsqueeze(0), TorchScalars.One).view(bw, _heads, n, n);
            }
            else
            {
                attn = attn.add(biasMask.unsqueeze(0), TorchScalars.One);
            }
            a = attn.softmax(-1).matmul(v);
        }
        else
        {
            // A 4-D mask that broadcasts over the query batch: (1, nH, N, N), or per window (B·nW, nH, N, N).
            var mask = biasMask.dim() == 4
                ? biasMask.unsqueeze(0).expand(bw / biasMask.shape[0], -1, -1, -1, -1).reshape(bw, _heads, n, n)
                : biasMask.unsqueeze(0);
            a = nn.functional.scaled_dot_product_attention(q, k, v, mask);
        }
        a = a.transpose(1, 2).reshape(bw, n, c);                                                // (B·nW, N, C)
        return TaskLinear.Apply(_proj, ProfileRegions.Enter("attention.proj", a), null);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkScale.Dispose();
        base.Dispose(disposing);
    }
}
