namespace OnnxScoring;

/// <summary>
/// MtLoraTransformer's post-processing of the raw network outputs, in plain C# for an application that has only ML.NET
/// and ONNX Runtime: resize each (C, S, S) output to the image's H×W as PyTorch's
/// <c>interpolate(mode=bilinear, align_corners=False)</c> does, then class ids, probabilities or unit normals.
/// </summary>
public static class DenseOutputs
{
    /// <summary>Bilinear resize of (C, inH, inW) planes to (C, outH, outW), half-pixel centres, edges clamped (PyTorch's rule).</summary>
    public static float[] Resize(float[] planes, int channels, int inH, int inW, int outH, int outW)
    {
        if (inH == outH && inW == outW) return planes;
        var (y0, y1, wy) = Taps(inH, outH);
        var (x0, x1, wx) = Taps(inW, outW);
        var output = new float[channels * outH * outW];
        for (int c = 0; c < channels; c++)
        {
            int src = c * inH * inW, dst = c * outH * outW;
            for (int y = 0; y < outH; y++)
            {
                float ly = wy[y], hy = 1f - ly;
                int r0 = src + y0[y] * inW, r1 = src + y1[y] * inW;
                for (int x = 0; x < outW; x++)
                {
                    float lx = wx[x], hx = 1f - lx;
                    output[dst + y * outW + x] =
                        hy * (hx * planes[r0 + x0[x]] + lx * planes[r0 + x1[x]]) +
                        ly * (hx * planes[r1 + x0[x]] + lx * planes[r1 + x1[x]]);
                }
            }
        }
        return output;
    }

    // PyTorch's area_pixel_compute_source_index (align_corners=False): src = max((dst + 0.5)·in/out − 0.5, 0).
    private static (int[] Lo, int[] Hi, float[] Weight) Taps(int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        var lo = new int[outSize];
        var hi = new int[outSize];
        var weight = new float[outSize];
        for (int d = 0; d < outSize; d++)
        {
            float src = Math.Max((d + 0.5f) * scale - 0.5f, 0f);
            int i = (int)src;
            lo[d] = i;
            hi[d] = i < inSize - 1 ? i + 1 : i;
            weight[d] = src - i;
        }
        return (lo, hi, weight);
    }

    /// <summary>The class id of each pixel: argmax over the channels of (C, H, W) logits (the first on ties).</summary>
    public static byte[] ClassMap(float[] logits, int channels, int h, int w)
    {
        int plane = h * w;
        var classes = new byte[plane];
        for (int k = 0; k < plane; k++)
        {
            int best = 0;
            for (int c = 1; c < channels; c++)
                if (logits[c * plane + k] > logits[best * plane + k]) best = c;
            classes[k] = (byte)best;
        }
        return classes;
    }

    /// <summary>Softmax over the channels of (C, H, W) logits: per-class probabilities.</summary>
    public static float[] Softmax(float[] logits, int channels, int h, int w)
    {
        int plane = h * w;
        var p = new float[logits.Length];
        for (int k = 0; k < plane; k++)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < channels; c++) max = Math.Max(max, logits[c * plane + k]);
            float sum = 0;
            for (int c = 0; c < channels; c++) sum += p[c * plane + k] = MathF.Exp(logits[c * plane + k] - max);
            for (int c = 0; c < channels; c++) p[c * plane + k] /= sum;
        }
        return p;
    }

    /// <summary>Saliency probability per pixel: the sigmoid of the (1, H, W) logit.</summary>
    public static float[] Sigmoid(float[] logits) => logits.Select(v => 1f / (1f + MathF.Exp(-v))).ToArray();

    /// <summary>Unit normals: each pixel's (x, y, z) of the (3, H, W) output divided by max(‖v‖, 1e-12).</summary>
    public static float[] Normalize(float[] vectors, int h, int w)
    {
        int plane = h * w;
        var n = new float[vectors.Length];
        for (int k = 0; k < plane; k++)
        {
            float x = vectors[k], y = vectors[plane + k], z = vectors[2 * plane + k];
            float norm = Math.Max(MathF.Sqrt(x * x + y * y + z * z), 1e-12f);
            n[k] = x / norm;
            n[plane + k] = y / norm;
            n[2 * plane + k] = z / norm;
        }
        return n;
    }
}
