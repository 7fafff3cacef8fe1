using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Modeling.Decoders;

/// <summary>One head per task (reference <c>DecoderGroup</c>, keys <c>decoders.&lt;task&gt;.*</c>); each output is upsampled bilinearly to the image size.</summary>
internal sealed class DecoderGroup : nn.Module
{
    [ComponentName(Name = "decoders")]
    private readonly NamedModules<HrnetHead> _decoders;
    private readonly int _imageSize;

    public DecoderGroup(IReadOnlyList<DenseTaskDescriptor> tasks, IReadOnlyList<int> channels, int imageSize, Device? device) : base(nameof(DecoderGroup))
    {
        _imageSize = imageSize;
        _decoders = new NamedModules<HrnetHead>();
        foreach (var t in tasks) _decoders.Add(t.Name, new HrnetHead(channels, t.OutputChannels, device));
        register_module("decoders", _decoders);
    }

    public Tensor Forward(string task, IReadOnlyList<Tensor> maps)
    {
        var y = _decoders.Get(task).Forward(maps);                           // (B, n_out, r0, r0)
        y = ProfileRegions.Enter("upsampling", y);
        return nn.functional.interpolate(y, new long[] { _imageSize, _imageSize }, mode: InterpolationMode.Bilinear, align_corners: false);
    }
}
