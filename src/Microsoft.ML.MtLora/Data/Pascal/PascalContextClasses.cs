using System.Collections.Frozen;

namespace Microsoft.ML.MtLora.Data.Pascal;

/// <summary>Fixed class tables of PASCAL-Context multi-task learning (reference: data/mtl_ds.py and data/db_info/*.json).</summary>
public static class PascalContextClasses
{
    /// <summary>The VOC class index of <c>person</c> in the Pascal-Part annotation (<c>class_ind</c>).</summary>
    public const int PersonClass = 15;

    /// <summary>The number of human-part classes including background (0 background, 1 head, 2 torso, 3 upper arm, 4 lower arm, 5 upper leg, 6 lower leg).</summary>
    public const int HumanPartClassCount = 7;

    /// <summary>The number of semantic-segmentation classes (background + 20 VOC classes).</summary>
    public const int SemanticClassCount = 21;

    /// <summary>
    /// The 170 PASCAL-Context class ids (values of <c>LabelMap</c> in <c>pascal-context/trainval/&lt;id&gt;.mat</c>) whose pixels
    /// carry a valid distilled surface normal: the classes present in both the NYU and the PASCAL-Context class lists
    /// (except <c>unknown</c>), plus <c>tvmonitor</c> (427). Pixels of every other class are ignored for normals.
    /// </summary>
    public static IReadOnlyList<int> NormalsValidClassIds { get; } =
    [
        3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49, 50, 51, 53, 55, 56, 59, 61, 62, 65, 66, 68, 69,
        72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107, 111, 113, 115, 122, 124, 135, 141, 142, 143, 146, 150, 154, 157, 158,
        159, 165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199, 202, 213, 215, 216, 219, 220, 223, 225, 228, 230, 232, 233, 238, 239,
        242, 243, 246, 250, 251, 252, 255, 260, 261, 263, 269, 272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295,
        304, 307, 309, 310, 314, 315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368, 370, 371, 374, 379, 380,
        383, 384, 397, 401, 403, 405, 407, 408, 411, 412, 413, 414, 417, 419, 421, 423, 427, 429, 430, 432, 440, 441, 442, 443, 444, 446,
        454, 457,
    ];

    /// <summary>
    /// The reference's 6-part grouping of Pascal-Part person part names (<c>HUMAN_PART[6]</c>): head 1 (hair, head, ears,
    /// eyebrows, eyes, mouth, nose), torso 2 (neck, torso), upper arm 3, lower arm 4 (lower arms and hands),
    /// upper leg 5, lower leg 6 (lower legs and feet).
    /// </summary>
    public static IReadOnlyDictionary<string, byte> HumanPartIds { get; } = new Dictionary<string, byte>(StringComparer.Ordinal)
    {
        ["hair"] = 1, ["head"] = 1, ["lear"] = 1, ["rear"] = 1, ["lebrow"] = 1, ["rebrow"] = 1,
        ["leye"] = 1, ["reye"] = 1, ["mouth"] = 1, ["nose"] = 1,
        ["neck"] = 2, ["torso"] = 2,
        ["luarm"] = 3, ["ruarm"] = 3,
        ["llarm"] = 4, ["rlarm"] = 4, ["lhand"] = 4, ["rhand"] = 4,
        ["luleg"] = 5, ["ruleg"] = 5,
        ["llleg"] = 6, ["rlleg"] = 6, ["lfoot"] = 6, ["rfoot"] = 6,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly bool[] NormalsValidLookup = BuildLookup();

    /// <summary>Whether a PASCAL-Context class id has valid normals (one of <see cref="NormalsValidClassIds"/>).</summary>
    public static bool HasValidNormals(int contextClassId) =>
        (uint)contextClassId < (uint)NormalsValidLookup.Length && NormalsValidLookup[contextClassId];

    /// <summary>A lookup table over class ids 0..max: true where normals are valid.</summary>
    internal static ReadOnlySpan<bool> NormalsValidTable => NormalsValidLookup;

    private static bool[] BuildLookup()
    {
        var table = new bool[NormalsValidClassIds.Max() + 1];
        foreach (var id in NormalsValidClassIds) table[id] = true;
        return table;
    }
}
