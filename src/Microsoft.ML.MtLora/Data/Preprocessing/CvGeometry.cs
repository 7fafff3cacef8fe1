using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// OpenCV's geometric operations (<c>cv2.resize</c>, <c>cv2.getRotationMatrix2D</c>, <c>cv2.warpAffine</c>, <c>cv2.flip</c>)
/// as tensor operations over (C, H, W) float32 CPU tensors, reproducing OpenCV's sampling rules rather than PyTorch's,
/// because the reference pre-processes with OpenCV.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Nearest resize: OpenCV's <c>INTER_NEAREST</c> takes source index <c>min(floor(x·src/dst), src−1)</c> (no half-pixel
/// shift); the indices are computed in double precision here exactly as OpenCV does.</item>
/// <item>Bicubic resize: OpenCV's <c>INTER_CUBIC</c> on float data (Keys kernel a = −0.75, half-pixel centres, replicated
/// border) is the same computation as PyTorch's <c>interpolate(mode=bicubic, align_corners=False)</c>.</item>
/// <item>Affine warp: OpenCV inverts the matrix, maps each destination pixel in 10-bit fixed point, rounds the source position
/// to 1/32 pixel (bicubic) or to the nearest pixel (nearest), and reads 0 for every tap outside the source
/// (<c>BORDER_CONSTANT</c>, value 0). This is reproduced tap by tap.</item>
/// </list>
/// </remarks>
internal static class CvGeometry
{
    private const int AbBits = 10;           // OpenCV's AB_BITS: fixed-point bits of the mapped coordinates
    private const int InterBits = 5;         // OpenCV's INTER_BITS: 1/32-pixel interpolation table
    private const int InterTabSize = 1 << InterBits;
    private const double CubicA = -0.75;

    /// <summary>Bicubic weights of the 4 taps for each of the 32 fractional positions, as OpenCV's float table.</summary>
    private static readonly float[] CubicTable = BuildCubicTable();

    /// <summary>OpenCV's <c>getRotationMatrix2D(center, angle, scale)</c>: a 2x3 affine matrix, row-major.</summary>
    /// <param name="centerX">Rotation centre x (OpenCV's reference passes w/2).</param>
    /// <param name="centerY">Rotation centre y (h/2).</param>
    /// <param name="angleDegrees">Angle in degrees; positive is counter-clockwise on screen (y down).</param>
    /// <param name="scale">Isotropic scale.</param>
    public static double[] RotationMatrix2D(double centerX, double centerY, double angleDegrees, double scale)
    {
        double angle = angleDegrees * Math.PI / 180.0;
        double alpha = Math.Cos(angle) * scale;
        double beta = Math.Sin(angle) * scale;
        return
        [
            alpha, beta, (1 - alpha) * centerX - beta * centerY,
            -beta, alpha, beta * centerX + (1 - alpha) * centerY,
        ];
    }

    /// <summary>OpenCV's <c>invertAffineTransform</c>.</summary>
    public static double[] InvertAffine(double[] m)
    {
        double d = m[0] * m[4] - m[1] * m[3];
        d = d != 0 ? 1.0 / d : 0;
        double a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
        double b1 = -a11 * m[2] - a12 * m[5];
        double b2 = -a21 * m[2] - a22 * m[5];
        return [a11, a12, b1, a21, a22, b2];
    }

    /// <summary><c>cv2.flip(x, 1)</c>: mirror along the width.</summary>
    /// <param name="input">A (C, H, W) tensor.</param>
    public static Tensor FlipHorizontal(Tensor input) => input.flip(-1);

    /// <summary><c>cv2.resize(..., INTER_NEAREST)</c> of a (C, H, W) tensor to (C, height, width).</summary>
    public static Tensor ResizeNearest(Tensor input, int height, int width)
    {
        long srcH = input.shape[1], srcW = input.shape[2];
        if (srcH == height && srcW == width) return input.alias();
        using var scope = NewDisposeScope();
        using var rows = NearestIndices(srcH, height);
        using var cols = NearestIndices(srcW, width);
        return input.index_select(1, rows).index_select(2, cols).MoveToOuterDisposeScope(); // (C, height, width)
    }

