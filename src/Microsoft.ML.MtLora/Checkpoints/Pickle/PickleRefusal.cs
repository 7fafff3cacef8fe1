namespace Microsoft.ML.MtLora.Checkpoints.Pickle;

/// <summary>
/// Builds the exception for a pickle that asks for something a weights-only load must not do. It is an
/// <see cref="InvalidDataException"/> like every other bad-file error, so callers have one type to catch; the refused
/// global (or opcode) is also in <see cref="Exception.Data"/> under <see cref="PyTorchCheckpoint.RefusedGlobalKey"/>.
/// </summary>
internal static class PickleRefusal
{
    public static InvalidDataException Create(string offendingGlobal, string message)
    {
        var e = new InvalidDataException(message);
        e.Data[PyTorchCheckpoint.RefusedGlobalKey] = offendingGlobal;
        return e;
    }
}
