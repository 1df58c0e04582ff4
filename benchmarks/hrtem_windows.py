"""How `segment` should normalise a large micrograph, asked of this simulator's own images.

    python benchmarks/hrtem_windows.py CHECKPOINT [CHECKPOINT ...] [--fields 8]
                                       [--particles 1 3]

A model trains on 128- or 192-pixel crops (25.6 or 38.4 A), each normalised on its own, and
is validated on 256-pixel fields; users' micrographs are often far larger. This renders
(once, cached in ``--cache``) fields of 512 x 512 pixels (102 A at 0.2 A) from the recipe's
held-out domain with one to three particles (``--particles 2 6``: denser), and scores each
checkpoint on them with the whole image normalised at once (the default of
:func:`lightning_synth.predict.segment`) and with each of its windows normalised on its own,
for several window sides. It uses no image of another simulator, so what it says is not
fitted to the cross-simulator set that the models are judged on
(``hrtem_cross_simulator.py``). It said: the whole image (docs/hrtem.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lightning_synth.data.hrtem import held_out_config
from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig
from lightning_synth.predict import load_task, segment, segmentation_settings
from lightning_synth.tasks import SegmentationTask

#: The recipe's simulation (recipes/configs/hrtem_seg.yaml), at twice the field side.
RECIPE = SimulationConfig(
    detector_pixels=512,
    detector_pixel_size=0.2,
    sampling=0.1,
    particle_diameter=(20.0, 50.0),
    particles=(1, 3),
    carbon_thickness=(20.0, 80.0),
    frozen_phonons=4,
)
#: Seeds of these fields (no training or test set of the recipe uses them).
SEED = 7_340_031
#: (window side, overlap) in model pixels; None: the whole image normalised at once.
SETTINGS: tuple[tuple[int, int] | None, ...] = (None, (128, 64), (192, 64), (256, 64))


def fields(count: int, config: SimulationConfig, cache: Path) -> list[dict[str, np.ndarray]]:
    """``count`` held-out fields of ``config``, rendered once into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    simulator = HRTEMSimulator(held_out_config(config), device="cpu")
    out = []
    for index in range(count):
        path = cache / f"{index:03d}.npz"
        if not path.exists():
            start = time.perf_counter()
            sample = simulator.simulate(SEED + index)
            np.savez_compressed(path, image=sample["image"][0].numpy(), mask=sample["mask"].numpy())
            print(f"field {index + 1}/{count}: {time.perf_counter() - start:.0f} s", flush=True)
        content = np.load(path)
        out.append({"image": content["image"], "mask": content["mask"].astype(bool)})
    return out


def f1(masks: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """F1 of the particle pixels, pooled over the images."""
    hits = sum(int((m & t).sum()) for m, t in zip(masks, truths, strict=True))
    marked = sum(int(m.sum()) for m in masks) + sum(int(t.sum()) for t in truths)
    return 2 * hits / max(marked, 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--fields", type=int, default=12)
    parser.add_argument("--particles", type=int, nargs=2, default=list(RECIPE.particles))
    parser.add_argument("--cache", type=Path, default=Path("runs/hrtem_windows"))
    args = parser.parse_args(argv)
    if args.fields < 1:
        parser.error(f"--fields must be >= 1, got {args.fields}")
    low, high = args.particles
    if not 1 <= low <= high:
        parser.error(f"--particles must be LOW HIGH with 1 <= LOW <= HIGH, got {low} {high}")
    config = dataclasses.replace(RECIPE, particles=(low, high))
    items = fields(args.fields, config, args.cache / f"particles-{low}-{high}")
    truths = [item["mask"] for item in items]
    print("| checkpoint | " + " | ".join(label(s) for s in SETTINGS) + " |")
    print("| --- |" + " --- |" * len(SETTINGS))
    for checkpoint in args.checkpoints:
        task = load_task(SegmentationTask, checkpoint)
        settings = segmentation_settings(checkpoint)
        scores = []
        with torch.no_grad():
            for setting in SETTINGS:
                tile, overlap = setting or (256, 64)
                masks = [
                    segment(
                        task,
                        item["image"],
                        config.detector_pixel_size,
                        tile=tile,
                        overlap=overlap,
                        normalize_windows=setting is not None,
                        **settings,
                    ).numpy()
                    > 0
                    for item in items
                ]
                scores.append(f1(masks, truths))
        print(f"| {checkpoint} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)


def label(setting: tuple[int, int] | None) -> str:
    return "whole image" if setting is None else f"windows of {setting[0]}"


if __name__ == "__main__":
    sys.exit(main())
