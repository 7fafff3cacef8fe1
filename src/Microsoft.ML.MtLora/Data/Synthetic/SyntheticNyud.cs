using System.Globalization;
using System.Text;
using Microsoft.ML.MtLora.Data.Formats;
using Microsoft.ML.MtLora.Data.Nyud;

namespace Microsoft.ML.MtLora.Data.Synthetic;

/// <summary>Options of <see cref="SyntheticNyud.Generate(string, SyntheticNyudOptions)"/>.</summary>
public sealed class SyntheticNyudOptions
{
    /// <summary>Number of training images (listed in <c>gt_sets/train.txt</c>). Default 8.</summary>
    public int TrainCount { get; set; } = 8;

    /// <summary>Number of validation images (listed in <c>gt_sets/val.txt</c>). Default 8.</summary>
    public int ValCount { get; set; } = 8;

    /// <summary>Image width in pixels, 16 to 4096. Default 80 (NYUD's 640×480 aspect, scaled down).</summary>
    public int Width { get; set; } = 80;

    /// <summary>Image height in pixels, 16 to 4096. Default 60.</summary>
    public int Height { get; set; } = 60;

    /// <summary>Seed: the same seed and options give the same files, byte for byte. Default 0.</summary>
    public int Seed { get; set; }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (TrainCount < 0) throw new ArgumentException($"TrainCount is {TrainCount}; expected 0 or more.", nameof(TrainCount));
        if (ValCount < 0) throw new ArgumentException($"ValCount is {ValCount}; expected 0 or more.", nameof(ValCount));
        if ((long)TrainCount + ValCount is 0 or > SyntheticPascal.MaxImages)
            throw new ArgumentException($"TrainCount + ValCount is {(long)TrainCount + ValCount}; expected 1 to {SyntheticPascal.MaxImages}.", nameof(TrainCount));
        if (Width is < 16 or > 4096) throw new ArgumentException($"Width is {Width}; expected 16 to 4096.", nameof(Width));
        if (Height is < 16 or > 4096) throw new ArgumentException($"Height is {Height}; expected 16 to 4096.", nameof(Height));
    }
}

/// <summary>What <see cref="SyntheticNyud.Generate(string, SyntheticNyudOptions)"/> wrote.</summary>
/// <param name="Root">The dataset root, as a full path.</param>
/// <param name="TrainIds">The training ids, in <c>gt_sets/train.txt</c> order.</param>
/// <param name="ValIds">The validation ids, in <c>gt_sets/val.txt</c> order.</param>
/// <param name="Width">Image width in pixels.</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="Seed">The seed used.</param>
public sealed record SyntheticNyudSummary(string Root, IReadOnlyList<string> TrainIds, IReadOnlyList<string> ValIds, int Width, int Height, int Seed);

/// <summary>
/// Writes a small synthetic NYUD-v2 set in the NYUD_MT layout that <see cref="NyudLayout"/> and the reference's
/// <c>data/mtl_ds.py::NYUD_MT</c> read, for tests, demos and smoke runs without the real set.
/// </summary>
/// <remarks>
/// <code>
/// images/&lt;id&gt;.jpg          RGB JPEG
/// segmentation/&lt;id&gt;.png    8-bit grayscale PNG: 0 unlabelled, 1..40 NYU-40 classes
/// depth/&lt;id&gt;.npy           float32 (H, W), metres; 0 where the sensor gave nothing
/// normals/&lt;id&gt;.npy         float32 (H, W, 3), unit vectors
/// edge/&lt;id&gt;.npy            float32 (H, W), 1 on class boundaries, 0 elsewhere
/// gt_sets/{train,val}.txt   one id per line
/// </code>
/// <para>Each image is a room corner: a wall (class 1) above a floor (class 2) seen from 1.5 m, one to three boxes of other
/// classes (3..40) in front, an unlabelled 2-pixel border (as real NYUD frames have), and depth holes (0) on about 3% of the
/// pixels. The colours follow the class and the shading follows the normal, so the tasks are learnable.</para>
/// </remarks>
public static class SyntheticNyud
{
    /// <summary>Generates the dataset. Existing files of the same names are replaced (each file atomically).</summary>
    /// <param name="outDir">The dataset root to create or fill.</param>
    /// <param name="options">Counts, size and seed.</param>
    /// <returns>The ids written.</returns>
    public static SyntheticNyudSummary Generate(string outDir, SyntheticNyudOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(outDir);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var root = Path.GetFullPath(outDir);
        foreach (var sub in new[] { "images", "segmentation", "depth", "normals", "edge", "gt_sets" })
            Directory.CreateDirectory(Path.Combine(root, sub));
        int total = options.TrainCount + options.ValCount;
        var ids = Enumerable.Range(1, total).Select(i => i.ToString("D6", CultureInfo.InvariantCulture)).ToArray();
        for (int i = 0; i < total; i++) WriteSample(root, ids[i], options.Width, options.Height, SyntheticPascal.ImageSeed(options.Seed, i));
        var train = ids[..options.TrainCount];
        var val = ids[options.TrainCount..];
        WriteList(Path.Combine(root, "gt_sets", "train.txt"), train);
        WriteList(Path.Combine(root, "gt_sets", "val.txt"), val);
        return new SyntheticNyudSummary(root, train, val, options.Width, options.Height, options.Seed);
    }

