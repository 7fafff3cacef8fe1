using System.Numerics;

namespace Microsoft.ML.MtLora.Data.Synthetic;

/// <summary>A surface colour as a function of the pixel position (textures), RGB in [0, 1].</summary>
internal delegate Vector3 Material(float x, float y);

/// <summary>A 2-D region with a surface normal at each covered pixel (camera frame: x right, y up, z towards the camera).</summary>
internal abstract class Shape
{
    /// <summary>Inclusive pixel bounds to scan.</summary>
    public abstract (int X0, int Y0, int X1, int Y1) Bounds { get; }

    /// <summary>Whether the pixel centre (x, y) is covered, and the unit normal there.</summary>
    public abstract bool Hit(float x, float y, out Vector3 normal);

    protected static (int, int, int, int) Box(float x0, float y0, float x1, float y1) =>
        ((int)MathF.Floor(x0), (int)MathF.Floor(y0), (int)MathF.Ceiling(x1), (int)MathF.Ceiling(y1));
}

/// <summary>A capsule (a thick segment; a sphere when both ends coincide) shaded as a cylinder around its axis.</summary>
internal sealed class Capsule(Vector2 a, Vector2 b, float radius) : Shape
{
    public override (int X0, int Y0, int X1, int Y1) Bounds =>
        Box(MathF.Min(a.X, b.X) - radius, MathF.Min(a.Y, b.Y) - radius, MathF.Max(a.X, b.X) + radius, MathF.Max(a.Y, b.Y) + radius);

    public override bool Hit(float x, float y, out Vector3 normal)
    {
        var p = new Vector2(x, y);
        var ab = b - a;
        float len2 = ab.LengthSquared();
        float t = len2 > 0 ? Math.Clamp(Vector2.Dot(p - a, ab) / len2, 0f, 1f) : 0f;
        var offset = (p - (a + t * ab)) / radius;
        float d2 = offset.LengthSquared();
        if (d2 > 1f) { normal = default; return false; }
        // Image y grows downwards; the normal's y grows upwards.
        normal = Vector3.Normalize(new Vector3(offset.X, -offset.Y, MathF.Sqrt(MathF.Max(0f, 1f - d2)) + 0.05f));
        return true;
    }
}

/// <summary>An ellipse shaded as the visible half of an ellipsoid.</summary>
internal sealed class Ellipse(Vector2 centre, float rx, float ry) : Shape
{
    public override (int X0, int Y0, int X1, int Y1) Bounds => Box(centre.X - rx, centre.Y - ry, centre.X + rx, centre.Y + ry);

    public override bool Hit(float x, float y, out Vector3 normal)
    {
        float u = (x - centre.X) / rx, v = (y - centre.Y) / ry;
        float d2 = u * u + v * v;
        if (d2 > 1f) { normal = default; return false; }
        normal = Vector3.Normalize(new Vector3(u, -v, MathF.Sqrt(1f - d2) + 0.05f));
        return true;
    }
}

/// <summary>An axis-aligned rectangle: a flat face with one normal, or (cylinder) a vertical cylinder seen from the front.</summary>
internal sealed class Rect(float x0, float y0, float x1, float y1, Vector3 faceNormal, bool cylinder = false) : Shape
{
    public override (int X0, int Y0, int X1, int Y1) Bounds => Box(x0, y0, x1, y1);

    public override bool Hit(float x, float y, out Vector3 normal)
    {
        if (x < x0 || x >= x1 || y < y0 || y >= y1) { normal = default; return false; }
        if (cylinder)
        {
            float u = Math.Clamp(2f * (x - x0) / (x1 - x0) - 1f, -0.97f, 0.97f);
            normal = Vector3.Normalize(new Vector3(u, 0f, MathF.Sqrt(1f - u * u)));
        }
        else
        {
            normal = faceNormal;
        }
        return true;
    }
}

