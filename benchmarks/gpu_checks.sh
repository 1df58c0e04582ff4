#!/usr/bin/env bash
# The GPU figures, in one short run on a machine with CUDA (about 8 minutes):
#   bash benchmarks/gpu_checks.sh [OUT]
# Writes each benchmark's output to OUT (default: gpu-results/) and prints it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" | tee "$out/device.txt" || exit 1
run() {  # name, timeout in seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name"
    timeout "$limit" "$@" 2>&1 | grep -v "it/s]" | tee "$out/$name.txt"
}
# Augmentation on the CPU against a GPU training step: does a device-side pipeline pay?
run augmentation 180 python benchmarks/bench_augmentation.py --repeats 100 --device cuda --threads 8
# HRTEM simulation throughput on the GPU (CPU against CUDA at 256 and 512 pixels).
run hrtem 240 python benchmarks/bench_hrtem.py --no-abtem
# Warehouse rendering on the GPU (the torch backend).
run warehouse 120 python benchmarks/bench_warehouse.py
