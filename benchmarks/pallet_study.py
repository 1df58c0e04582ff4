"""The pallet study at CPU scale: AP on ID and OOD for each way of using 10% real data.

    python benchmarks/pallet_study.py [--seeds 0] [--conditions real_only mixed-random ...]
                                      [--real-fraction 0.1] [recipe options]

Conditions (all with 10% of the 160 stand-in real images, i.e. 16, unless
``--real-fraction`` says otherwise):

- ``real_only``: the real images alone;
- ``synthetic_only-<level>``: the synthetic images of a level alone (no real image);
- ``mixed-<level>``: real and synthetic images of a level, half and half in every batch;
- ``bridged-<level>``: pretraining on the level's synthetic images for the first half of the
  epochs, then fine-tuning on the real ones (``BridgedTransfer``).

Each (condition, seed) is one run of ``recipes/pallet_det.py``'s CPU default with a longer
schedule (``STUDY_OPTIONS``: 4 epochs of 250 batches of 4, i.e. 1000 steps, the same for
every condition); finished runs are recorded in ``docs/pallet_study/`` and not run again.
The runs of a seed share one rendered cache (the stand-in sets, and each level's synthetic
pool, are the same for every condition), so a run's wall time includes rendering only
where it is the first to need a set.
``--report`` runs nothing and prints the table from the records there are. Prints a
Markdown table of test mAP@[.5:.95] and mAP@.5 on the stand-in ID and OOD sets
(mean +- standard deviation over seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_synth.experiments import Cell, run_cells, summarise

RECIPE = Path(__file__).parents[1] / "recipes" / "pallet_det.py"
RECORDS = Path(__file__).parents[1] / "docs" / "pallet_study"
LEVELS = ("realistic", "half_realistic", "random")
#: The study's schedule, on top of the recipe's CPU default.
STUDY_OPTIONS = ("--trainer.max_epochs=4", "--data.batches_per_epoch=250")


def conditions(real_fraction: float) -> dict[str, list[str]]:
    """Condition name -> recipe options."""
    real = f"--data.real_fraction={real_fraction}"
    table = {"real_only": ["--data.strategy=real_only", real]}
    for level in LEVELS:
        table[f"synthetic_only-{level}"] = [
            "--data.strategy=synthetic_only",
            f"--data.realism={level}",
        ]
        table[f"mixed-{level}"] = ["--data.strategy=mixed", f"--data.realism={level}", real]
        table[f"bridged-{level}"] = ["--data.strategy=bridged", f"--data.realism={level}", real]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--conditions", nargs="+", help="only these conditions")
    parser.add_argument("--real-fraction", type=float, default=0.1)
    parser.add_argument("--root", type=Path, default=Path("runs/pallet_study"))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--report", action="store_true", help="print the records, run nothing")
    args, extra = parser.parse_known_args()
    table = conditions(args.real_fraction)
    unknown = sorted(set(args.conditions or []) - set(table))
    if unknown:
        parser.error(f"unknown conditions {unknown}; choose from {sorted(table)}")
    suffix = "" if args.real_fraction == 0.1 else f"-real{args.real_fraction}"
    rows = []
    for name, options in table.items():
        if args.conditions and name not in args.conditions:
            continue
        cells = [
            Cell(RECIPE, name + suffix, (*STUDY_OPTIONS, *options), s, cache=f"cache-seed{s}")
            for s in args.seeds
        ]
        scores = run_cells(cells, args.root, args.records, extra, args.report)
        if not scores:
            continue
        figures = [
            summarise([s[f"test/{domain}/{metric}"] for s in scores])
            for domain in ("id", "ood")
            for metric in ("map", "map_50")
        ]
        rows.append(f"| {name} | " + " | ".join(figures) + f" | {len(scores)} |")
    print("| condition | ID mAP | ID mAP@.5 | OOD mAP | OOD mAP@.5 | seeds |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
