"""A look at the generator: a PNG grid of samples per realism level, boxes drawn.

    python -m lightning_synth.generators.warehouse preview --out pallets.png \
        [--levels realistic half_realistic random] [--samples 4] [--width 640 --height 480]
        [--standins] [--colors 256]

Kept pallets get a green box, pallets dropped by the visibility filter a yellow one. One row
per level (and per stand-in domain with ``--standins``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from lightning_synth import drawing
from lightning_synth.generators.warehouse.generator import PalletSceneGenerator
from lightning_synth.generators.warehouse.realism import REALISM_LEVELS, realism_config
from lightning_synth.generators.warehouse.standins import (
    DOMAIN_SEEDS,
    STANDIN_DOMAINS,
    standin_config,
)


def draw_boxes(sample: dict, width: int = 2) -> Image.Image:
    """The sample's image with its kept (green) and crowd (yellow) boxes drawn."""
    ignored = sample["meta"].get("crowd_boxes", [])
    layers = [(ignored, (255, 220, 0), 1), (sample["boxes"], (0, 255, 64), width)]
    return Image.fromarray(drawing.draw_boxes(sample["image"], layers))


def preview_grid(
    levels: Sequence[str], samples: int, width: int, height: int, standins: bool, seed: int
) -> Image.Image:
    """Rows of ``samples`` images: one row per level (and stand-in domain)."""
    rows: list[tuple[str, PalletSceneGenerator, int]] = [
        (level, PalletSceneGenerator(realism_config(level, width=width, height=height)), seed)  # type: ignore[arg-type]
        for level in levels
    ]
    if standins:
        rows += [
            (
                f"stand-in {domain}",
                PalletSceneGenerator(standin_config(domain, width=width, height=height)),  # type: ignore[arg-type]
                DOMAIN_SEEDS[domain],
            )
            for domain in STANDIN_DOMAINS
        ]
    label_width = 150
    grid = Image.new("RGB", (label_width + samples * width, len(rows) * height), (255, 255, 255))
    pen = ImageDraw.Draw(grid)
    for row, (name, generator, row_seed) in enumerate(rows):
        pen.text((8, row * height + height // 2), name, fill=(0, 0, 0))
        for column in range(samples):
            picture = draw_boxes(generator(row_seed, column))
            grid.paste(picture, (label_width + column * width, row * height))
    return grid


def main(argv: Sequence[str] | None = None) -> None:
    """Command line of the preview."""
    parser = argparse.ArgumentParser(prog="python -m lightning_synth.generators.warehouse")
    commands = parser.add_subparsers(dest="command", required=True)
    preview = commands.add_parser("preview", help="write a PNG grid of samples per level")
    preview.add_argument("--out", type=Path, required=True, help="PNG file to write")
    preview.add_argument(
        "--levels", nargs="+", default=list(REALISM_LEVELS), choices=REALISM_LEVELS
    )
    preview.add_argument("--samples", type=int, default=4, help="images per level")
    preview.add_argument("--width", type=int, default=640)
    preview.add_argument("--height", type=int, default=480)
    preview.add_argument("--standins", action="store_true", help="add the stand-in domains")
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument(
        "--colors", type=int, help="quantise to this many colours (a smaller PNG, e.g. 256)"
    )
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    torch.set_num_threads(1)
    grid = preview_grid(
        args.levels, args.samples, args.width, args.height, args.standins, args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.colors:
        grid = grid.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT)
    grid.save(args.out, optimize=True)
    print(f"wrote {args.out} ({grid.width} x {grid.height})")
