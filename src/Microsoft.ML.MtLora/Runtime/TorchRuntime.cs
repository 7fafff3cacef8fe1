using System.Runtime.InteropServices;
using TorchSharp;

namespace Microsoft.ML.MtLora;

/// <summary>
/// Chooses the native libtorch that TorchSharp runs on, and the device.
/// </summary>
/// <remarks>
/// <para>
/// By default TorchSharp loads the backend the application references: on Linux the <c>libtorch-cpu-linux-x64</c>
/// package, on Windows <c>TorchSharp-cpu</c> or <c>TorchSharp-cuda-windows</c>.
/// </para>
/// <para>
/// On Linux, CUDA can come from an existing PyTorch install instead: set the environment variable
/// <see cref="LibTorchDirectoryVariable"/> (<c>MTLORA_LIBTORCH</c>), or call <see cref="Initialize(string?)"/>, with the
/// <c>lib</c> folder of that install (for example <c>.venv/lib/python3.12/site-packages/torch/lib</c>) before any other
/// TorchSharp call. Its libraries are loaded by full path in dependency order, so TorchSharp binds to them, and CUDA is
/// initialised when <c>libtorch_cuda.so</c> is there. The PyTorch build must match TorchSharp's libtorch (2.x ABI).
/// </para>
/// <para>
/// The folder can also be fixed at build time with the MSBuild property <c>MtLoraLibTorchDirectory</c> (from the package's
/// build logic): it is written into the application's runtimeconfig.json as the runtime option
/// <see cref="LibTorchDirectoryRuntimeOption"/>. Precedence: the argument of <see cref="Initialize(string?)"/>, then
/// <c>MTLORA_LIBTORCH</c>, then the runtime option.
/// </para>
/// </remarks>
public static class TorchRuntime
{
    /// <summary>The environment variable naming a libtorch folder (<c>MTLORA_LIBTORCH</c>).</summary>
    public const string LibTorchDirectoryVariable = "MTLORA_LIBTORCH";

    /// <summary>The runtimeconfig.json option naming a libtorch folder (<c>Microsoft.ML.MtLora.LibTorchDirectory</c>), set by the MSBuild property <c>MtLoraLibTorchDirectory</c>.</summary>
    public const string LibTorchDirectoryRuntimeOption = "Microsoft.ML.MtLora.LibTorchDirectory";

    private static readonly object Gate = new();
    private static bool _initialized;
    private static string? _libTorchDirectory;

    /// <summary>The libtorch folder in use, or <see langword="null"/> when TorchSharp's own backend package is used.</summary>
    public static string? LibTorchDirectory => _libTorchDirectory;

    /// <summary>
    /// Loads the native backend once. With no argument, <c>MTLORA_LIBTORCH</c> is read; when neither is set, TorchSharp's
    /// default backend lookup is used. Safe to call more than once; later calls with another folder are an error.
    /// </summary>
    /// <param name="libTorchDirectory">A folder holding libtorch's shared libraries, or <see langword="null"/>.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder holds no libtorch library.</exception>
    public static void Initialize(string? libTorchDirectory = null)
    {
        lock (Gate)
        {
            if (string.IsNullOrWhiteSpace(libTorchDirectory)) libTorchDirectory = Environment.GetEnvironmentVariable(LibTorchDirectoryVariable);
            if (string.IsNullOrWhiteSpace(libTorchDirectory)) libTorchDirectory = AppContext.GetData(LibTorchDirectoryRuntimeOption) as string;
            if (string.IsNullOrWhiteSpace(libTorchDirectory)) libTorchDirectory = null;
            if (_initialized)
            {
                if (libTorchDirectory != null && !SamePath(libTorchDirectory, _libTorchDirectory))
                    throw new InvalidOperationException($"TorchSharp is already bound to {(_libTorchDirectory ?? "its default backend")}; it cannot switch to libtorch folder '{libTorchDirectory}' in the same process. Set {LibTorchDirectoryVariable} before the first TorchSharp call.");
                return;
            }
            if (libTorchDirectory != null)
            {
                PreloadLibTorch(libTorchDirectory);
                _libTorchDirectory = Path.GetFullPath(libTorchDirectory);
            }
            _initialized = true;
        }
    }

    /// <summary>Whether TorchSharp can run on CUDA in this process (initialising the backend first).</summary>
    public static bool IsCudaAvailable()
    {
        Initialize();
        try { return torch.cuda.is_available(); }
        catch (Exception) { return false; }
    }

    /// <summary>
    /// Resolves a device name (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>, or <c>auto</c> for CUDA when available, else CPU).
    /// </summary>
    /// <param name="device">The device name.</param>
    /// <param name="fallbackToCpu">When CUDA is asked for but missing: use the CPU instead of failing.</param>
    /// <returns>The device.</returns>
    /// <exception cref="ArgumentException">The name is not a device.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for, is missing, and <paramref name="fallbackToCpu"/> is false.</exception>
    public static torch.Device ResolveDevice(string device, bool fallbackToCpu = false)
    {
        Initialize();
        var name = (device ?? "cpu").Trim().ToLowerInvariant();
        if (name == "cpu") return torch.CPU;
        if (name == "auto") return IsCudaAvailable() ? torch.CUDA : torch.CPU;
        if (name == "cuda" || name.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (IsCudaAvailable()) return new torch.Device(name);
            if (fallbackToCpu) return torch.CPU;
            throw new InvalidOperationException(
                $"Device '{device}' was asked for, but TorchSharp has no CUDA backend in this process. " +
                $"On Linux set {LibTorchDirectoryVariable} to the torch/lib folder of a CUDA build of PyTorch; on Windows reference TorchSharp-cuda-windows; " +
                "or choose the CPU (or allow falling back to it).");
        }
        throw new ArgumentException($"Device '{device}' is not one of: cpu, cuda, cuda:N, auto.", nameof(device));
    }

    private static void PreloadLibTorch(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"{LibTorchDirectoryVariable} (libtorch folder) is '{dir}', which does not exist. Expected the lib folder of a libtorch or PyTorch install, e.g. .../site-packages/torch/lib.");
        string Lib(string stem) => OperatingSystem.IsWindows() ? stem + ".dll" : OperatingSystem.IsMacOS() ? "lib" + stem + ".dylib" : "lib" + stem + ".so";
        var torchLib = Path.Combine(dir, Lib("torch"));
        if (!File.Exists(torchLib))
            throw new FileNotFoundException($"{LibTorchDirectoryVariable} (libtorch folder) is '{dir}', but it holds no {Lib("torch")}. Expected the lib folder of a libtorch or PyTorch install, holding {Lib("c10")}, {Lib("torch_cpu")} and {Lib("torch")} (and {Lib("torch_cuda")} for CUDA).", torchLib);
        // Dependency order: once loaded by full path, the dynamic linker binds later requests by soname to these copies.
        foreach (var stem in new[] { "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch" })
        {
            var file = Path.Combine(dir, Lib(stem));
            if (!File.Exists(file)) continue;
            try { NativeLibrary.Load(file); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new DllNotFoundException($"Could not load '{file}' from {LibTorchDirectoryVariable}='{dir}': {e.Message}", e);
            }
        }
        if (File.Exists(Path.Combine(dir, Lib("torch_cuda"))))
            torch.InitializeDeviceType(DeviceType.CUDA);
    }

    private static bool SamePath(string a, string? b) =>
        b != null && string.Equals(Path.GetFullPath(a).TrimEnd('/', '\\'), b.TrimEnd('/', '\\'), StringComparison.Ordinal);
}
