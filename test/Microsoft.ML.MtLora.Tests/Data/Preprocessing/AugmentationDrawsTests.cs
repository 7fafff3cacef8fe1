using Microsoft.ML.MtLora.Data.Preprocessing;
using Microsoft.ML.MtLora.Tests.MlNet;

namespace Microsoft.ML.MtLora.Tests.Data.Preprocessing;

/// <summary>
/// <see cref="AugmentationDraws"/>: the reference's PASCAL and NYUD draws (data/mtl_ds.py get_transformations,
/// data/custom_transforms.py ScaleNRotate), user ranges and lists, and the batch pipeline applying them.
/// </summary>
public class AugmentationDrawsTests
{
    [Fact]
    public void Pascal_draws_are_the_earlier_formula_bit_for_bit()
    {
        // The formula AugmentationDraw.For used before the draws became an option, written out: flip, 40·U − 20, 0.5·U − 0.25 + 1.
        for (int k = 0; k < 500; k++)
        {
            var rng = new SplitMix64(SplitMix64.Combine(0x5EED_A06u, 4u, 2u, (ulong)k));
            bool flip = rng.NextDouble() < 0.5;
            double angle = 40.0 * rng.NextDouble() - 20.0;
            double scale = 0.5 * rng.NextDouble() - 0.25 + 1.0;
            var draw = AugmentationDraws.PascalContext.Draw(4, 2, k);
            Assert.Equal(flip, draw.Flip);
            Assert.Equal(BitConverter.DoubleToInt64Bits(angle), BitConverter.DoubleToInt64Bits(draw.AngleDegrees));
            Assert.Equal(BitConverter.DoubleToInt64Bits(scale), BitConverter.DoubleToInt64Bits(draw.Scale));
            Assert.Equal(draw, AugmentationDraw.For(4, 2, k));
        }
    }

    [Fact]
    public void Nyud_draws_no_rotation_and_each_scale_a_third_of_the_time()
    {
        const int n = 30_000;
        var draws = Enumerable.Range(0, n).Select(k => AugmentationDraws.Nyud.Draw(5, 3, k)).ToArray();
        Assert.All(draws, d => Assert.Equal(0.0, d.AngleDegrees));
        Assert.All(draws, d => Assert.Contains(d.Scale, new[] { 1.0, 1.2, 1.5 }));
        // Binomial(30000, 1/3): standard deviation 82; ±500 is six of them. Flip: Binomial(30000, 1/2), sd 87.
        foreach (var scale in new[] { 1.0, 1.2, 1.5 }) Assert.InRange(draws.Count(d => d.Scale == scale), n / 3 - 500, n / 3 + 500);
        Assert.InRange(draws.Count(d => d.Flip), n / 2 - 500, n / 2 + 500);
        // Scale independent of the flip: each scale about half flipped.
        foreach (var scale in new[] { 1.0, 1.2, 1.5 })
        {
            var withScale = draws.Where(d => d.Scale == scale).ToArray();
            Assert.InRange(withScale.Count(d => d.Flip), withScale.Length / 2 - 400, withScale.Length / 2 + 400);
        }
        // Deterministic per (seed, epoch, index), and the three change the draws.
        Assert.Equal(draws[17], AugmentationDraws.Nyud.Draw(5, 3, 17));
        var other = Enumerable.Range(0, 64).Select(k => AugmentationDraws.Nyud.Draw(5, 3, k)).ToArray();
        Assert.Equal(draws[..64], other);
        Assert.NotEqual(draws[..64], Enumerable.Range(0, 64).Select(k => AugmentationDraws.Nyud.Draw(6, 3, k)));
        Assert.NotEqual(draws[..64], Enumerable.Range(0, 64).Select(k => AugmentationDraws.Nyud.Draw(5, 4, k)));
        Assert.NotEqual(draws[..64], Enumerable.Range(1, 64).Select(k => AugmentationDraws.Nyud.Draw(5, 3, k)));
    }

    [Fact]
    public void User_ranges_and_lists_are_drawn_within_them()
    {
        var uniform = AugmentationDraws.Uniform(10, 30, 1.0, 2.0);
        var draws = Enumerable.Range(0, 4000).Select(k => uniform.Draw(1, 0, k)).ToArray();
        Assert.All(draws, d => Assert.InRange(d.AngleDegrees, 10, 30));
        Assert.All(draws, d => Assert.InRange(d.Scale, 1.0, 2.0));
        Assert.True(draws.Min(d => d.AngleDegrees) < 10.5 && draws.Max(d => d.AngleDegrees) > 29.5);
        Assert.InRange(draws.Average(d => d.Scale), 1.45, 1.55);

        var choice = AugmentationDraws.Choice([-90, 90], [0.5]);
        var picked = Enumerable.Range(0, 4000).Select(k => choice.Draw(1, 0, k)).ToArray();
        Assert.All(picked, d => Assert.Equal(0.5, d.Scale));
        Assert.InRange(picked.Count(d => d.AngleDegrees == 90), 1800, 2200);
        Assert.Equal(4000, picked.Count(d => d.AngleDegrees is 90 or -90));
    }

