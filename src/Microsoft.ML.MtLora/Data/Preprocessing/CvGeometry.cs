using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.MtLora.Data.Preprocessing;

/// <summary>
/// OpenCV's geometric operations (<c>cv2.resize</c>, <c>cv2.getRotationMatrix2D</c>, <c>cv2.warpAffine</c>) in managed code,
/// reproducing OpenCV's sampling rules rather than PyTorch's, because the reference pre-processes with OpenCV
/// (docs/mtlora-reference.md §6.1). No TorchSharp: the data-loader workers call these on their own threads (see
/// <see cref="DenseBatchReader"/> for why that matters).
/// </summary>
/// <remarks>
/// <para>Images and normals are 4-channel interleaved float32 buffers (R, G, B, unused or x, y, z, unused: one
/// <see cref="Vector128{T}"/> per pixel, so the channels are computed together); class maps are one byte per pixel.
/// Rows are contiguous, row y at <c>y·width</c>.</para>
/// <list type="bullet">
/// <item>Nearest resize: OpenCV's <c>INTER_NEAREST</c> takes source index <c>min(floor(x·src/dst), src−1)</c> (no half-pixel
/// shift), computed in double as OpenCV does (resize.cpp, resizeNN).</item>
/// <item>Bicubic resize: OpenCV's <c>INTER_CUBIC</c> on float data (resize.cpp, resizeGeneric_ with HResizeCubic and
/// VResizeCubic): half-pixel centres, the Keys kernel with a = −0.75 evaluated in float (interpolateCubic), a horizontal
/// pass then a vertical one, replicated border.</item>
/// <item>Affine warp: OpenCV inverts the matrix, maps each destination pixel in 10-bit fixed point, rounds the source
/// position to 1/32 pixel (bicubic) or to the nearest pixel (nearest), and reads 0 for every tap outside the source
/// (<c>BORDER_CONSTANT</c>, value 0); imgwarp.cpp, WarpAffineInvoker and remapBicubic / remapNearest. Reproduced tap by tap,
/// with the float 4×4 weight table OpenCV uses for float images (initInterTab2D).</item>
/// </list>
/// </remarks>
internal static class CvGeometry
{
    private const int AbBits = 10;           // OpenCV's AB_BITS: fixed-point bits of the mapped coordinates
    private const int AbScale = 1 << AbBits;
    internal const int InterBits = 5;        // OpenCV's INTER_BITS: 1/32-pixel interpolation table
    internal const int InterTabSize = 1 << InterBits;
    private const float CubicA = -0.75f;

    /// <summary>The 4×4 bicubic weights for each of the 32×32 fractional positions (y fraction major), as OpenCV's float table.</summary>
    private static readonly float[] CubicTable2D = BuildCubicTable2D();

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

