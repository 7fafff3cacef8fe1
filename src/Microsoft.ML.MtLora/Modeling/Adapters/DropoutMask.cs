using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MtLora.Data.Preprocessing;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Adapters;

/// <summary>
/// Inverted-dropout masks for CPU tensors: each element is 0 with probability p, else 1/(1 − p) (the mask <c>nn.Dropout</c>
/// multiplies by), drawn with a vectorised xoshiro256** generator instead of libtorch's CPU generator.
/// </summary>
/// <remarks>
/// <para>Why: libtorch's CPU <c>bernoulli_</c> and <c>uniform_</c> draw one element at a time from a Mersenne Twister (the
/// vectorised MKL path is taken on Intel processors only), several nanoseconds per element; the LoRA dropout of a Swin-T
/// training step draws about 10 million elements per image at 224 px, a tenth of the step. This generator fills the mask
/// at a fraction of that.</para>
/// <para>Determinism: the generator's seed is one 63-bit draw from torch's CPU generator, so the masks depend only on the
/// torch seed and the order of the calls, as with <c>nn.functional.dropout</c> (the trainer reseeds torch at every step).
/// The drop probability is exact to 2⁻³²: an element is kept when a uniform 32-bit integer is ≥ round(p·2³²).</para>
/// </remarks>
internal static class DropoutMask
{
    /// <summary>A mask of <paramref name="shape"/> on the CPU: 0 with probability <paramref name="p"/>, else 1/(1 − p).</summary>
    /// <param name="shape">The mask's shape.</param>
    /// <param name="p">The drop probability, in [0, 1).</param>
    /// <param name="dtype">The mask's element type (it is drawn in float32 and converted).</param>
    public static Tensor Cpu(long[] shape, double p, ScalarType dtype)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var mask = empty(shape, ScalarType.Float32);
        ulong seed;
        using (var draw = randint(long.MaxValue, [1], ScalarType.Int64)) seed = (ulong)draw.item<long>();
        uint threshold = (uint)Math.Min(Math.Round(p * 4294967296.0), uint.MaxValue);
        float keep = (float)(1.0 / (1.0 - p));
        // Tensor.bytes spans at most int.MaxValue bytes: fill larger masks in views of that size.
        const long chunk = 1L << 28;                                   // elements (1 GiB of float32)
        for (long start = 0; start < count; start += chunk)
        {
            long n = Math.Min(chunk, count - start);
            using var part = mask.view(-1).narrow(0, start, n);
            Fill(MemoryMarshal.Cast<byte, float>(part.bytes), SplitMix64.Combine(seed, (ulong)start), threshold, keep);
        }
        return dtype == ScalarType.Float32 ? mask : mask.to(dtype);
    }

    /// <summary>Writes 0 or <paramref name="keep"/> into every element: 0 when the next 32-bit draw is below <paramref name="threshold"/>.</summary>
    internal static void Fill(Span<float> destination, ulong seed, uint threshold, float keep)
    {
        // Four independent xoshiro256** streams, one per 64-bit lane, each seeded through SplitMix64.
        var sm = new SplitMix64(seed);
        Span<ulong> init = stackalloc ulong[16];
        for (int i = 0; i < init.Length; i++) init[i] = sm.NextUInt64();
        var s0 = Vector256.Create(init[0], init[1], init[2], init[3]);
        var s1 = Vector256.Create(init[4], init[5], init[6], init[7]);
        var s2 = Vector256.Create(init[8], init[9], init[10], init[11]);
        var s3 = Vector256.Create(init[12], init[13], init[14], init[15]);
        var limit = Vector256.Create(threshold);
        var keepValue = Vector256.Create(keep);

        ref float target = ref MemoryMarshal.GetReference(destination);
        int i8 = 0;
        while (i8 < destination.Length)
        {
            // result = rotl(s1·5, 7)·9; then the xoshiro256 state update (×5 and ×9 as shift-adds).
            var m5 = (s1 << 2) + s1;
            var r = (m5 << 7) | (m5 >> 57);
            var result = (r << 3) + r;
            var t = s1 << 17;
            s2 ^= s0;
            s3 ^= s1;
            s1 ^= s2;
            s0 ^= s3;
            s2 ^= t;
            s3 = (s3 << 45) | (s3 >> 19);

            var bits = result.AsUInt32();                             // 8 uniform 32-bit draws
            var values = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(bits, limit).AsSingle(), keepValue, Vector256<float>.Zero);
            if (destination.Length - i8 >= 8)
            {
                values.StoreUnsafe(ref target, (nuint)i8);
            }
            else
            {
                for (int k = 0; i8 + k < destination.Length; k++) destination[i8 + k] = values.GetElement(k);
            }
            i8 += 8;
        }
    }
}
