#!/usr/bin/env bash
# The GPU figures, in one short run on a machine with CUDA and the project installed:
#   bash benchmarks/gpu_checks.sh [OUT] [CHECK ...]
# CHECKs: hrtem-paper (about 8 minutes), augmentation, hrtem, warehouse (about 8 minutes
# together); default: all. Writes each check's output to OUT (default: gpu-results/) and
# prints it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
shift || true
checks=("$@")
[ ${#checks[@]} -eq 0 ] && checks=(hrtem-paper augmentation hrtem warehouse)
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" | tee "$out/device.txt" || exit 1
run() {  # name, timeout in seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name"
    timeout "$limit" "$@" 2>&1 | grep -v "it/s]" | tee "$out/$name.txt"
}
hrtem_paper() {
    # The paper preset (recipes/configs/hrtem_seg_paper.yaml: 512-pixel fields at 0.05 A
    # sampling, 8 phonons, 2-10 nm particles) shortened to fit the check: 640 training
    # fields, 12 epochs. Then its scores on abTEM's micrographs (benchmarks/data), clean
    # and with a camera's defects. The CPU default's figures are in docs/hrtem.md.
    local root=runs/gpu/hrtem_paper
    rm -rf "$root"
    run hrtem-paper 420 python recipes/hrtem_seg.py --config recipes/configs/hrtem_seg_paper.yaml \
        --trainer.default_root_dir="$root" --data.cache_dir="$root/cache" \
        --data.train_samples=640 --data.val_samples=32 --data.test_samples=64 \
        --trainer.max_epochs=12 --data.num_workers=4
    local ckpt
    ckpt=$(find "$root" -name best.ckpt | head -n 1)
    [ -n "$ckpt" ] || { echo "hrtem-paper: no checkpoint"; return; }
    run hrtem-paper-cross 120 python benchmarks/hrtem_cross_simulator.py score "$ckpt" \
        --json "$out/hrtem-paper-cross.json"
    run hrtem-paper-cross-defects 120 python benchmarks/hrtem_cross_simulator.py score "$ckpt" \
        --corrupt --json "$out/hrtem-paper-cross-defects.json"
}
for check in "${checks[@]}"; do
    case $check in
    hrtem-paper) hrtem_paper ;;
    # Augmentation on the CPU against a GPU training step: does a device-side pipeline pay?
    augmentation) run augmentation 180 python benchmarks/bench_augmentation.py --repeats 100 --device cuda --threads 8 ;;
    # HRTEM simulation throughput on the GPU (CPU against CUDA at 256 and 512 pixels).
    hrtem) run hrtem 240 python benchmarks/bench_hrtem.py --no-abtem ;;
    # Warehouse rendering on the GPU (the torch backend).
    warehouse) run warehouse 120 python benchmarks/bench_warehouse.py ;;
    *) echo "unknown check: $check (hrtem-paper, augmentation, hrtem, warehouse)"; exit 2 ;;
    esac
done