    /// <summary>OpenCV's <c>interpolateCubic(x)</c>: the 4 tap weights at fraction x in [0, 1), in float as OpenCV computes them.</summary>
    public static void CubicWeights(float x, Span<float> w)
    {
        const float a = CubicA;
        float x0 = x + 1, x2 = 1 - x;
        w[0] = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a;
        w[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
        w[2] = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1;
        w[3] = 1f - w[0] - w[1] - w[2];
    }

    /// <summary>OpenCV's nearest source index of each destination index: <c>min(floor(x / (dst/src)), src − 1)</c>.</summary>
    public static int[] NearestIndices(int src, int dst)
    {
        // OpenCV: ifx = 1 / (dst / src); sx = min(floor(x * ifx), src - 1), in double.
        double inv = 1.0 / ((double)dst / src);
        var idx = new int[dst];
        for (int x = 0; x < dst; x++) idx[x] = (int)Math.Min((long)Math.Floor(x * inv), src - 1);
        return idx;
    }

    /// <summary><c>cv2.resize(..., INTER_NEAREST)</c> of a one-byte-per-pixel map.</summary>
    public static void ResizeNearest(ReadOnlySpan<byte> src, int srcWidth, int srcHeight, Span<byte> dst, int width, int height) =>
        ResizeNearest<byte>(src, srcWidth, srcHeight, dst, width, height);

    /// <summary><c>cv2.resize(..., INTER_NEAREST)</c> of a one-value-per-pixel map of any type (e.g. a float depth map).</summary>
    public static void ResizeNearest<T>(ReadOnlySpan<T> src, int srcWidth, int srcHeight, Span<T> dst, int width, int height)
    {
        CheckLength(src, srcWidth * srcHeight, nameof(src));
        CheckLength(dst, width * height, nameof(dst));
        var cols = NearestIndices(srcWidth, width);
        var rows = NearestIndices(srcHeight, height);
        for (int y = 0; y < height; y++)
        {
            var from = src.Slice(rows[y] * srcWidth, srcWidth);
            var to = dst.Slice(y * width, width);
            for (int x = 0; x < width; x++) to[x] = from[cols[x]];
        }
    }

    /// <summary><c>cv2.resize(..., INTER_CUBIC)</c> of a 4-channel float image (replicated border).</summary>
    public static void ResizeCubic(ReadOnlySpan<float> src, int srcWidth, int srcHeight, Span<float> dst, int width, int height)
    {
        CheckLength(src, 4 * srcWidth * srcHeight, nameof(src));
        CheckLength(dst, 4 * width * height, nameof(dst));
        if (srcWidth == width && srcHeight == height)
        {
            src[..dst.Length].CopyTo(dst);
            return;
        }
        var (xofs, alpha) = CubicResizeTable(srcWidth, width);
        var (yofs, beta) = CubicResizeTable(srcHeight, height);
        // Horizontal pass over every source row (OpenCV buffers only the rows it needs; the values are the same).
        var rowsArray = ArrayPool<float>.Shared.Rent(4 * width * srcHeight);
        try
        {
            var rows = MemoryMarshal.Cast<float, Vector128<float>>(rowsArray.AsSpan(0, 4 * width * srcHeight));
            var s = MemoryMarshal.Cast<float, Vector128<float>>(src);
            for (int y = 0; y < srcHeight; y++)
            {
                var srow = s.Slice(y * srcWidth, srcWidth);
                var drow = rows.Slice(y * width, width);
                for (int x = 0; x < width; x++)
                {
                    int sx = xofs[x];
                    // OpenCV clamps each tap into the row (BORDER_REPLICATE) and sums in this order.
                    var v = srow[Math.Clamp(sx - 1, 0, srcWidth - 1)] * alpha[4 * x]
                          + srow[Math.Clamp(sx, 0, srcWidth - 1)] * alpha[4 * x + 1]
                          + srow[Math.Clamp(sx + 1, 0, srcWidth - 1)] * alpha[4 * x + 2]
                          + srow[Math.Clamp(sx + 2, 0, srcWidth - 1)] * alpha[4 * x + 3];
                    drow[x] = v;
                }
            }
            var d = MemoryMarshal.Cast<float, Vector128<float>>(dst);
            for (int y = 0; y < height; y++)
            {
                int sy = yofs[y];
                var r0 = rows.Slice(Math.Clamp(sy - 1, 0, srcHeight - 1) * width, width);
                var r1 = rows.Slice(Math.Clamp(sy, 0, srcHeight - 1) * width, width);
                var r2 = rows.Slice(Math.Clamp(sy + 1, 0, srcHeight - 1) * width, width);
                var r3 = rows.Slice(Math.Clamp(sy + 2, 0, srcHeight - 1) * width, width);
                var b0 = Vector128.Create(beta[4 * y]);
                var b1 = Vector128.Create(beta[4 * y + 1]);
                var b2 = Vector128.Create(beta[4 * y + 2]);
                var b3 = Vector128.Create(beta[4 * y + 3]);
                var drow = d.Slice(y * width, width);
                for (int x = 0; x < width; x++) drow[x] = r0[x] * b0 + r1[x] * b1 + r2[x] * b2 + r3[x] * b3;
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rowsArray);
        }
    }

    /// <summary>Per destination index: the source index of tap 1 and the 4 tap weights (OpenCV's xofs and alpha for INTER_CUBIC).</summary>
    private static (int[] Offsets, float[] Weights) CubicResizeTable(int src, int dst)
    {
        double scale = 1.0 / ((double)dst / src);
        var offsets = new int[dst];
        var weights = new float[4 * dst];
        for (int x = 0; x < dst; x++)
        {
            // OpenCV: fx = (float)((dx + 0.5) * scale_x - 0.5); sx = cvFloor(fx); fx -= sx.
            float f = (float)((x + 0.5) * scale - 0.5);
            int sx = (int)MathF.Floor(f);
            offsets[x] = sx;
            CubicWeights(f - sx, weights.AsSpan(4 * x, 4));
        }
        return (offsets, weights);
    }

    /// <summary>
    /// <c>cv2.warpAffine(map, m, (W, H), flags=INTER_NEAREST)</c> of a one-byte-per-pixel map, constant-0 border; the output
    /// has the input's size.
    /// </summary>
    /// <param name="src">The map, width·height bytes.</param>
    /// <param name="width">Width.</param>
    /// <param name="height">Height.</param>
    /// <param name="m">The forward 2x3 matrix (destination = M · source), as OpenCV takes it without WARP_INVERSE_MAP.</param>
    /// <param name="dst">The output, width·height bytes.</param>
    public static void WarpNearest(ReadOnlySpan<byte> src, int width, int height, double[] m, Span<byte> dst)
    {
        CheckLength(src, width * height, nameof(src));
        CheckLength(dst, width * height, nameof(dst));
        var map = new FixedPointMap(InvertAffine(m), width, nearest: true);
        for (int y = 0; y < height; y++) WarpNearestRow(src, width, height, map, y, mirrored: false, dst.Slice(y * width, width));
    }

    /// <summary>
    /// Row <paramref name="y"/> of <c>cv2.warpAffine(INTER_NEAREST)</c> (see <see cref="WarpNearest"/>); with
    /// <paramref name="mirrored"/>, of the horizontally flipped source (<c>cv2.flip(src, 1)</c> first).
    /// </summary>
    internal static void WarpNearestRow(ReadOnlySpan<byte> src, int width, int height, in FixedPointMap map, int y, bool mirrored, Span<byte> row)
    {
        Span<int> indices = width <= 2048 ? stackalloc int[width] : new int[width];
        WarpNearestRowIndices(width, height, map, y, mirrored, indices);
        for (int x = 0; x < width; x++) row[x] = indices[x] < 0 ? (byte)0 : src[indices[x]];
    }

    /// <summary>The source index (y·width + x) each pixel of a <see cref="WarpNearestRow"/> row reads, or −1 outside the source (constant 0).</summary>
    internal static void WarpNearestRowIndices(int width, int height, in FixedPointMap map, int y, bool mirrored, Span<int> indices)
    {
        var (x0, y0) = map.Row(y);
        for (int x = 0; x < width; x++)
        {
            int sx = (x0 + map.ADelta[x]) >> AbBits, sy = (y0 + map.BDelta[x]) >> AbBits;
            indices[x] = (uint)sx < (uint)width && (uint)sy < (uint)height ? sy * width + (mirrored ? width - 1 - sx : sx) : -1;
        }
    }

    /// <summary>
    /// <c>cv2.warpAffine(image, m, (W, H), flags=INTER_CUBIC)</c> of a 4-channel float image, constant-0 border; the output has
    /// the input's size.
    /// </summary>
    /// <param name="src">The image, 4·width·height floats.</param>
    /// <param name="width">Width.</param>
    /// <param name="height">Height.</param>
    /// <param name="m">The forward 2x3 matrix (destination = M · source).</param>
    /// <param name="dst">The output, 4·width·height floats.</param>
    public static void WarpCubic(ReadOnlySpan<float> src, int width, int height, double[] m, Span<float> dst)
    {
        CheckLength(src, 4 * width * height, nameof(src));
        CheckLength(dst, 4 * width * height, nameof(dst));
        var map = new FixedPointMap(InvertAffine(m), width, nearest: false);
        var s = MemoryMarshal.Cast<float, Vector128<float>>(src);
        var d = MemoryMarshal.Cast<float, Vector128<float>>(dst);
        for (int y = 0; y < height; y++)
        {
            var (x0, y0) = map.Row(y);
            var row = d.Slice(y * width, width);
            for (int x = 0; x < width; x++)
            {
                // Position in 1/32 pixel; then the integer part and the table index, as OpenCV's WarpAffineInvoker does.
                int qx = (x0 + map.ADelta[x]) >> (AbBits - InterBits), qy = (y0 + map.BDelta[x]) >> (AbBits - InterBits);
                row[x] = SampleCubic(s, width, height, qx, qy);
            }
        }
    }

    /// <summary>
    /// Bicubic sample of a 4-channel image at a position given in 1/32 pixel (<paramref name="qx"/>, <paramref name="qy"/>),
    /// constant-0 border: OpenCV's remapBicubic for float data, tap by tap and in its summation order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> SampleCubic(ReadOnlySpan<Vector128<float>> src, int width, int height, int qx, int qy)
    {
        int sx = (qx >> InterBits) - 1, sy = (qy >> InterBits) - 1;
        int table = ((qy & (InterTabSize - 1)) * InterTabSize + (qx & (InterTabSize - 1))) * 16;
        ref float w = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(CubicTable2D), table);
        if ((uint)sx < (uint)Math.Max(width - 3, 0) && (uint)sy < (uint)Math.Max(height - 3, 0))
        {
            // The whole window is inside (0 ≤ sx, sx + 3 < width, same in y), so no bounds checks are needed.
            ref var p = ref Unsafe.Add(ref MemoryMarshal.GetReference(src), sy * width + sx);
            var sum = Row(ref p, ref w);
            sum += Row(ref Unsafe.Add(ref p, width), ref Unsafe.Add(ref w, 4));
            sum += Row(ref Unsafe.Add(ref p, 2 * width), ref Unsafe.Add(ref w, 8));
            sum += Row(ref Unsafe.Add(ref p, 3 * width), ref Unsafe.Add(ref w, 12));
            return sum;
        }
        if (sx >= width || sx + 4 <= 0 || sy >= height || sy + 4 <= 0) return Vector128<float>.Zero;
        var total = Vector128<float>.Zero;
        for (int i = 0; i < 4; i++)
        {
            int yi = sy + i;
            if ((uint)yi >= (uint)height) continue;
            for (int j = 0; j < 4; j++)
            {
                int xj = sx + j;
                if ((uint)xj < (uint)width) total += src[yi * width + xj] * Unsafe.Add(ref w, 4 * i + j);
            }
        }
        return total;
    }