    [Fact]
    public void Parse_reads_presets_ranges_and_lists_and_writes_them_back()
    {
        Assert.Same(AugmentationDraws.PascalContext, AugmentationDraws.Parse("pascal"));
        Assert.Same(AugmentationDraws.Nyud, AugmentationDraws.Parse(" NYUD "));
        Assert.Equal("rotation=-20..20,scale=0.75..1.25", AugmentationDraws.PascalContext.Describe());
        Assert.Equal("rotation=0,scale=1|1.2|1.5", AugmentationDraws.Nyud.Describe());
        var nyudLike = AugmentationDraws.Parse("rotation=0,scale=1|1.2|1.5");
        Assert.Equal(Enumerable.Range(0, 100).Select(k => AugmentationDraws.Nyud.Draw(0, 0, k)), Enumerable.Range(0, 100).Select(k => nyudLike.Draw(0, 0, k)));
        var pascalLike = AugmentationDraws.Parse("scale=0.75..1.25, rotation=-20..20");
        Assert.Equal(Enumerable.Range(0, 100).Select(k => AugmentationDraw.For(0, 0, k)), Enumerable.Range(0, 100).Select(k => pascalLike.Draw(0, 0, k)));
        var mixed = AugmentationDraws.Parse("rotation=-5..5,scale=1|2");
        Assert.Equal("rotation=-5..5,scale=1|2", mixed.ToString());
        Assert.Null(mixed.AnglesDegrees);
        Assert.Equal([1.0, 2.0], mixed.Scales);
        Assert.Equal("nyud", AugmentationDraws.Nyud.ToString());
    }

    [Fact]
    public void Bad_draws_are_refused_with_what_is_expected()
    {
        Assert.Contains("minimum exceeds the maximum", Assert.Throws<ArgumentException>(() => AugmentationDraws.Uniform(5, -5, 1, 1)).Message);
        Assert.Equal("minScale", Assert.Throws<ArgumentException>(() => AugmentationDraws.Uniform(0, 0, 0, 1)).ParamName);
        Assert.Equal("maxAngleDegrees", Assert.Throws<ArgumentException>(() => AugmentationDraws.Uniform(0, double.NaN, 1, 1)).ParamName);
        Assert.Equal("scales", Assert.Throws<ArgumentException>(() => AugmentationDraws.Choice([0], [])).ParamName);
        Assert.Equal("anglesDegrees", Assert.Throws<ArgumentException>(() => AugmentationDraws.Choice([200], [1])).ParamName);
        Assert.Contains("needs both rotation and scale", Assert.Throws<FormatException>(() => AugmentationDraws.Parse("rotation=0")).Message);
        Assert.Contains("'scale=a|1': 'a' is not a number", Assert.Throws<FormatException>(() => AugmentationDraws.Parse("rotation=0,scale=a|1")).Message);
        Assert.Contains("not in (0, 10]", Assert.Throws<FormatException>(() => AugmentationDraws.Parse("rotation=0,scale=-1..2")).Message);
        Assert.Contains("expected pascal, nyud", Assert.Throws<FormatException>(() => AugmentationDraws.Parse("cityscapes")).Message);

        var options = new MtLoraOptions { AugmentationDraws = null! };
        Assert.StartsWith("MtLoraOptions.AugmentationDraws: is null", Assert.Throws<ArgumentException>(options.Validate).Message);
    }

    [Theory]
    [InlineData(AugmentationGeometry.SinglePass)]
    [InlineData(AugmentationGeometry.ReferenceTwoStep)]
    public void A_nyud_batch_is_the_transform_applied_by_hand_with_the_nyud_draws(AugmentationGeometry geometry)
    {
        var ml = new MLContext(seed: 1);
        using var dir = Fixture.TempDir();
        const int count = 12, width = 10, height = 8, size = 16, seed = 9, epoch = 2;
        var rows = CustomLabelBatchTests.Rows(dir.Path, count, width, height);
        var reader = new DenseBatchReader(CustomLabelBatchTests.View(ml, dir.Path, rows), new DenseBatchReaderOptions
        {
            Tasks = [CustomLabelBatchTests.Defects, CustomLabelBatchTests.Range],
            ImageSize = size,
            BatchSize = 4,
            Augment = true,
            Draws = AugmentationDraws.Nyud,
            Geometry = geometry,
            Seed = seed,
        });
        var scales = new HashSet<double>();
        foreach (var batch in reader.ReadEpoch(epoch))
            using (batch)
            {
                var images = batch.Images.data<float>().ToArray();
                var depth = batch.Targets[CustomLabelBatchTests.Range].data<float>().ToArray();
                for (int i = 0; i < batch.Count; i++)
                {
                    int k = (int)batch.Index * 4 + i;
                    var draw = AugmentationDraws.Nyud.Draw(seed, epoch, k);
                    scales.Add(draw.Scale);
                    // The same sample through SampleTransform by hand: the image's pixels (its BGRA test pattern) as planar RGB.
                    using var image = MtLoraTestModel.Image(width, height, 11 * 100 + k);
                    var pixels = new byte[4 * width * height];
                    MLImagePixels.CopyTo(image, pixels);
                    bool bgra = MLImagePixels.IsBgra(image);
                    var rgb = new byte[3 * width * height];
                    for (int p = 0; p < width * height; p++)
                        for (int c = 0; c < 3; c++) rgb[c * width * height + p] = pixels[4 * p + (bgra ? 2 - c : c)];
                    var expected = SampleHarness.Run(SampleHarness.Sample(width, height, rgb), size, geometry, augment: true, draw);
                    Assert.Equal(expected.Image, images.AsSpan(i * 3 * size * size, 3 * size * size).ToArray());
                    // Depth: nearest source values divided by the drawn scale (reference ScaleNRotate), or the ignore value.
                    float divisor = draw.Warps ? (float)draw.Scale : 1f;
                    var allowed = rows[k].RangeLabel.Select(v => v == 255f ? 255f : v / divisor).Append(255f).ToHashSet();
                    Assert.All(depth.AsSpan(i * size * size, size * size).ToArray(), v => Assert.Contains(v, allowed));
                }
            }
        Assert.True(scales.Count >= 2, $"12 samples drew only the scales {string.Join(", ", scales)}");
    }
}
