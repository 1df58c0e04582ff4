"""Can the CPU detector learn small pallets? torchvision's MobileNet FPN against the stride-8 one.

    python benchmarks/bench_detector_fit.py [--steps 200] [--images 8] [--threads 2]

Both detectors train from scratch, with the recipe CPU config's model settings
(``recipes/configs/pallet_det.yaml``: 320 x 240, box sampling, head width, aspect ratios,
channels-last, AdamW at its learning rate with a linear warm-up), on the same few fixed
stand-in ID images, batch 4, the same batches in the same order. Printed per detector: the
median seconds per training step, and mAP@[.5:.95] and mAP@.5 on the training images
(how well it fits what it saw) and on 16 other stand-in ID images.

The baseline is torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``, whose pyramid starts at
stride 32 (with its own anchor sizes, 32-512 px); the candidate is
``fasterrcnn_mobilenet_v3_large_stride8_fpn`` as the recipe configures it (strides 8-64,
anchors 16-128 px). A detector that cannot fit 8 images in a few hundred steps will not
learn the study's 16 real images either.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from lightning_synth.generators.warehouse import PalletSceneGenerator, standin_config
from lightning_synth.tasks.detection import DetectionTask

RECIPE_CONFIG = Path(__file__).parents[1] / "recipes" / "configs" / "pallet_det.yaml"
BASELINE = "fasterrcnn_mobilenet_v3_large_fpn"
#: Options of the recipe's model that only the stride-8 detector has.
STRIDE8_ONLY = ("anchor_sizes", "fpn_channels")


def split(samples: Sequence[dict[str, Any]]) -> tuple[list[torch.Tensor], list[dict]]:
    images = [s["image"] for s in samples]
    targets = [{"boxes": s["boxes"], "labels": s["labels"]} for s in samples]
    return images, targets


def average_precision(task: DetectionTask, samples: Sequence[dict[str, Any]]) -> dict[str, float]:
    metric = task.metrics.clone()["ap"]
    task.eval()
    with torch.no_grad():
        for start in range(0, len(samples), 4):
            images, targets = split(samples[start : start + 4])
            metric.update(task.model(images), targets)
    result = metric.compute()
    return {"map": float(result["map"]), "map_50": float(result["map_50"])}


def fit(
    options: dict[str, Any], train: Sequence[dict], held: Sequence[dict], steps: int
) -> dict[str, float]:
    options = dict(options)
    lr, weight_decay = options.pop("lr"), options.pop("weight_decay")
    warmup = options.pop("warmup_steps")
    options.pop("optimizer")
    torch.manual_seed(0)
    task = DetectionTask(**options)
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(0)
    seconds = []
    task.train()
    for step in range(steps):
        begin = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        picked = torch.randint(len(train), (4,), generator=order).tolist()
        losses = task.model(*split([train[i] for i in picked]))
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
        seconds.append(time.perf_counter() - begin)
    fitted = average_precision(task, train)
    other = average_precision(task, held)
    return {
        "s_per_step": statistics.median(seconds[1:]),
        "train_map": fitted["map"],
        "train_map_50": fitted["map_50"],
        "held_map": other["map"],
        "held_map_50": other["map_50"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--images", type=int, default=8, help="training images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = yaml.safe_load(RECIPE_CONFIG.read_text())
    model = recipe["model"]
    data = recipe["data"]
    config = standin_config("id", width=data["width"], height=data["height"], **data["scene"])
    generator = PalletSceneGenerator(config)
    train = [generator(5, i) for i in range(args.images)]
    held = [generator(5, 1000 + i) for i in range(16)]
    baseline = {k: v for k, v in model.items() if k not in STRIDE8_ONLY} | {"model": BASELINE}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads; {args.steps} steps on {args.images} stand-in ID images"
    )
    print("| detector | s/step | train mAP | train mAP@.5 | held mAP | held mAP@.5 |")
    print("| --- | --- | --- | --- | --- | --- |")
    results = {}
    for name, options in ((BASELINE, baseline), (model["model"], model)):
        results[name] = r = fit(options, train, held, args.steps)
        print(
            f"| {name} | {r['s_per_step']:.2f} | {r['train_map']:.3f} | {r['train_map_50']:.3f} "
            f"| {r['held_map']:.3f} | {r['held_map_50']:.3f} |",
            flush=True,
        )
    ours, theirs = results[model["model"]], results[BASELINE]
    print(
        f"step time {ours['s_per_step'] / theirs['s_per_step']:.2f}x the baseline's; "
        f"train mAP@.5 {ours['train_map_50']:.3f} vs {theirs['train_map_50']:.3f}"
    )


if __name__ == "__main__":
    main()
