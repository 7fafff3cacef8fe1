namespace Microsoft.ML.MtLora.Onnx;

/// <summary>
/// Token orders that turn Swin's data movement into one <c>Gather</c> over the token axis of (N, L, C) row-major tokens.
/// </summary>
internal static class TokenPermutations
{
    /// <summary>
    /// The cyclic shift by −<paramref name="shift"/> followed by the window partition (§1.3.2–1.3.3), and its inverse.
    /// <c>forward[k]</c> is the row-major token that lands at position k of the window-major order (window row, window
    /// column, then row and column inside the window); <c>inverse</c> undoes it, which is the window reverse followed by
    /// the roll by +<paramref name="shift"/>.
    /// </summary>
    public static (long[] Forward, long[] Inverse) Windows(int resolution, int window, int shift)
    {
        int n = resolution, perSide = n / window;
        var forward = new long[(long)n * n];
        int k = 0;
        for (int wr = 0; wr < perSide; wr++)
            for (int wc = 0; wc < perSide; wc++)
                for (int i = 0; i < window; i++)
                    for (int j = 0; j < window; j++)
                    {
                        // After roll(-shift), position (r, c) holds the token from (r + shift, c + shift) mod n.
                        int r = (wr * window + i + shift) % n, c = (wc * window + j + shift) % n;
                        forward[k++] = (long)r * n + c;
                    }
        var inverse = new long[forward.Length];
        for (int p = 0; p < forward.Length; p++) inverse[forward[p]] = p;
        return (forward, inverse);
    }

    /// <summary>
    /// Patch merging's neighbour order (§1.3.8): for each output token (row-major over the halved grid), the four tokens
    /// x0 = (even row, even col), x1 = (odd, even), x2 = (even, odd), x3 = (odd, odd), so that the gathered (N, L, C)
    /// reshapes to the concatenation (N, L/4, 4C).
    /// </summary>
    public static long[] Merge(int resolution)
    {
        int half = resolution / 2;
        var order = new long[(long)resolution * resolution];
        int k = 0;
        for (int i = 0; i < half; i++)
            for (int j = 0; j < half; j++)
                for (int q = 0; q < 4; q++)
                {
                    int rowParity = q % 2, colParity = q / 2;
                    order[k++] = (long)(2 * i + rowParity) * resolution + 2 * j + colParity;
                }
        return order;
    }
}