    /// <summary>One row of the 4×4 window: p0·w0 + p1·w1 + p2·w2 + p3·w3, summed left to right as OpenCV does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Row(ref Vector128<float> p, ref float w) =>
        p * w + Unsafe.Add(ref p, 1) * Unsafe.Add(ref w, 1) + Unsafe.Add(ref p, 2) * Unsafe.Add(ref w, 2) + Unsafe.Add(ref p, 3) * Unsafe.Add(ref w, 3);

    /// <summary>OpenCV's fixed-point mapping of an inverse affine matrix: per column adelta/bdelta, per row X0/Y0 (imgwarp.cpp).</summary>
    internal readonly struct FixedPointMap
    {
        private readonly double[] _inv;
        private readonly int _roundDelta;

        /// <param name="inverse">The destination → source matrix (OpenCV's inverted M).</param>
        /// <param name="width">The destination width.</param>
        /// <param name="nearest">Nearest (round to the pixel) or bicubic (round to 1/32 pixel).</param>
        public FixedPointMap(double[] inverse, int width, bool nearest)
        {
            _inv = inverse;
            _roundDelta = nearest ? AbScale / 2 : AbScale / InterTabSize / 2;
            ADelta = new int[width];
            BDelta = new int[width];
            // adelta[x] = saturate_cast<int>(M[0]·x·AB_SCALE): cvRound, i.e. round half to even like Math.Round.
            for (int x = 0; x < width; x++)
            {
                ADelta[x] = (int)Math.Round(inverse[0] * x * AbScale);
                BDelta[x] = (int)Math.Round(inverse[3] * x * AbScale);
            }
        }

        public int[] ADelta { get; }

        public int[] BDelta { get; }

        /// <summary>X0, Y0 of a destination row, round_delta included.</summary>
        public (int X0, int Y0) Row(int y) =>
            ((int)Math.Round((_inv[1] * y + _inv[2]) * AbScale) + _roundDelta,
             (int)Math.Round((_inv[4] * y + _inv[5]) * AbScale) + _roundDelta);
    }

    /// <summary>OpenCV's initInterTab2D for INTER_CUBIC: weight (i, j) of fraction (fy, fx) = tab[fy][i] · tab[fx][j], in float.</summary>
    private static float[] BuildCubicTable2D()
    {
        var tab = new float[InterTabSize * 4];
        for (int i = 0; i < InterTabSize; i++) CubicWeights(1.0f / InterTabSize * i, tab.AsSpan(4 * i, 4));
        var table = new float[InterTabSize * InterTabSize * 16];
        for (int fy = 0; fy < InterTabSize; fy++)
            for (int fx = 0; fx < InterTabSize; fx++)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        table[((fy * InterTabSize + fx) * 4 + i) * 4 + j] = tab[fy * 4 + i] * tab[fx * 4 + j];
        return table;
    }

    private static void CheckLength<T>(ReadOnlySpan<T> span, int expected, string name)
    {
        if (span.Length < expected) throw new ArgumentException($"The buffer holds {span.Length} values; {expected} are needed.", name);
    }

    private static void CheckLength<T>(Span<T> span, int expected, string name) => CheckLength((ReadOnlySpan<T>)span, expected, name);
}
