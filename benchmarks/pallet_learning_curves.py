"""Learning curves of detector variants on a CPU: mAP against steps and against training time.

    python benchmarks/pallet_learning_curves.py [--variants stride8 resnet18 ...] [--seeds 0]
        [--steps 2000] [--every 250] [recipe options]
    python benchmarks/pallet_learning_curves.py --report

Each (variant, seed) is a run of ``recipes/pallet_det.py``'s CPU default with the variant's
options, ``--steps`` steps validated every ``--every`` steps on the stand-in ID and OOD
validation sets, with :class:`~lightning_synth.callbacks.LearningCurve` recording at each
validation the step, the seconds spent training so far (validation left out) and every
validation metric. Records (the curve, the test metrics of the best checkpoint, options,
wall time, machine) go to ``docs/pallet_learning/``; recorded runs are not run again, and
all runs of a seed share one rendered cache. The learning-rate schedule spans the whole
run, so a point of the curve is where a run of ``--steps`` stood at that step, not what a
shorter run would reach.

``--report`` prints, per variant, val ID mAP and mAP@.5 at each recorded step with the
training minutes it took, and the mAP reached per training minute.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lightning_synth.callbacks import LearningCurve
from lightning_synth.experiments import Cell, recorded, run_cell
from lightning_synth.experiments.cells import run_results

RECIPE = Path(__file__).parents[1] / "recipes" / "pallet_det.py"
RECORDS = Path(__file__).parents[1] / "docs" / "pallet_learning"
#: Variant name -> recipe options on top of the CPU default (``recipes/configs/pallet_det.yaml``).
VARIANTS: dict[str, tuple[str, ...]] = {
    # The CPU default: MobileNet-v3 with a pyramid from stride 8, batch norm, 320 x 240.
    "stride8": (),
    # torchvision's MobileNet-v3 FPN (pyramid from stride 32, its own anchors).
    "mobilenet-fpn": (
        "--model.model=fasterrcnn_mobilenet_v3_large_fpn",
        "--model.anchor_sizes=null",
        "--model.fpn_channels=null",
    ),
    # A ResNet-18 FPN (strides 4-64), torchvision's ResNet-50 detector with a lighter backbone.
    "resnet18": (
        "--model.model=fasterrcnn_resnet18_fpn",
        "--model.anchor_sizes=[16,32,64,128,256]",
        "--model.fpn_channels=null",
        "--model.channels_last=false",
    ),
    # timm ResNets under the stride-8 pyramid of the CPU default (strides 8-64, 128 wide).
    "timm-resnet18": ("--model.model=fasterrcnn_timm_fpn", "--model.backbone=resnet18"),
    "timm-resnet10t": ("--model.model=fasterrcnn_timm_fpn", "--model.backbone=resnet10t"),
}
#: The metric a curve is read by.
MONITOR = "val/id/map"


def curve_of(directory: Path) -> list[dict[str, float]]:
    """The learning curve that the run in ``directory`` wrote."""
    results = run_results(directory)
    if results is None:
        msg = f"{directory} holds no finished run"
        raise FileNotFoundError(msg)
    return LearningCurve.read(results.parent / "learning_curve.json")


def record_curve(cell: Cell, scratch: Path, records: Path) -> dict[str, Any]:
    """The cell's record with its curve (copied in from its run folder once)."""
    path = records / f"{cell.key}.json"
    record = json.loads(path.read_text())
    if "curve" not in record:
        record["curve"] = curve_of(scratch / cell.key)
        path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def cells(variants: list[str], seeds: list[int], steps: int, every: int) -> list[Cell]:
    """The runs: each variant and seed, ``steps`` steps validated every ``every``."""
    if steps < every or steps % every:
        msg = f"--steps must be a multiple of --every, got {steps} and {every}"
        raise ValueError(msg)
    schedule = (
        f"--trainer.max_epochs={steps // every}",
        f"--data.batches_per_epoch={every}",
        "--trainer.callbacks+=lightning_synth.callbacks.LearningCurve",
    )
    return [
        Cell(RECIPE, name, (*schedule, *VARIANTS[name]), seed, cache=f"cache-seed{seed}")
        for name in variants
        for seed in seeds
    ]


def report(records: list[dict[str, Any]]) -> str:
    """A Markdown table: per run, val ID mAP (mAP@.5) at each validation, and its minutes."""
    lines = [
        "| variant | seed | step | training min | val ID mAP | val ID mAP@.5 | mAP per min |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        for point in record["curve"]:
            minutes = point["train_seconds"] / 60
            lines.append(
                f"| {record['condition']} | {record['seed']} | {point['step']} | {minutes:.1f} | "
                f"{point.get(MONITOR, float('nan')):.3f} | "
                f"{point.get('val/id/map_50', float('nan')):.3f} | "
                f"{point.get(MONITOR, float('nan')) / max(minutes, 1e-9):.4f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--root", type=Path, default=Path("runs/pallet_learning"))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--report", action="store_true", help="print the records, run nothing")
    args, extra = parser.parse_known_args(argv)
    try:
        todo = cells(args.variants, args.seeds, args.steps, args.every)
    except ValueError as error:
        parser.error(str(error))
    found = []
    for cell in todo:
        if not args.report:
            run_cell(cell, args.root, args.records, extra)
        if recorded(cell, args.records) is not None:
            found.append(record_curve(cell, args.root, args.records))
    print(report(found))


if __name__ == "__main__":
    main()
