using System.Numerics;

namespace Microsoft.ML.MtLora.Data.Synthetic;

/// <summary>The classes the synthetic scenes use: VOC class index (semseg, Pascal-Part <c>class_ind</c>) and PASCAL-Context id (LabelMap).</summary>
internal static class SyntheticClasses
{
    public const byte VocBackground = 0, VocBottle = 5, VocCar = 7, VocCat = 8, VocChair = 9, VocTable = 11, VocDog = 12,
        VocPerson = 15, VocSofa = 18, VocTv = 20;

    // PASCAL-Context ids (data/db_info/context_classes.json). Wall, floor and every object class here have valid
    // normals (reference Appendix A); sky and grass do not, so the normals mask has something to do.
    public const ushort CtxBottle = 34, CtxCar = 59, CtxCat = 65, CtxChair = 72, CtxDog = 113, CtxFloor = 158, CtxGrass = 187,
        CtxPerson = 284, CtxSky = 360, CtxSofa = 368, CtxTable = 397, CtxTv = 427, CtxWall = 440;

    /// <summary>VOC class → PASCAL-Context id, for the object classes drawn.</summary>
    public static ushort ContextOf(byte voc) => voc switch
    {
        VocBottle => CtxBottle, VocCar => CtxCar, VocCat => CtxCat, VocChair => CtxChair, VocTable => CtxTable,
        VocDog => CtxDog, VocPerson => CtxPerson, VocSofa => CtxSofa, VocTv => CtxTv,
        _ => throw new ArgumentOutOfRangeException(nameof(voc), voc, "Not a class the synthetic scenes draw."),
    };
}

/// <summary>Whether a scene must hold an annotated person, must hold no person, or is drawn at random.</summary>
internal enum PersonPlan
{
    Random,
    AnnotatedPerson,
    NoPerson,
}

/// <summary>One object of a scene, in the order of the Pascal-Part <c>objects</c> array.</summary>
internal sealed class SceneObject(byte voc, bool partsAnnotated)
{
    public byte Voc { get; } = voc;

    /// <summary>Whether the annotation lists the object's parts (persons only); otherwise <c>parts = []</c>.</summary>
    public bool PartsAnnotated { get; } = partsAnnotated;

    /// <summary>(part name, global part index on the canvas), in the order written to the file.</summary>
    public List<(string Name, int Index)> Parts { get; } = [];
}

/// <summary>
/// Composes one synthetic PASCAL-like scene: a background (indoor wall and floor, or outdoor sky and grass) and a few
/// objects standing on the ground, far ones first. Each class has its own shape and texture and every surface is shaded
/// by its normal, so what the labels say can be seen in the image.
/// </summary>
internal sealed class SyntheticScene
{
    private readonly Random _rng;
    private readonly SceneCanvas _canvas;
    private readonly List<SceneObject> _objects = [];
    private int _partCount;

    private static readonly Vector3 FacingCamera = new(0f, 0f, 1f);
    private static readonly Vector3 FacingUp = Vector3.Normalize(new Vector3(0f, 0.8f, 0.6f));

    private SyntheticScene(int width, int height, Random rng)
    {
        _rng = rng;
        _canvas = new SceneCanvas(width, height);
    }

    public SceneCanvas Canvas => _canvas;

    public IReadOnlyList<SceneObject> Objects => _objects;

    public static SyntheticScene Compose(int width, int height, Random rng, PersonPlan plan)
    {
        var scene = new SyntheticScene(width, height, rng);
        scene.Build(plan);
        return scene;
    }

    private float U(float lo, float hi) => lo + (float)_rng.NextDouble() * (hi - lo);

    private T Pick<T>(params T[] items) => items[_rng.Next(items.Length)];

