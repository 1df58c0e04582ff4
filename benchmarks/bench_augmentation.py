"""What per-sample augmentation costs next to a training step, for both recipes.

    python benchmarks/bench_augmentation.py [--repeats 200] [--threads 2] [--device cuda]

Augmentation runs on the CPU, per sample, in the DataLoader's workers (albumentations); it
could instead run on the device, per batch, in ``on_after_batch_transfer`` (kornia draws
per-sample parameters on a batch; torchvision's v2 transforms draw one set per call, so a
whole batch would get the same flip). Moving it pays only where the workers cannot keep up
with the training steps. This prints, per recipe and pipeline, the median milliseconds per
sample of the CPU pipeline and of one training step per sample of the recipe's CPU model
(forward and backward, batch as in the recipe's config, on ``--device``), and their ratio:
how many worker processes it takes to augment as fast as the device trains (below 1: one
worker keeps up).

Measured on the development machine (x86_64, 2 cores, CPU steps): HRTEM D4 0.2 ms against
a 301 ms step per sample (ratio 0.001), pallets flip 1.2 ms against 538 ms (0.002), with the
photometric pipeline 1.0 and 6.3 ms (0.003 and 0.012). On the CPU augmentation in the
workers is free; that is why the pipelines run there, and a device-side pipeline is left
for when a GPU run measures a ratio near the worker count.

Pipelines: the recipes' defaults (HRTEM ``D4``; pallets ``HorizontalFlip``) and a heavier
photometric one of the kind domain randomization uses (brightness/contrast, Gaussian noise,
blur, JPEG).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from lightning_synth.data.augmentation import Augmentation

CONFIGS = Path(__file__).parents[1] / "recipes" / "configs"
PHOTOMETRIC = [
    {"RandomBrightnessContrast": {"p": 1.0}},
    {"GaussNoise": {"std_range": [0.01, 0.05], "p": 1.0}},
    {"GaussianBlur": {"blur_limit": [3, 5], "p": 1.0}},
    {"ImageCompression": {"quality_range": [60, 95], "p": 1.0}},
]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(function: Callable[[], Any], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def per_sample(spec: list[Any], sample: dict[str, Any], repeats: int) -> float:
    """Median milliseconds of the pipeline ``spec`` on ``sample``."""
    augment = Augmentation(spec)
    return median_ms(lambda: augment(sample), repeats)


def hrtem(repeats: int, device: str) -> tuple[dict[str, float], float]:
    from lightning_synth.tasks.segmentation import SegmentationTask

    config = yaml.safe_load((CONFIGS / "hrtem_seg.yaml").read_text())
    side = config["data"]["simulation"]["detector_pixels"]
    batch = config["data"]["batch_size"]
    sample = {"image": torch.rand(1, side, side), "mask": torch.randint(0, 2, (side, side))}
    pipelines = {"D4 (default)": ["D4"], "D4 + photometric": ["D4", *PHOTOMETRIC]}
    costs = {name: per_sample(spec, sample, repeats) for name, spec in pipelines.items()}
    task = SegmentationTask(**config["model"]).to(device)
    optimizer = torch.optim.Adam(task.parameters())
    images = torch.rand(batch, 1, side, side, device=device)
    masks = torch.randint(0, 2, (batch, side, side), device=device)

    def step() -> None:
        loss = task.loss(task(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(device)

    return costs, median_ms(step, max(3, repeats // 40)) / batch


def pallets(repeats: int, device: str) -> tuple[dict[str, float], float]:
    from lightning_synth.tasks.detection import DetectionTask

    config = yaml.safe_load((CONFIGS / "pallet_det.yaml").read_text())
    width, height = config["data"]["width"], config["data"]["height"]
    batch = config["data"]["batch_size"]
    boxes = torch.tensor([[10.0, 20.0, 80.0, 40.0], [150.0, 100.0, 300.0, 140.0]])
    sample = {"image": torch.rand(3, height, width), "boxes": boxes, "labels": torch.ones(2).long()}
    flip = [{"HorizontalFlip": {"p": 0.5}}]
    pipelines = {"flip (default)": flip, "flip + photometric": flip + PHOTOMETRIC}
    costs = {name: per_sample(spec, sample, repeats) for name, spec in pipelines.items()}
    task = DetectionTask(**config["model"]).to(device)
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    data = {
        "image": [sample["image"].to(device)] * batch,
        "boxes": [boxes.to(device)] * batch,
        "labels": [sample["labels"].to(device)] * batch,
    }

    def step() -> None:
        loss = task.training_step(data, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(device)

    task.train()
    return costs, median_ms(step, max(3, repeats // 40)) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the training step runs")
    args = parser.parse_args()
    # The tasks log from training_step; outside a Trainer Lightning warns about it.
    warnings.filterwarnings("ignore", message=".*self.trainer. reference is not registered")
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.machine()}, torch {torch.__version__}, training step on "
        f"{args.device} ({args.threads} CPU threads); augmentation as in one worker"
    )
    print(
        f"{'recipe':<8} {'pipeline':<20} {'aug ms/sample':>13} {'step ms/sample':>14} {'ratio':>6}"
    )
    for recipe, measure in (("hrtem", hrtem), ("pallets", pallets)):
        costs, step = measure(args.repeats, args.device)
        for name, cost in costs.items():
            print(f"{recipe:<8} {name:<20} {cost:>13.3f} {step:>14.1f} {cost / step:>6.3f}")


if __name__ == "__main__":
    main()
