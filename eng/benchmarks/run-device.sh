#!/usr/bin/env bash
# Builds the benchmark as a self-contained linux-x64 app for the GPU machine (no .NET SDK there), packs it, and prints
# the command to run on that machine through the `device` tool.
#
# The publish carries no libtorch: on the GPU machine TorchSharp binds to the CUDA build of PyTorch installed there
# (MTLORA_LIBTORCH=<site-packages>/torch/lib, see src/Microsoft.ML.MtLora/Runtime/TorchRuntime.cs). The archive must
# stay under the device tool's 64 MiB transfer limit.
#
# Usage: eng/benchmarks/run-device.sh [output-folder]     (default: artifacts/bench-device, git-ignored)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/artifacts/bench-device}"
app="$out/Mtlora.Benchmarks"
archive="$out/mtlora-bench.tar.xz"
limit=$((64 * 1024 * 1024))

rm -rf "$app" "$archive"
mkdir -p "$out"
dotnet publish "$here/Mtlora.Benchmarks/Mtlora.Benchmarks.csproj" -c Release -r linux-x64 --self-contained true \
    -p:MtLoraBenchmarkCpuBackend=false -p:DebugType=none -p:GenerateDocumentationFile=false -o "$app"

# The CPU backend must not be there: the GPU machine's PyTorch supplies libtorch.
if find "$app" -name 'libtorch_cpu.so' | grep -q .; then
    echo "run-device.sh: $app holds libtorch_cpu.so; the publish must not reference libtorch-cpu-linux-x64." >&2
    exit 1
fi

tar -C "$out" -cJf "$archive" Mtlora.Benchmarks
size=$(stat -c %s "$archive")
echo "archive: $archive ($((size / 1024 / 1024)) MiB)"
if [ "$size" -ge "$limit" ]; then
    echo "run-device.sh: the archive is $size bytes, over the device tool's 64 MiB limit." >&2
    exit 1
fi

rel="${archive#"$root"/}"
cat <<MSG

Run on the GPU machine with the device tool (it copies the working tree; the archive is git-ignored, so carry it):
  carry:   ["$rel"]
  command: bash eng/benchmarks/device-suite.sh $rel
Results come back as JSON files under \$OUT (one per measurement) plus suite.log.
One measurement by hand, after unpacking:
  export MTLORA_LIBTORCH=/opt/torch/.venv/lib/python3.12/site-packages/torch/lib
  export LD_LIBRARY_PATH=\$MTLORA_LIBTORCH:<unpacked>/Mtlora.Benchmarks
  <unpacked>/Mtlora.Benchmarks/Mtlora.Benchmarks --mode train --config swin-t --batch 32 --device cuda --steps 20 --warmup 5 --json train.json
MSG
