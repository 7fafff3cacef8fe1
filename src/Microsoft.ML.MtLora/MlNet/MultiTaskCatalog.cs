using Microsoft.ML.MtLora;
using Microsoft.ML.Runtime;

namespace Microsoft.ML
{
    /// <summary>Entry point of Microsoft.ML.MtLora on <see cref="MLContext"/>: <c>mlContext.MultiTask()</c>.</summary>
    public static class MultiTaskMLContextExtensions
    {
        /// <summary>The multi-task catalog: MTLoRA trainers and the dense multi-task evaluator (Δm).</summary>
        /// <param name="mlContext">The ML.NET context.</param>
        /// <returns>The catalog bound to <paramref name="mlContext"/>.</returns>
        public static MultiTaskCatalog MultiTask(this MLContext mlContext)
        {
            ArgumentNullException.ThrowIfNull(mlContext);
            return new MultiTaskCatalog(mlContext);
        }
    }
}

namespace Microsoft.ML.MtLora
{
    /// <summary>
    /// Multi-task dense prediction in ML.NET: <see cref="Trainers"/> (MTLoRA estimators) and evaluation of
    /// per-task metrics and Δm. Obtained with <c>mlContext.MultiTask()</c>.
    /// </summary>
    public sealed partial class MultiTaskCatalog
    {
        internal MultiTaskCatalog(MLContext mlContext)
        {
            Context = mlContext;
            Environment = mlContext;
            Trainers = new MultiTaskTrainers(mlContext);
        }

        /// <summary>The context this catalog belongs to.</summary>
        internal MLContext Context { get; }

        /// <summary>The host environment (channels, logging, cancellation).</summary>
        internal IHostEnvironment Environment { get; }

        /// <summary>The multi-task trainers (MTLoRA and its baselines).</summary>
        public MultiTaskTrainers Trainers { get; }
    }

    /// <summary>The multi-task trainers, reached as <c>mlContext.MultiTask().Trainers</c>.</summary>
    public sealed partial class MultiTaskTrainers
    {
        internal MultiTaskTrainers(MLContext mlContext)
        {
            Context = mlContext;
        }

        /// <summary>The context the trainers belong to.</summary>
        internal MLContext Context { get; }
    }
}
