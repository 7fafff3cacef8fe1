// Route C (see eng/Publicize.targets): this library is compiled against a copy of Microsoft.ML.Core whose internal
// types and members are public, so that MtLoraTransformer can be saved into and loaded from model.zip the way
// first-party ML.NET transformers are (ModelSaveContext/ModelLoadContext, VersionInfo, [LoadableClass]); those are
// internal in ML.NET 5.0.1 and no public route keeps trained weights in model.zip. At run time the real
// Microsoft.ML.Core is loaded, and this attribute tells the runtime to skip the access checks into it. The
// alternative, reflection over the private members ("Route R"), needs a registration call per MLContext before
// Model.Load and breaks silently at run time on an ML.NET upgrade, whereas Route C breaks at compile time.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Lets this assembly use non-public members of the named assembly (honoured by the CoreCLR runtime; not in the public BCL surface).</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute : Attribute
    {
        /// <summary>Creates the attribute.</summary>
        /// <param name="assemblyName">The simple name of the assembly whose access checks are skipped.</param>
        public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

        /// <summary>The simple name of the assembly whose access checks are skipped.</summary>
        public string AssemblyName { get; }
    }
}
