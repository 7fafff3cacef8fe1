namespace Microsoft.ML.MtLora.Modeling;

/// <summary>What a state-dict load did, key by key (names as in the model's state dict).</summary>
/// <param name="Loaded">Keys copied into the model.</param>
/// <param name="Missing">Model keys the file lacks (they keep their current values).</param>
/// <param name="Unexpected">File keys the model does not have (not used).</param>
/// <param name="Ignored">File keys deliberately not loaded: derived buffers the model rebuilds (<c>attn_mask</c>; <c>relative_position_index</c>
/// after checking it equals the model's), and the classification-only <c>norm.*</c>/<c>head.*</c> of an ImageNet backbone checkpoint.</param>
public sealed record StateDictLoadReport(
    IReadOnlyList<string> Loaded, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Ignored);
