"""Speed of the warehouse generator: images/s per CPU core, where the time goes, GPU.

    python benchmarks/bench_warehouse.py [--images 20] [--width 640 --height 480]

1. Images/s on one CPU core (``torch.set_num_threads(1)``; the numba kernels are
   single-threaded) for each realism level and stand-in domain, for the whole sample
   (scene drawing, rendering, annotations), with the numba backend and, as the baseline in
   the same run, the torch backend on the same core. DataLoader workers each use one core.
2. Where the time goes for one ``realistic`` image with the numba backend.
3. What a CPU training run consumes: images/s of training steps of the recipe's CPU default
   (MobileNet-v3 Faster R-CNN at 320 x 240, batch 4, 2 threads) against what one generator
   core renders at that size.
4. On CUDA, when present: images/s of the torch backend on the GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from lightning_synth.generators.warehouse import (
    PalletSceneGenerator,
    draw_scene,
    realism_config,
    standin_config,
)
from lightning_synth.generators.warehouse.materials import MaterialTable
from lightning_synth.generators.warehouse.raycast import cast_boxes
from lightning_synth.generators.warehouse.render import (
    SHADOW_MAP_FOV,
    SHADOW_MAP_SIDE,
    _annotations,
    _camera_effects,
    _shade_numba,
    down_camera,
)


def rate(generator: PalletSceneGenerator, images: int, start: int = 1000) -> float:
    """Images/s of ``generator`` over ``images`` indices (after one warm-up sample)."""
    generator(0, start - 1)
    begin = time.perf_counter()
    for index in range(start, start + images):
        generator(0, index)
    return images / (time.perf_counter() - begin)


def per_level(images: int, width: int, height: int) -> None:
    configs = {
        level: realism_config(level, width=width, height=height)  # type: ignore[arg-type]
        for level in ("realistic", "half_realistic", "random")
    }
    configs.update(
        {f"stand-in {d}": standin_config(d, width=width, height=height) for d in ("id", "ood")}  # type: ignore[arg-type]
    )
    print(f"\n1. images/s on one core, {width} x {height}, {images} images each")
    print(f"{'set':<18} {'numba':>8} {'torch':>8} {'ratio':>7}")
    for name, config in configs.items():
        fast = rate(PalletSceneGenerator(config, backend="numba"), images)
        slow = rate(PalletSceneGenerator(config, backend="torch"), max(3, images // 4))
        print(f"{name:<18} {fast:>8.1f} {slow:>8.2f} {fast / slow:>6.1f}x")


def breakdown(width: int, height: int, repeats: int = 10) -> None:
    config = realism_config("realistic", width=width, height=height)
    times: dict[str, list[float]] = {}

    def clock(name: str, function, *args):  # type: ignore[no-untyped-def]
        begin = time.perf_counter()
        result = function(*args)
        times.setdefault(name, []).append(time.perf_counter() - begin)
        return result

    for index in range(repeats + 1):
        rng = np.random.default_rng([7, index])
        scene = clock("draw the scene (Python, numpy)", draw_scene, config, rng)
        count = len(scene.outlines)
        hits = clock(
            "ray cast + coverage (numba)",
            lambda s=scene, c=count: cast_boxes(s.boxes, s.camera, instances=c, backend="numba"),
        )
        view = down_camera(scene.lights[0].position, SHADOW_MAP_SIDE, SHADOW_MAP_FOV)
        clock("shadow map (numba)", lambda s=scene, v=view: cast_boxes(s.boxes, v, backend="numba"))
        table = clock(
            "material tiles (numpy)",
            lambda s=scene: MaterialTable.build(s.materials, np.random.default_rng(0), "cpu"),
        )
        radiance, _, on_box = clock(
            "shading, incl. its shadow map (numba)", _shade_numba, scene, hits, table
        )
        clock(
            "camera effects (numba)",
            lambda r=radiance, s=scene: _camera_effects(
                r.reshape(3, height, width), s.effects, torch.Generator().manual_seed(0), "numba"
            ),
        )
        owner = scene.boxes.instances.index_select(0, hits.box.clamp_min(0))
        instance = torch.where(on_box, owner, -1)
        clock(
            "annotations (torch)",
            lambda i=instance, s=scene, c=count, h=hits: _annotations(
                i, h.footprint, s.outlines, s.camera, c
            ),
        )
        if index == 0:
            times.clear()  # warm-up
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    shadow = medians.pop("shadow map (numba)")
    total = sum(medians.values())
    print(f"\n2. where the time goes, one realistic {width} x {height} image: {total:.0f} ms")
    for name, milliseconds in medians.items():
        print(f"   {name:<40} {milliseconds:>6.1f} ms {100 * milliseconds / total:>5.1f}%")
    print(f"   (of the shading: the shadow map's ray cast {shadow:.1f} ms)")


def training_consumption(images: int) -> None:
    from lightning_synth.data.pallets import rendered_pallets
    from lightning_synth.tasks.detection import DetectionTask

    torch.set_num_threads(2)
    config = realism_config("random", width=320, height=240)
    data = rendered_pallets(config, 8, seed=0)
    samples = [data[i] for i in range(8)]
    # The detector of the recipe's CPU config, as it trains there.
    recipe_config = Path(__file__).parents[1] / "recipes" / "configs" / "pallet_det.yaml"
    task = DetectionTask(**yaml.safe_load(recipe_config.read_text())["model"])
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    task.train()
    batch = samples[:4]
    steps = []
    for step in range(4):
        begin = time.perf_counter()
        losses = task.model(
            [s["image"] for s in batch],
            [{"boxes": s["boxes"], "labels": s["labels"]} for s in batch],
        )
        sum(losses.values()).backward()  # type: ignore[union-attr]
        optimizer.step()
        optimizer.zero_grad()
        if step:
            steps.append(time.perf_counter() - begin)
    consumed = 4 / statistics.median(steps)
    torch.set_num_threads(1)
    produced = rate(PalletSceneGenerator(config), images)
    print("\n3. a CPU training run (recipe default, 320 x 240, batch 4, 2 threads)")
    print(
        f"   consumes {consumed:.2f} images/s; one generator core renders {produced:.1f} images/s"
    )
    print(f"   -> one worker feeds it {produced / consumed:.0f}x over")


def on_gpu(images: int, width: int, height: int) -> None:
    if not torch.cuda.is_available():
        print("\n4. no CUDA device: GPU throughput not measured")
        return
    config = realism_config("realistic", width=width, height=height)
    generator = PalletSceneGenerator(config, device="cuda", backend="torch")
    torch.cuda.synchronize()
    speed = rate(generator, images)
    print(f"\n4. torch backend on {torch.cuda.get_device_name()}: {speed:.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--skip-training", action="store_true", help="skip part 3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"CUDA {torch.cuda.is_available()}"
    )
    per_level(args.images, args.width, args.height)
    breakdown(args.width, args.height)
    if not args.skip_training:
        training_consumption(args.images)
    on_gpu(args.images, args.width, args.height)


if __name__ == "__main__":
    main()
