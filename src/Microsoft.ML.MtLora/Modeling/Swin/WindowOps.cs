using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Swin;

/// <summary>Pure helpers of shifted-window attention (reference §1.3.2–1.3.5).</summary>
internal static class WindowOps
{
    /// <summary>Value added to the logits of token pairs from different shift regions (the reference uses −100, not −inf).</summary>
    public const float MaskValue = -100f;

    /// <summary>(B, H, W, C) → (B·nW, ws·ws, C), windows batch-major, then window row, then window column.</summary>
    public static Tensor Partition(Tensor x, int ws)
    {
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        return x.view(b, h / ws, ws, w / ws, ws, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(-1, ws * ws, c);                                     // (B·nW, N, C)
    }

    /// <summary>Inverse of <see cref="Partition"/>: (B·nW, ws·ws, C) → (B, H, W, C).</summary>
    public static Tensor Reverse(Tensor windows, int ws, int h, int w)
    {
        long c = windows.shape[^1];
        long b = windows.shape[0] / ((h / ws) * (w / ws));
        return windows.view(b, h / ws, w / ws, ws, ws, c)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(b, h, w, c);                                         // (B, H, W, C)
    }

    /// <summary>The <c>relative_position_index</c> buffer: idx(p, q) = (hp − hq + ws − 1)·(2ws − 1) + (wp − wq + ws − 1), shape (N, N) int64.</summary>
    public static Tensor RelativePositionIndex(int ws)
    {
        int n = ws * ws;
        var idx = new long[n * n];
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++)
                idx[p * n + q] = (p / ws - q / ws + ws - 1) * (2 * ws - 1) + (p % ws - q % ws + ws - 1);
        return tensor(idx, new long[] { n, n }, ScalarType.Int64);
    }

    /// <summary>
    /// The shifted-window mask (nW, N, N): 0 for token pairs in the same region of the rolled grid, −100 otherwise.
    /// Regions: rows [0, H−ws), [H−ws, H−shift), [H−shift, H) crossed with the same column slices.
    /// </summary>
    public static Tensor ShiftMask(int h, int w, int ws, int shift)
    {
        static int Region(int v, int size, int ws, int shift) => v < size - ws ? 0 : v < size - shift ? 1 : 2;
        int n = ws * ws, nwh = h / ws, nww = w / ws, nW = nwh * nww;
        var mask = new float[nW * n * n];
        var ids = new int[n];
        for (int wr = 0; wr < nwh; wr++)
            for (int wc = 0; wc < nww; wc++)
            {
                int win = wr * nww + wc;
                for (int i = 0; i < n; i++)
                {
                    int r = wr * ws + i / ws, c = wc * ws + i % ws;
                    ids[i] = Region(r, h, ws, shift) * 3 + Region(c, w, ws, shift);
                }
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        mask[(win * n + i) * n + j] = ids[i] == ids[j] ? 0f : MaskValue;
            }
        return tensor(mask, new long[] { nW, n, n });
    }

    /// <summary>
    /// <c>residual + DropPath(x)</c> (timm DropPath): whole samples of <paramref name="x"/> are zeroed with probability
    /// <paramref name="p"/> and the kept ones scaled by 1/(1−p), a fresh draw per call; one fused <c>addcmul</c> pass.
    /// </summary>
    public static Tensor AddDropPath(Tensor residual, Tensor x, double p, bool training)
    {
        if (p <= 0 || !training) return residual.add(x, TorchScalars.One);
        double keep = 1 - p;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        var mask = empty(shape, x.dtype, x.device).bernoulli_(keep);   // (B, 1, 1)
        if (keep > 0)
        {
            using var keepScalar = keep.ToScalar();
            mask.div_(keepScalar);
        }
        return residual.addcmul(x, mask, TorchScalars.One);
    }
}