    private static Tensor NearestIndices(long src, int dst)
    {
        // OpenCV: ifx = 1 / (dst / src); sx = min(floor(x * ifx), src - 1), in double.
        double inv = 1.0 / ((double)dst / src);
        var idx = new long[dst];
        for (int x = 0; x < dst; x++) idx[x] = Math.Min((long)Math.Floor(x * inv), src - 1);
        return torch.tensor(idx, ScalarType.Int64);
    }

    /// <summary><c>cv2.resize(..., INTER_CUBIC)</c> of a (C, H, W) float tensor to (C, height, width).</summary>
    public static Tensor ResizeBicubic(Tensor input, int height, int width)
    {
        if (input.shape[1] == height && input.shape[2] == width) return input.alias();
        using var batch = input.unsqueeze(0);                                           // (1, C, H, W)
        using var resized = nn.functional.interpolate(batch, size: [height, width], mode: InterpolationMode.Bicubic, align_corners: false);
        return resized.squeeze(0);                                                      // (C, height, width)
    }

    /// <summary>
    /// <c>cv2.warpAffine(x, m, (W, H), flags=INTER_NEAREST or INTER_CUBIC)</c> with the default constant-0 border,
    /// on a (C, H, W) float tensor; the output keeps the input size.
    /// </summary>
    /// <param name="input">The (C, H, W) float32 tensor.</param>
    /// <param name="m">The forward 2x3 matrix (destination = M · source), as OpenCV takes it without WARP_INVERSE_MAP.</param>
    /// <param name="bicubic">Bicubic (true) or nearest (false).</param>
    public static Tensor WarpAffine(Tensor input, double[] m, bool bicubic)
    {
        using var scope = NewDisposeScope();
        long c = input.shape[0], h = input.shape[1], w = input.shape[2];
        var inv = InvertAffine(m);
        // OpenCV maps in 10-bit fixed point: adelta[x] = round(iM00·x·1024), X0[y] = round((iM01·y + iM02)·1024) + round_delta.
        using var wScalar = w.ToScalar();
        using var hScalar = h.ToScalar();
        var xs = torch.arange(wScalar, ScalarType.Float64);
        var ys = torch.arange(hScalar, ScalarType.Float64);
        double abScale = 1 << AbBits;
        long roundDelta = bicubic ? (1 << AbBits) / InterTabSize / 2 : (1 << AbBits) / 2;
        using var m00 = (inv[0] * abScale).ToScalar();
        using var m10 = (inv[3] * abScale).ToScalar();
        using var m01 = inv[1].ToScalar();
        using var m02 = inv[2].ToScalar();
        using var m11 = inv[4].ToScalar();
        using var m12 = inv[5].ToScalar();
        using var ab = abScale.ToScalar();
        using var delta = roundDelta.ToScalar();
        var adelta = xs.mul(m00).round().to(ScalarType.Int64);                           // (W)
        var bdelta = xs.mul(m10).round().to(ScalarType.Int64);                           // (W)
        var x0 = ys.mul(m01).add(m02).mul(ab).round().to(ScalarType.Int64).add(delta);   // (H)
        var y0 = ys.mul(m11).add(m12).mul(ab).round().to(ScalarType.Int64).add(delta);   // (H)
        var fx = x0.unsqueeze(1) + adelta.unsqueeze(0);                                 // (H, W) fixed point
        var fy = y0.unsqueeze(1) + bdelta.unsqueeze(0);                                 // (H, W)
        var flat = input.reshape(c, h * w);                                             // (C, H*W)

        if (!bicubic)
        {
            var sx = fx.bitwise_right_shift(AbBits);                                     // floor division
            var sy = fy.bitwise_right_shift(AbBits);
            using var lastX = (w - 1).ToScalar();
            using var lastY = (h - 1).ToScalar();
            var inside = sx.ge(TorchScalars.Zero).logical_and(sx.lt(wScalar)).logical_and(sy.ge(TorchScalars.Zero)).logical_and(sy.lt(hScalar)); // (H, W)
            var index = sy.clamp(TorchScalars.Zero, lastY).mul(wScalar).add(sx.clamp(TorchScalars.Zero, lastX)).reshape(-1); // (H*W)
            var gathered = flat.T.contiguous().index_select(0, index).T.reshape(c, h, w); // (C, H, W), gathered pixel-major
            return gathered.mul(inside.unsqueeze(0).to(input.dtype)).MoveToOuterDisposeScope();
        }

        var qx = fx.bitwise_right_shift(AbBits - InterBits);                             // position in 1/32 pixel
        var qy = fy.bitwise_right_shift(AbBits - InterBits);
        // Zero padding of 4 on every side, and the integer position clamped to [−3, size+1]: a 4-tap window that lies
        // wholly outside the source then still lies wholly in the padding, so every tap outside reads 0 (constant border).
        const int pad = 4;
        long pw = w + 2 * pad;
        using var minTap = (-3).ToScalar();
        using var maxX = (w + 1).ToScalar();
        using var maxY = (h + 1).ToScalar();
        using var padScalar = pad.ToScalar();
        using var pwScalar = pw.ToScalar();
        var ix = qx.bitwise_right_shift(InterBits).clamp_(minTap, maxX).reshape(-1);    // (N) integer part, N = H*W
        var iy = qy.bitwise_right_shift(InterBits).clamp_(minTap, maxY).reshape(-1);
        var offsets = new long[16];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) offsets[i * 4 + j] = (i - 1) * pw + (j - 1);
        var first = iy.add(padScalar).mul_(pwScalar).add_(ix).add_(padScalar);                            // (N) padded index of tap (1, 1)
        var taps = first.unsqueeze(1) + torch.tensor(offsets, ScalarType.Int64).unsqueeze(0); // (N, 16)
        var table = torch.tensor(CubicTable, [InterTabSize, 4], ScalarType.Float32);
        var wx = table.index_select(0, qx.bitwise_and(InterTabSize - 1).reshape(-1));     // (N, 4) weights of taps j
        var wy = table.index_select(0, qy.bitwise_and(InterTabSize - 1).reshape(-1));     // (N, 4) weights of taps i
        var weights = wy.unsqueeze(2).mul(wx.unsqueeze(1)).reshape(h * w, 16);            // (N, 16)
        // Pixel-major layout, so that each gathered index moves the C channels of one pixel at once.
        var padded = nn.functional.pad(input.unsqueeze(0), [pad, pad, pad, pad])
            .reshape(c, (h + 2 * pad) * pw).T.contiguous();                                // (padded H*W, C)
        var values = padded.index_select(0, taps.reshape(-1)).reshape(h * w, 16, c);      // (N, 16, C)
        var sampled = values.mul_(weights.unsqueeze(2)).sum(1);                           // (N, C)
        return sampled.T.reshape(c, h, w).contiguous().to(input.dtype).MoveToOuterDisposeScope(); // (C, H, W)
    }

    /// <summary>OpenCV's <c>interpolateCubic</c> at the 32 table positions (float coefficients, a = −0.75).</summary>
    private static float[] BuildCubicTable()
    {
        var table = new float[InterTabSize * 4];
        for (int i = 0; i < InterTabSize; i++)
        {
            float x = 1.0f / InterTabSize * i;
            // OpenCV computes these in float.
            float a = (float)CubicA;
            float x0 = x + 1, x1 = x, x2 = 1 - x;
            table[i * 4 + 0] = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a;
            table[i * 4 + 1] = ((a + 2) * x1 - (a + 3)) * x1 * x1 + 1;
            table[i * 4 + 2] = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1;
            table[i * 4 + 3] = 1f - table[i * 4 + 0] - table[i * 4 + 1] - table[i * 4 + 2];
        }
        return table;
    }
}
