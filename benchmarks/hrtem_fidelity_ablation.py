"""Fidelity ablation: train the HRTEM recipe on each fidelity tier, test on the same held-out set.

    python benchmarks/hrtem_fidelity_ablation.py [--tiers basic full] [--seeds 0 1 2]

Each (tier, seed) is one run of ``recipes/hrtem_seg.py`` with its own cache under
``runs/ablation/``; a finished run (its ``results.json`` exists) is not run again. The held-out
domain is at full fidelity for every tier and depends only on the seed, so the tiers are
compared on the same images. Prints a Markdown table of held-out F1 and IoU (mean and spread
over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).parents[1] / "recipes" / "hrtem_seg.py"
TIERS = ("basic", "thermal", "aberrations", "plasmon", "full")


def run(tier: str, seed: int, root: Path, extra: list[str]) -> dict[str, float]:
    directory = root / f"{tier}-seed{seed}"
    results = directory / "lightning_logs" / "version_0" / "results.json"
    if not results.exists():
        subprocess.run(
            [
                sys.executable,
                str(RECIPE),
                f"--seed_everything={seed}",
                f"--data.seed={seed}",
                f"--data.simulation.fidelity={tier}",
                f"--data.cache_dir={directory / 'cache'}",
                f"--trainer.default_root_dir={directory}",
                f"--trainer.logger.init_args.save_dir={directory}",
                "--trainer.enable_progress_bar=false",
                *extra,
            ],
            check=True,
        )
    return json.loads(results.read_text())


def _summary(values: list[float]) -> str:
    spread = f" +- {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", nargs="+", default=list(TIERS), choices=TIERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("runs/ablation"))
    args, extra = parser.parse_known_args()
    rows = []
    for tier in args.tiers:
        scores = [run(tier, seed, args.root, extra) for seed in args.seeds]
        f1 = [s["test/heldout/f1"] for s in scores]
        iou = [s["test/heldout/iou"] for s in scores]
        rows.append(f"| {tier} | {_summary(f1)} | {_summary(iou)} | {len(f1)} |")
    print("| trained on tier | held-out F1 | held-out IoU | seeds |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
