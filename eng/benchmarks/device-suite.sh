#!/usr/bin/env bash
# Runs on the GPU machine (see run-device.sh): unpacks the published benchmark and measures the paper's setting
# (Swin-T, 448 px, MTLoRA r=64, 4 tasks) at the shapes of the reference table in the environment notes.
# Usage: bash eng/benchmarks/device-suite.sh <archive.tar.xz>      Results: $OUT/*.json and $OUT/suite.log
set -uo pipefail

archive="${1:?usage: device-suite.sh <archive.tar.xz>}"
out="${OUT:-$PWD/bench-out}"
work="$(mktemp -d)"
mkdir -p "$out"
tar -C "$work" -xJf "$archive"
app="$work/Mtlora.Benchmarks/Mtlora.Benchmarks"

export MTLORA_LIBTORCH="${MTLORA_LIBTORCH:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}"
export LD_LIBRARY_PATH="$MTLORA_LIBTORCH:$work/Mtlora.Benchmarks${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log="$out/suite.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$log" 2>&1

bench() {
    local name="$1"; shift
    echo "== $name: $*" >> "$log"
    "$app" --config swin-t --device cuda "$@" --json "$out/$name.json" >> "$log" 2>&1
    echo "exit $?" >> "$log"
}

# The reference rows: train batch 8 and 32, inference batch 32; float32 (TF32 off) and bfloat16 (the trainer's policy:
# network in bfloat16, normalisation layers, losses, gradients and AdamW masters in float32). Training runs
# MultiTaskTrainer.RunStep itself: one host read per step (the loss values), clipping and AdamW on the device.
bench train-b32-fp32  --mode train --batch 32 --steps 20 --warmup 5
bench train-b8-fp32   --mode train --batch 8  --steps 30 --warmup 5
bench infer-b32-fp32  --mode infer --batch 32 --steps 30 --warmup 5
bench train-b32-bf16  --mode train --batch 32 --steps 20 --warmup 5 --dtype bfloat16
bench infer-b32-bf16  --mode infer --batch 32 --steps 30 --warmup 5 --dtype bfloat16
# Batch 32 as 4 accumulated micro-batches of 8 (AccumulationSteps): the small-GPU recipe; its memory is the point.
bench train-b32-acc4-bf16 --mode train --batch 32 --accumulation-steps 4 --steps 10 --warmup 3 --dtype bfloat16
cat "$log"