    private static void WriteList(string path, string[] ids)
    {
        var bytes = Encoding.ASCII.GetBytes(string.Concat(ids.Select(id => id + "\n")));
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    private static void WriteSample(string root, string id, int w, int h, int seed)
    {
        var rng = new Random(seed);
        int n = w * h;
        var semseg = new byte[n];
        var depth = new float[n];
        var normals = new float[3 * n];                                  // HWC
        int horizon = h / 3 + rng.Next(h / 3);
        float wallDepth = 3f + 2f * (float)rng.NextDouble();
        const float CameraHeight = 1.5f;
        float focal = 0.9f * w;                                         // pixels
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                // Floor below the horizon, at the depth where the ray from 1.5 m meets it (capped at the wall).
                float floorDepth = y > horizon ? CameraHeight * focal / (y - horizon) : float.PositiveInfinity;
                if (floorDepth < wallDepth)
                {
                    Set(i, 2, floorDepth, 0f, -1f, 0f);
                }
                else
                {
                    Set(i, 1, wallDepth, 0f, 0f, -1f);
                }
            }
        }
        int boxes = 1 + rng.Next(3);
        for (int b = 0; b < boxes; b++)
        {
            byte cls = (byte)(3 + rng.Next(38));
            int bw = w / 6 + rng.Next(w / 3), bh = h / 6 + rng.Next(h / 3);
            int x0 = rng.Next(w - bw), y0 = rng.Next(h - bh);
            float d = 1f + 1.5f * (float)rng.NextDouble();
            // A tilted face: a unit vector facing the camera.
            float nx = (float)(rng.NextDouble() - 0.5), ny = (float)(rng.NextDouble() - 0.5) * 0.5f;
            float norm = MathF.Sqrt(nx * nx + ny * ny + 1f);
            for (int y = y0; y < y0 + bh; y++)
                for (int x = x0; x < x0 + bw; x++)
                    Set(y * w + x, cls, d + 0.002f * (x - x0) * nx, nx / norm, ny / norm, -1f / norm);
        }
        const int Border = 2;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (x < Border || y < Border || x >= w - Border || y >= h - Border) semseg[y * w + x] = 0;
        for (int i = 0; i < n; i++)
            if (rng.NextDouble() < 0.03) depth[i] = 0;

        var edge = new float[n];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                bool boundary = (x + 1 < w && semseg[i + 1] != semseg[i]) || (y + 1 < h && semseg[i + w] != semseg[i]);
                edge[i] = boundary ? 1f : 0f;
            }
        }

        var rgb = new byte[3 * n];
        for (int i = 0; i < n; i++)
        {
            int c = semseg[i];
            // Class colour, lit from the upper left by the normal, dimmed with distance, plus a little noise.
            float light = Math.Clamp(0.35f + 0.65f * (-0.3f * normals[3 * i] + 0.5f * -normals[3 * i + 1] + 0.8f * -normals[3 * i + 2]), 0.1f, 1f);
            float fade = depth[i] > 0 ? 1f / (1f + 0.1f * depth[i]) : 0.9f;
            for (int k = 0; k < 3; k++)
            {
                int baseColour = 40 + (c * (53 + 71 * k) % 200);
                rgb[3 * i + k] = (byte)Math.Clamp((int)(baseColour * light * fade) + rng.Next(-6, 7), 0, 255);
            }
        }

        SyntheticPascal.WriteJpeg(NyudLayout.ImagePath(root, id), w, h, rgb, 92, gray: false);
        IndexedPng.WriteGray(Path.Combine(root, "segmentation", id + ".png"), new IndexedImage(w, h, semseg));
        NpyFile.WriteFloat32(Path.Combine(root, "depth", id + ".npy"), [h, w], depth);
        NpyFile.WriteFloat32(Path.Combine(root, "normals", id + ".npy"), [h, w, 3], normals);
        NpyFile.WriteFloat32(Path.Combine(root, "edge", id + ".npy"), [h, w], edge);

        void Set(int i, byte cls, float d, float nx, float ny, float nz)
        {
            semseg[i] = cls;
            depth[i] = d;
            normals[3 * i] = nx;
            normals[3 * i + 1] = ny;
            normals[3 * i + 2] = nz;
        }
    }
}
