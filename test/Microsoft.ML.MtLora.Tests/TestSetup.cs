using System.Runtime.CompilerServices;
using TorchSharp;

namespace Microsoft.ML.MtLora.Tests;

internal static class TestSetup
{
    /// <summary>
    /// xunit already runs test classes in parallel, one per core; libtorch's own intra-op threads on top of that
    /// oversubscribe a 2-core machine badly (measured 15–30× slower steps), so tests use one torch thread each.
    /// </summary>
    [ModuleInitializer]
    internal static void UseOneTorchThreadPerTest()
    {
        torch.set_num_threads(1);
        torch.set_num_interop_threads(1);
    }
}