    private void Build(PersonPlan plan)
    {
        int w = _canvas.Width, h = _canvas.Height;
        bool indoor = _rng.NextDouble() < 0.6;
        float horizon = h * U(0.4f, 0.6f);
        DrawBackground(indoor, horizon);

        // What stands in the scene: 1 to 3 objects of the setting's classes, plus the person the plan asks for.
        byte[] classes = indoor
            ? [SyntheticClasses.VocCat, SyntheticClasses.VocDog, SyntheticClasses.VocBottle, SyntheticClasses.VocChair,
               SyntheticClasses.VocSofa, SyntheticClasses.VocTv, SyntheticClasses.VocTable]
            : [SyntheticClasses.VocCar, SyntheticClasses.VocDog, SyntheticClasses.VocCat, SyntheticClasses.VocBottle];
        var wanted = new List<(byte Voc, bool Parts)>();
        int count = 1 + _rng.Next(3);
        for (int i = 0; i < count; i++)
        {
            bool person = plan == PersonPlan.Random && _rng.NextDouble() < 0.35;
            wanted.Add(person ? (SyntheticClasses.VocPerson, _rng.NextDouble() < 0.7) : (Pick(classes), false));
        }
        if (plan == PersonPlan.AnnotatedPerson) wanted[_rng.Next(wanted.Count)] = (SyntheticClasses.VocPerson, true);

        // Each object stands at a ground line below the horizon; nearer objects are lower and larger, and drawn later.
        var placed = wanted
            .Select(o => (o.Voc, o.Parts, Ground: U(horizon + 0.15f * (h - horizon), h - 1f), X: U(0.12f, 0.88f) * w))
            .OrderBy(o => o.Ground)
            .ToList();
        foreach (var o in placed)
        {
            float depth = (o.Ground - horizon) / (h - horizon); // 0 at the horizon, 1 at the bottom
            float scale = h * (0.55f + 0.6f * depth);
            var obj = new SceneObject(o.Voc, o.Parts);
            int owner = _objects.Count;
            _objects.Add(obj);
            switch (o.Voc)
            {
                case SyntheticClasses.VocPerson: DrawPerson(obj, owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocCat: DrawCat(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocDog: DrawDog(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocBottle: DrawBottle(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocChair: DrawChair(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocSofa: DrawSofa(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocTv: DrawTv(owner, o.X, o.Ground, scale); break;
                case SyntheticClasses.VocTable: DrawTable(owner, o.X, o.Ground, scale); break;
                default: DrawCar(owner, o.X, o.Ground, scale); break;
            }
        }
    }

    // ---- materials ----

    private static Vector3 Rgb(int r, int g, int b) => new(r / 255f, g / 255f, b / 255f);

    private static Material Solid(Vector3 c) => (_, _) => c;

    /// <summary>Two colours in stripes of a period (pixels) along a direction.</summary>
    private static Material Stripes(Vector3 a, Vector3 b, float period, float angle, float phase)
    {
        float cx = MathF.Cos(angle), sy = MathF.Sin(angle);
        return (x, y) =>
        {
            float t = 0.5f + 0.5f * MathF.Sin((x * cx + y * sy) * 2f * MathF.PI / period + phase);
            return Vector3.Lerp(a, b, t * t);
        };
    }

    private static Material Checker(Vector3 a, Vector3 b, float size) =>
        (x, y) => (((int)MathF.Floor(x / size) + (int)MathF.Floor(y / size)) & 1) == 0 ? a : b;

    /// <summary>Blotches from a hashed cell grid: dark spots (dog coat), grass tufts.</summary>
    private static Material Spots(Vector3 baseColour, Vector3 spot, float cell, int salt) => (x, y) =>
    {
        int cxi = (int)MathF.Floor(x / cell), cyi = (int)MathF.Floor(y / cell);
        uint hsh = Hash(cxi, cyi, salt);
        float sx = (cxi + 0.25f + 0.5f * (hsh & 0xFF) / 255f) * cell, sy = (cyi + 0.25f + 0.5f * ((hsh >> 8) & 0xFF) / 255f) * cell;
        float r = cell * (0.15f + 0.2f * ((hsh >> 16) & 0xFF) / 255f);
        return (x - sx) * (x - sx) + (y - sy) * (y - sy) < r * r ? spot : baseColour;
    };

    /// <summary>Per-pixel value noise of a given amplitude around a colour.</summary>
    private static Material Grain(Material inner, float amplitude, int salt) => (x, y) =>
    {
        float n = (Hash((int)x >> 1, (int)y >> 1, salt) & 0xFFFF) / 65535f - 0.5f;
        return Vector3.Clamp(inner(x, y) * (1f + amplitude * n), Vector3.Zero, Vector3.One);
    };

    private static uint Hash(int x, int y, int salt)
    {
        unchecked
        {
            uint h = (uint)x * 0x8DA6B343u ^ (uint)y * 0xD8163841u ^ (uint)salt * 0xCB1AB31Fu;
            h ^= h >> 13;
            h *= 0x5BD1E995u;
            return h ^ (h >> 15);
        }
    }

    // ---- background ----

    private void DrawBackground(bool indoor, float horizon)
    {
        int w = _canvas.Width, h = _canvas.Height;
        int salt = _rng.Next();
        if (indoor)
        {
            var wall = Pick(Rgb(226, 212, 180), Rgb(200, 205, 210), Rgb(196, 214, 190));
            var panel = wall * 0.85f;
            var floorA = Pick(Rgb(150, 100, 60), Rgb(120, 80, 50));
            _canvas.Paint(new Rect(0, 0, w, horizon, FacingCamera), Stripes(wall, panel, h * 0.35f, 0f, U(0, 6)),
                SyntheticClasses.VocBackground, SyntheticClasses.CtxWall, -1, -1);
            _canvas.Paint(new Rect(0, horizon, w, h, FacingUp), Grain(Stripes(floorA, floorA * 0.7f, h * 0.08f, MathF.PI / 2, U(0, 6)), 0.25f, salt),
                SyntheticClasses.VocBackground, SyntheticClasses.CtxFloor, -1, -1);
        }
        else
        {
            var skyTop = Rgb(70, 130, 220);
            var skyLow = Rgb(180, 210, 245);
            Material sky = (_, y) => Vector3.Lerp(skyTop, skyLow, Math.Clamp(y / horizon, 0f, 1f));
            _canvas.Paint(new Rect(0, 0, w, horizon, FacingCamera), sky, SyntheticClasses.VocBackground, SyntheticClasses.CtxSky, -1, -1, emissive: true);
            _canvas.Paint(new Rect(0, horizon, w, h, FacingUp), Grain(Spots(Rgb(70, 150, 60), Rgb(40, 110, 35), h * 0.05f, salt), 0.35f, salt + 1),
                SyntheticClasses.VocBackground, SyntheticClasses.CtxGrass, -1, -1);
        }
    }

    // ---- objects ----

    private void PaintObject(Shape s, Material m, int owner, bool emissive = false)
    {
        byte voc = _objects[owner].Voc;
        _canvas.Paint(s, m, voc, SyntheticClasses.ContextOf(voc), owner, -1, emissive);
    }

    private void PaintPart(SceneObject obj, int owner, string name, Shape s, Material m)
    {
        int index = _partCount++;
        obj.Parts.Add((name, index));
        _canvas.Paint(s, m, SyntheticClasses.VocPerson, SyntheticClasses.CtxPerson, owner, index);
    }

    private static Vector2 V(float x, float y) => new(x, y);

    private void DrawPerson(SceneObject obj, int owner, float cx, float ground, float scale)
    {
        float height = MathF.Min(scale * U(0.6f, 0.8f), ground - 1f);
        float u = height / 8f;          // one head height
        float top = ground - height;
        var skin = Pick(Rgb(240, 200, 170), Rgb(200, 150, 110), Rgb(130, 90, 60));
        var shirt = Solid(Pick(Rgb(200, 40, 40), Rgb(40, 80, 200), Rgb(240, 240, 240), Rgb(240, 200, 40)));
        var trousers = Stripes(Rgb(40, 50, 90), Rgb(30, 35, 60), u * 0.6f, 0f, 0f);
        var hair = Solid(Pick(Rgb(30, 20, 15), Rgb(120, 70, 30), Rgb(220, 190, 120)));
        var shoes = Solid(Rgb(25, 25, 25));
        var skinM = Solid(skin);

        // The person faces the camera: their left ("l...") is on the image's right (+x).
        void Limb(string name, Vector2 a, Vector2 b, float r, Material m) => PaintPart(obj, owner, name, new Capsule(a, b, r), m);

        float legSpread = U(0.0f, 0.5f) * u;
        var hipL = V(cx + 0.35f * u, top + 4.0f * u);
        var hipR = V(cx - 0.35f * u, top + 4.0f * u);
        var kneeL = V(hipL.X + legSpread * 0.5f, top + 5.8f * u);
        var kneeR = V(hipR.X - legSpread * 0.5f, top + 5.8f * u);
        var ankleL = V(kneeL.X + legSpread * 0.5f, top + 7.55f * u);
        var ankleR = V(kneeR.X - legSpread * 0.5f, top + 7.55f * u);
        Limb("luleg", hipL, kneeL, 0.34f * u, trousers);
        Limb("ruleg", hipR, kneeR, 0.34f * u, trousers);
        Limb("llleg", kneeL, ankleL, 0.27f * u, trousers);
        Limb("rlleg", kneeR, ankleR, 0.27f * u, trousers);
        Limb("lfoot", V(ankleL.X, top + 7.75f * u), V(ankleL.X + 0.35f * u, top + 7.75f * u), 0.22f * u, shoes);
        Limb("rfoot", V(ankleR.X, top + 7.75f * u), V(ankleR.X - 0.35f * u, top + 7.75f * u), 0.22f * u, shoes);

        Limb("torso", V(cx, top + 1.8f * u), V(cx, top + 3.7f * u), 0.8f * u, shirt);
        Limb("neck", V(cx, top + 0.9f * u), V(cx, top + 1.3f * u), 0.2f * u, skinM);
        Limb("head", V(cx, top + 0.55f * u), V(cx, top + 0.55f * u), 0.5f * u, skinM);
        PaintPart(obj, owner, "hair", new Ellipse(V(cx, top + 0.28f * u), 0.52f * u, 0.3f * u), hair);

        foreach (int side in new[] { 1, -1 })
        {
            string s = side > 0 ? "l" : "r";
            var shoulder = V(cx + side * 0.85f * u, top + 1.65f * u);
            float a = U(0.1f, 0.8f), b = U(-0.6f, 1.2f);
            var elbow = shoulder + 1.5f * u * V(side * MathF.Sin(a), MathF.Cos(a));
            var hand = elbow + 1.35f * u * V(side * MathF.Sin(b), MathF.Cos(b));
            Limb(s + "uarm", shoulder, elbow, 0.24f * u, shirt);
            Limb(s + "larm", elbow, hand, 0.2f * u, skinM);
            Limb(s + "hand", hand, hand, 0.24f * u, skinM);
        }
    }

    private void DrawCat(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.16f, 0.22f);
        int dir = _rng.Next(2) * 2 - 1;
        var fur = Grain(Stripes(Rgb(235, 150, 60), Rgb(150, 80, 25), s * 0.35f, 0.2f, U(0, 6)), 0.15f, _rng.Next());
        PaintObject(new Capsule(V(cx - dir * 0.8f * s, ground - 0.8f * s), V(cx - dir * 1.3f * s, ground - 1.6f * s), 0.1f * s), fur, owner); // tail
        PaintObject(new Ellipse(V(cx, ground - 0.55f * s), 0.85f * s, 0.42f * s), fur, owner);
        for (int leg = 0; leg < 2; leg++)
        {
            float lx = cx + (leg == 0 ? -0.45f : 0.45f) * s;
            PaintObject(new Capsule(V(lx, ground - 0.4f * s), V(lx, ground - 0.08f * s), 0.1f * s), fur, owner);
        }
        var head = V(cx + dir * 0.85f * s, ground - 0.95f * s);
        PaintObject(new Capsule(head + V(-0.2f * s, -0.3f * s), head + V(-0.22f * s, -0.45f * s), 0.09f * s), fur, owner); // ears
        PaintObject(new Capsule(head + V(0.2f * s, -0.3f * s), head + V(0.22f * s, -0.45f * s), 0.09f * s), fur, owner);
        PaintObject(new Capsule(head, head, 0.33f * s), fur, owner);
    }

    private void DrawDog(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.22f, 0.3f);
        int dir = _rng.Next(2) * 2 - 1;
        var coat = Spots(Rgb(180, 130, 80), Rgb(70, 45, 25), s * 0.3f, _rng.Next());
        for (int leg = 0; leg < 4; leg++)
        {
            float lx = cx + (-0.6f + 0.4f * leg) * s;
            PaintObject(new Capsule(V(lx, ground - 0.6f * s), V(lx, ground - 0.1f * s), 0.1f * s), coat, owner);
        }
        PaintObject(new Capsule(V(cx - dir * 0.75f * s, ground - 0.85f * s), V(cx - dir * 1.05f * s, ground - 1.2f * s), 0.07f * s), coat, owner);
        PaintObject(new Ellipse(V(cx, ground - 0.8f * s), 0.85f * s, 0.32f * s), coat, owner);
        var head = V(cx + dir * 0.9f * s, ground - 1.15f * s);
        PaintObject(new Capsule(head, head + V(dir * 0.3f * s, 0.1f * s), 0.22f * s), coat, owner);
        PaintObject(new Capsule(head + V(-dir * 0.12f * s, -0.05f * s), head + V(-dir * 0.18f * s, 0.3f * s), 0.08f * s), Solid(Rgb(60, 40, 20)), owner); // ear
    }

    private void DrawBottle(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.22f, 0.32f);
        var glass = Grain(Stripes(Rgb(40, 140, 60), Rgb(120, 210, 130), s * 0.3f, 0f, 0f), 0.1f, _rng.Next());
        PaintObject(new Capsule(V(cx, ground - 0.75f * s), V(cx, ground - 0.65f * s), 0.05f * s), glass, owner);
        PaintObject(new Capsule(V(cx, ground - 0.95f * s), V(cx, ground - 0.65f * s), 0.06f * s), glass, owner);
        PaintObject(new Rect(cx - 0.17f * s, ground - 0.62f * s, cx + 0.17f * s, ground, FacingCamera, cylinder: true), glass, owner);
        PaintObject(new Rect(cx - 0.17f * s, ground - 0.45f * s, cx + 0.17f * s, ground - 0.25f * s, FacingCamera, cylinder: true),
            Solid(Rgb(235, 235, 220)), owner); // label
    }

    private void DrawChair(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.35f, 0.45f);
        var wood = Grain(Stripes(Rgb(200, 140, 60), Rgb(150, 95, 35), s * 0.08f, 1.4f, U(0, 6)), 0.1f, _rng.Next());
        float half = 0.3f * s;
        PaintObject(new Rect(cx - half, ground - 1.2f * s, cx + half, ground - 0.55f * s, FacingCamera), wood, owner); // back
        PaintObject(new Rect(cx - half * 1.1f, ground - 0.55f * s, cx + half * 1.1f, ground - 0.47f * s, FacingUp), wood, owner); // seat
        PaintObject(new Rect(cx - half * 1.1f, ground - 0.47f * s, cx + half * 1.1f, ground - 0.42f * s, FacingCamera), wood, owner);
        foreach (float lx in new[] { cx - half, cx + half - 0.06f * s })
            PaintObject(new Rect(lx, ground - 0.42f * s, lx + 0.06f * s, ground, FacingCamera), wood, owner);
    }

    private void DrawSofa(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.4f, 0.5f);
        var fabric = Grain(Checker(Pick(Rgb(150, 40, 110), Rgb(110, 60, 160)), Pick(Rgb(120, 30, 90), Rgb(90, 45, 130)), s * 0.12f), 0.12f, _rng.Next());
        float half = 0.9f * s;
        PaintObject(new Rect(cx - half, ground - 0.95f * s, cx + half, ground - 0.45f * s, Vector3.Normalize(new Vector3(0, 0.2f, 1f))), fabric, owner); // back
        PaintObject(new Rect(cx - half, ground - 0.45f * s, cx + half, ground - 0.38f * s, FacingUp), fabric, owner); // seat
        PaintObject(new Rect(cx - half, ground - 0.38f * s, cx + half, ground - 0.05f * s, FacingCamera), fabric, owner);
        PaintObject(new Capsule(V(cx - half, ground - 0.55f * s), V(cx - half, ground - 0.15f * s), 0.14f * s), fabric, owner); // arms
        PaintObject(new Capsule(V(cx + half, ground - 0.55f * s), V(cx + half, ground - 0.15f * s), 0.14f * s), fabric, owner);
    }

    private void DrawTv(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.35f, 0.45f);
        float half = 0.6f * s;
        var frame = Solid(Rgb(30, 30, 35));
        float bottom = ground - 0.25f * s, topY = bottom - 0.8f * s;
        PaintObject(new Rect(cx - 0.08f * s, bottom, cx + 0.08f * s, ground - 0.04f * s, FacingCamera), frame, owner); // stand
        PaintObject(new Rect(cx - 0.3f * s, ground - 0.05f * s, cx + 0.3f * s, ground, FacingUp), frame, owner);
        PaintObject(new Rect(cx - half, topY, cx + half, bottom, FacingCamera), frame, owner);
        var screenTop = Rgb(120, 200, 255);
        var screenLow = Rgb(40, 90, 200);
        float y0 = topY + 0.06f * s, y1 = bottom - 0.06f * s;
        Material screen = (_, y) => Vector3.Lerp(screenTop, screenLow, Math.Clamp((y - y0) / (y1 - y0), 0f, 1f));
        PaintObject(new Rect(cx - half + 0.06f * s, y0, cx + half - 0.06f * s, y1, FacingCamera), screen, owner, emissive: true);
    }

