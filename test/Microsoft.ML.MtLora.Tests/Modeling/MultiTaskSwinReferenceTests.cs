using Microsoft.ML.MtLora.Checkpoints;
using Microsoft.ML.MtLora.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.MtLora.Tests.Modeling;

public class MultiTaskSwinReferenceTests
{
    [Fact]
    public void StateDictKeysEqualReference()
    {
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(Tiny4.Options());
        var expected = Tiny4.Meta().GetProperty("state_dict_keys").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        var ours = model.state_dict().Keys.ToHashSet();
        Assert.Empty(expected.Except(ours));
        Assert.Empty(ours.Except(expected));
        using var sd = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors")));
        foreach (var (k, v) in model.state_dict())
            Assert.True(v.shape.SequenceEqual(sd.Items[k].shape), $"{k}: ours [{string.Join(",", v.shape)}], reference [{string.Join(",", sd.Items[k].shape)}]");
    }

    [Fact]
    public void DerivedBuffersEqualReference()
    {
        using var scope = NewDisposeScope();
        using var model = new MultiTaskSwin(Tiny4.Options());
        using var sd = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "model.safetensors")));
        int checkedCount = 0;
        foreach (var (k, v) in model.state_dict())
        {
            if (!k.EndsWith("attn_mask") && !k.EndsWith("relative_position_index")) continue;
            Assert.True(v.to(float64).eq(sd.Items[k].to(float64)).all().item<bool>(), k);
            checkedCount++;
        }
        Assert.Equal(3 + 8, checkedCount);
    }

    [Fact]
    public void ForwardMatchesReferenceOutputs()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        using var io = new DisposableDict(Tiny4.Io());
        using var _ = no_grad();
        var outs = model.forward(io.Items["input"]);
        Assert.Equal(Tiny4.TaskOrder, outs.Keys.ToArray());
        foreach (var t in Tiny4.TaskOrder)
        {
            var expected = io.Items["out." + t];
            Assert.Equal(expected.shape, outs[t].shape);
            float err = Tiny4.MaxAbs(outs[t], expected);
            Assert.True(err < 1e-4f, $"{t}: max abs error {err}");
        }
    }

    [Fact]
    public void GradientsMatchReference()
    {
        using var scope = NewDisposeScope();
        using var model = Tiny4.LoadModel();
        using var io = new DisposableDict(Tiny4.Io());
        using var grads = new DisposableDict(SafeTensors.Load(Fixture.Path("tiny4", "grads.safetensors")));
        var outs = model.forward(io.Items["input"]);
        Tensor loss = zeros(1);
        for (int i = 0; i < Tiny4.TaskOrder.Length; i++)
            loss = loss + (i + 1) * outs[Tiny4.TaskOrder[i]].pow(2).mean();
        loss.sum().backward();

        var withGrad = new HashSet<string>();
        foreach (var (name, p) in model.named_parameters())
        {
            var g = p.grad;
            if (g is null || g.IsInvalid) continue;
            withGrad.Add(name);
            Assert.True(grads.Items.ContainsKey("grad." + name), $"{name} has a gradient but the reference has none");
            var r = grads.Items["grad." + name];
            float scale = Math.Max(r.abs().max().item<float>(), 1e-12f);
            float err = Tiny4.MaxAbs(g, r) / scale;
            Assert.True(err < 1e-4f, $"{name}: relative gradient error {err}");
        }
        var expected = grads.Items.Keys.Select(k => k["grad.".Length..]).ToHashSet();
        Assert.Empty(expected.Except(withGrad));
        // The reference's dead LoRA pair (§2.7): trainable, but no path to the outputs.
        var trainable = model.TrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.Equal(new[] { "backbone.layers.3.blocks.1.mlp.fc2.lora_shared_A", "backbone.layers.3.blocks.1.mlp.fc2.lora_shared_B" },
            trainable.Except(withGrad).Order().ToArray());
    }
}

/// <summary>Disposes the tensors of a loaded state dict.</summary>
internal sealed class DisposableDict(Dictionary<string, Tensor> items) : IDisposable
{
    public Dictionary<string, Tensor> Items { get; } = items;

    public void Dispose()
    {
        foreach (var t in Items.Values) t.Dispose();
    }
}