/// <summary>
/// The per-pixel buffers of one synthetic scene, painted back to front: albedo, normal, VOC class, PASCAL-Context id,
/// owning object and owning part. Everything the annotations say is read from these buffers, so labels follow the pixels.
/// </summary>
internal sealed class SceneCanvas
{
    /// <summary>The direction the light comes from (upper left, in front): shading makes the normals visible.</summary>
    private static readonly Vector3 Light = Vector3.Normalize(new Vector3(-0.35f, 0.55f, 0.76f));

    public SceneCanvas(int width, int height)
    {
        Width = width;
        Height = height;
        int n = width * height;
        Albedo = new Vector3[n];
        Normal = new Vector3[n];
        Emissive = new bool[n];
        Semseg = new byte[n];
        Context = new ushort[n];
        Owner = new int[n];
        Part = new int[n];
        Array.Fill(Owner, -1);
        Array.Fill(Part, -1);
    }

    public int Width { get; }
    public int Height { get; }
    public Vector3[] Albedo { get; }
    public Vector3[] Normal { get; }
    public bool[] Emissive { get; }
    public byte[] Semseg { get; }
    public ushort[] Context { get; }
    public int[] Owner { get; }
    public int[] Part { get; }

    /// <summary>Paints a shape over what is there.</summary>
    /// <param name="shape">The region and its normals.</param>
    /// <param name="material">The albedo.</param>
    /// <param name="voc">VOC class (0..20) for the semantic segmentation.</param>
    /// <param name="context">PASCAL-Context id for LabelMap.</param>
    /// <param name="owner">Object index, or -1 for background.</param>
    /// <param name="part">Global part index, or -1.</param>
    /// <param name="emissive">Whether the surface is not shaded (sky, screens).</param>
    public void Paint(Shape shape, Material material, byte voc, ushort context, int owner, int part, bool emissive = false)
    {
        var (bx0, by0, bx1, by1) = shape.Bounds;
        int x0 = Math.Max(0, bx0), y0 = Math.Max(0, by0), x1 = Math.Min(Width - 1, bx1), y1 = Math.Min(Height - 1, by1);
        for (int y = y0; y <= y1; y++)
        {
            for (int x = x0; x <= x1; x++)
            {
                float px = x + 0.5f, py = y + 0.5f;
                if (!shape.Hit(px, py, out var n)) continue;
                int i = y * Width + x;
                Albedo[i] = material(px, py);
                Normal[i] = n;
                Emissive[i] = emissive;
                Semseg[i] = voc;
                Context[i] = context;
                Owner[i] = owner;
                Part[i] = part;
            }
        }
    }

    /// <summary>The RGB image: albedo × (ambient + diffuse shading from the normal) plus a little sensor noise.</summary>
    public byte[] RenderRgb(Random rng)
    {
        var rgb = new byte[Width * Height * 3];
        for (int i = 0; i < Albedo.Length; i++)
        {
            float shade = Emissive[i] ? 1f : 0.3f + 0.75f * MathF.Max(0f, Vector3.Dot(Normal[i], Light));
            var c = Albedo[i] * shade * 255f;
            rgb[3 * i] = ToByte(c.X + rng.Next(-3, 4));
            rgb[3 * i + 1] = ToByte(c.Y + rng.Next(-3, 4));
            rgb[3 * i + 2] = ToByte(c.Z + rng.Next(-3, 4));
        }
        return rgb;
    }

    /// <summary>The normals as the reference stores them: <c>v = round((n + 1)·255/2)</c>, R = x, G = y, B = z.</summary>
    public byte[] RenderNormals()
    {
        var rgb = new byte[Width * Height * 3];
        for (int i = 0; i < Normal.Length; i++)
        {
            var n = Normal[i];
            rgb[3 * i] = ToByte((n.X + 1f) * 127.5f);
            rgb[3 * i + 1] = ToByte((n.Y + 1f) * 127.5f);
            rgb[3 * i + 2] = ToByte((n.Z + 1f) * 127.5f);
        }
        return rgb;
    }

    private static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
}
