using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Evaluation;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Evaluation;

public class ScratchTests(ITestOutputHelper log)
{
    [Fact]
    public void Print()
    {
        foreach (var f in new[] { Fixture.Path("metrics", "metrics_io.safetensors"), Fixture.Path("tiny4", "io.safetensors") })
        {
            var io = SafeTensors.Load(f);
            var s = new SegmentationMeter(21); s.Update(io["out.semseg"], io["target.semseg"]);
            var h = new SegmentationMeter(7); h.Update(io["out.human_parts"], io["target.human_parts"]);
            var sal = new SaliencyMeter(); sal.Update(io["out.sal"], io["target.sal"]);
            var nm = new NormalsMeter(); nm.Update(io["out.normals"], io["target.normals"]);
            var sm = sal.GetMetrics(); var n = nm.GetMetrics();
            log.WriteLine($"{s.GetMetrics().MeanIoU:R} {h.GetMetrics().MeanIoU:R} sal {sm.MeanIoU:R} {sm.MaxF:R} normals {n.Mean:R} med {n.Median} rmse {n.Rmse}");
            // no-roundtrip double variant
            var o = io["out.normals"]; var g = io["target.normals"];
            var nn_ = nn.functional.normalize(o.to(ScalarType.Float64), p: 2, dim: 1, eps: 1e-12);
            var valid = g.select(1, 0).ne(255);
            var deg = nn_.mul(g.to(ScalarType.Float64)).sum(1).clamp(-1, 1).acos().mul(180 / Math.PI).masked_select(valid);
            log.WriteLine($"double no roundtrip {deg.mean().item<double>():R}");
            var nf = nn.functional.normalize(o, p: 2, dim: 1, eps: 1e-12);
            var degf = nf.mul(g).sum(1).clamp(-1, 1).acos().mul((float)(180 / Math.PI)).masked_select(valid);
            log.WriteLine($"float no roundtrip {degf.to(ScalarType.Float64).mean().item<double>():R}");
            // saliency plain sigmoid
            var sal2 = new SaliencyMeter();
            var pr = io["out.sal"].sigmoid();
            for (int i = 0; i < pr.size(0); i++) sal2.Update(pr[i].reshape(-1).data<float>().ToArray(), io["target.sal"][i].reshape(-1).to(ScalarType.Byte).data<byte>().ToArray());
            log.WriteLine($"sal managed plain sigmoid {sal2.GetMetrics().MeanIoU:R} {sal2.GetMetrics().MaxF:R}");
        }
    }
}