    private void DrawTable(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.45f, 0.55f);
        float half = 0.9f * s;
        var wood = Grain(Stripes(Rgb(110, 60, 30), Rgb(80, 40, 20), s * 0.1f, 0f, U(0, 6)), 0.1f, _rng.Next());
        foreach (float lx in new[] { cx - half * 0.9f, cx + half * 0.9f - 0.07f * s })
            PaintObject(new Rect(lx, ground - 0.6f * s, lx + 0.07f * s, ground, FacingCamera), wood, owner);
        PaintObject(new Rect(cx - half, ground - 0.78f * s, cx + half, ground - 0.66f * s, FacingUp), wood, owner); // top
        PaintObject(new Rect(cx - half, ground - 0.66f * s, cx + half, ground - 0.6f * s, FacingCamera), wood, owner);
    }

    private void DrawCar(int owner, float cx, float ground, float scale)
    {
        float s = scale * U(0.45f, 0.6f);
        float half = 0.9f * s;
        var paint = Solid(Pick(Rgb(200, 30, 30), Rgb(30, 60, 180), Rgb(190, 190, 200), Rgb(240, 180, 20)));
        var glass = Solid(Rgb(60, 80, 100));
        PaintObject(new Rect(cx - half * 0.6f, ground - 0.75f * s, cx + half * 0.55f, ground - 0.68f * s, FacingUp), paint, owner); // roof
        PaintObject(new Rect(cx - half * 0.65f, ground - 0.68f * s, cx + half * 0.6f, ground - 0.45f * s, FacingCamera), paint, owner);
        PaintObject(new Rect(cx - half * 0.55f, ground - 0.64f * s, cx + half * 0.5f, ground - 0.47f * s, FacingCamera), glass, owner); // windows
        PaintObject(new Rect(cx - half, ground - 0.45f * s, cx + half, ground - 0.42f * s, FacingUp), paint, owner); // bonnet
        PaintObject(new Rect(cx - half, ground - 0.42f * s, cx + half, ground - 0.12f * s, FacingCamera), paint, owner);
        var tyre = Solid(Rgb(20, 20, 20));
        foreach (float wx in new[] { cx - half * 0.6f, cx + half * 0.6f })
            PaintObject(new Capsule(V(wx, ground - 0.16f * s), V(wx, ground - 0.16f * s), 0.16f * s), tyre, owner);
    }
}
