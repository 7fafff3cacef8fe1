using System.CommandLine;
using System.Text.Json.Nodes;

using static Microsoft.ML.MtLora.Tests.CliRunner;
namespace Microsoft.ML.MtLora.Tests.Data.Pascal;

public class InspectDataCommandTests
{
    [Fact]
    public void Counts_match_hand_computed_values()
    {
        using var ds = new PascalTestDataset();
        ds.WriteSplit("val", "a", "b", "c");
        // a: 4x2, semseg {0,0,15,15,255,3,3,3}, sal 3 of 8 positive, normals 5 valid pixels, person with head+torso (3 px)
        ds.WriteImage("a", 4, 2, (_, _) => (0, 0, 0));
        ds.WriteSemseg("a", 4, 2, [0, 0, 15, 15, 255, 3, 3, 3]);
        ds.WriteSaliency("a", 4, 2, [255, 255, 255, 0, 0, 0, 0, 0]);
        ds.WriteNormals("a", 4, 2, new byte[24], [440, 440, 440, 440, 440, 360, 360, 360]);
        ds.WriteHumanParts("a", 4, 2, new PartObject(15, [1, 1, 1, 0, 0, 0, 0, 0], [("hair", [1, 0, 0, 0, 0, 0, 0, 0]), ("neck", [0, 1, 1, 0, 0, 0, 0, 0])]));
        // b: 2x1, gray semseg {0, 20}, sal none, normals none valid, no person
        ds.WriteImage("b", 2, 1, (_, _) => (0, 0, 0));
        ds.WriteSemseg("b", 2, 1, [0, 20], palette: false, folder: "pascal-context");
        ds.WriteSaliency("b", 2, 1, [0, 100]);
        ds.WriteNormals("b", 2, 1, new byte[6], [0, 0]);
        ds.WriteHumanParts("b", 2, 1);
        // c: 3x1, semseg all 255, sal all positive, normals all valid, person with parts (lfoot)
        ds.WriteImage("c", 3, 1, (_, _) => (0, 0, 0));
        ds.WriteSemseg("c", 3, 1, [255, 255, 255]);
        ds.WriteSaliency("c", 3, 1, [200, 200, 200]);
        ds.WriteNormals("c", 3, 1, new byte[9], [284, 284, 284]);
        ds.WriteHumanParts("c", 3, 1, new PartObject(15, [0, 1, 0], [("lfoot", [0, 1, 0])]));

        var (code, stdout, stderr) = Run("inspect-data", "--data", ds.Root, "--split", "val");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout)!.AsObject();
        Assert.Equal("val", (string)json["split"]!);
        Assert.Equal(3, (long)json["images"]!);
        Assert.Equal(2, (long)json["images_with_human_parts"]!);
        var t = json["tasks"]!;
        Assert.Equal(7 + 2 + 0, (long)t["semseg"]!["valid_pixels"]!);
        Assert.Equal("""{"0":3,"3":3,"15":2,"20":1}""", t["semseg"]!["histogram"]!.ToJsonString());
        // human parts: a has 8 valid pixels (1,2,2 + five 0), b none (all ignore), c 3 valid (0,6,0)
        Assert.Equal(11, (long)t["human_parts"]!["valid_pixels"]!);
        Assert.Equal("""{"0":7,"1":1,"2":2,"6":1}""", t["human_parts"]!["histogram"]!.ToJsonString());
        Assert.Equal(13, (long)t["sal"]!["valid_pixels"]!);
        Assert.Equal(3 + 0 + 3, (long)t["sal"]!["positive_pixels"]!);
        Assert.Equal(5 + 0 + 3, (long)t["normals"]!["valid_pixels"]!);
        Assert.Contains("3/3", stderr);
    }

    [Fact]
    public void Bad_input_prints_one_line_and_fails()
    {
        var missing = Path.Combine(Path.GetTempPath(), "mtlora-missing-" + Guid.NewGuid());
        var (code, stdout, stderr) = Run("inspect-data", "--data", missing, "--split", "val");
        Assert.Equal(2, code); // bad input: one line, exit code 2 like every verb
        Assert.Empty(stdout);
        Assert.Contains(missing, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }
}
