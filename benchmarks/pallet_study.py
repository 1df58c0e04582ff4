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
Markdown table of test mAP@[.5:.95] and mAP@.5 on every test set of the runs: the stand-in
ID and OOD sets and the recipe's test-only sets (the independent set) (mean +- standard
deviation over seeds).

``--uncertainty N`` (with the runs' checkpoints in ``--root``) also asks how much of each
figure the draw of the test images decides: each run's best checkpoint detects on the test
sets again (the predictions are kept beside the checkpoint), and ``N`` bootstrap resamples
of the test images, the same for every run, give a 95% interval for each condition's mAP
and for its paired difference to ``real_only`` (and of bridged to mixed per level), with
the share of resamples in which the difference is positive. Every run is tested on the
same stand-in images (their seeds are fixed), so the pairing holds across seeds too. The
intervals cover the test set's sampling, not another training seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from lightning_synth.experiments import Cell, recorded, run_cells, summarise
from lightning_synth.experiments.cells import run_results
from lightning_synth.experiments.uncertainty import (
    average_precision,
    bootstrap,
    interval,
    match_detections,
)

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
    parser.add_argument(
        "--uncertainty",
        type=int,
        metavar="N",
        help="with --report: bootstrap the test images N times (needs the runs' checkpoints)",
    )
    args, extra = parser.parse_known_args()
    table = conditions(args.real_fraction)
    unknown = sorted(set(args.conditions or []) - set(table))
    if unknown:
        parser.error(f"unknown conditions {unknown}; choose from {sorted(table)}")
    suffix = "" if args.real_fraction == 0.1 else f"-real{args.real_fraction}"
    rows: list[tuple[str, list[dict[str, float]]]] = []
    recorded_cells: dict[str, list[Cell]] = {}
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
        recorded_cells[name] = [c for c in cells if recorded(c, args.records) is not None]
        rows.append((name, scores))
    print(study_table(rows))
    if args.uncertainty:
        print_uncertainty(recorded_cells, args.root, args.records, args.uncertainty)


def study_table(rows: list[tuple[str, list[dict[str, float]]]]) -> str:
    """A Markdown table of test mAP and mAP@.5 per condition and test set.

    Every test set the runs have, the stand-in ID and OOD sets first; mean +- standard
    deviation over seeds; "-" where some run of the condition lacks the set.
    """
    found = {key.split("/")[1] for _, scores in rows for s in scores for key in s}
    sets = [name for name in ("id", "ood") if name in found] + sorted(found - {"id", "ood"})
    header = ["condition"] + [f"{name} {m}" for name in sets for m in ("mAP", "mAP@.5")]
    lines = ["| " + " | ".join([*header, "seeds"]) + " |", "|" + " --- |" * (len(header) + 1)]
    for condition, scores in rows:
        figures = []
        for name in sets:
            for metric in ("map", "map_50"):
                key = f"test/{name}/{metric}"
                values = [s[key] for s in scores if key in s]
                figures.append(summarise(values) if len(values) == len(scores) else "-")
        lines.append(f"| {condition} | " + " | ".join(figures) + f" | {len(scores)} |")
    return "\n".join(lines)


def test_predictions(checkpoint: Path, config: Path) -> dict[str, tuple[list, list]]:
    """Detections of ``checkpoint`` on each test set of the run's ``config``, with the truth."""
    from lightning_synth.data.pallets import PalletDataModule
    from lightning_synth.tasks.detection import DetectionTask, evaluation_target

    data = yaml.safe_load(config.read_text())["data"]
    datamodule = PalletDataModule(**{**data, "num_workers": 0})
    datamodule.prepare_data()
    datamodule.setup("test")
    task = DetectionTask.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    sets = {}
    for name, loader in datamodule.test_dataloader().items():  # type: ignore[union-attr]
        found, truth = [], []
        for batch in loader:
            with torch.no_grad():
                found += [{k: v.cpu() for k, v in p.items()} for p in task(batch["image"])]
            truth += [
                evaluation_target(b, lab, meta)  # crowd regions included
                for b, lab, meta in zip(batch["boxes"], batch["labels"], batch["meta"], strict=True)
            ]
        sets[name] = (found, truth)
    return sets


def print_uncertainty(
    cells: dict[str, list[Cell]], root: Path, records: Path, resamples: int
) -> None:
    """Bootstrap intervals of each condition's mAP and of the differences between them."""
    matches: dict[str, dict[str, list]] = {}  # domain -> condition -> matches per seed
    for name, runs in cells.items():
        for cell in runs:
            results = run_results(root / cell.key)
            checkpoint = results.parent / "checkpoints" / "best.ckpt" if results else None
            if checkpoint is None or not checkpoint.exists():
                print(f"{cell.key}: no checkpoint in {root / cell.key}, left out of the intervals")
                continue
            version = checkpoint.parents[1]
            kept = version / "test_predictions.pt"
            if not kept.exists():
                torch.save(test_predictions(checkpoint, version / "config.yaml"), kept)
            sets = torch.load(kept)
            record = json.loads((records / f"{cell.key}.json").read_text())
            for domain, (found, truth) in sets.items():
                matched = match_detections(found, truth)
                again = float(average_precision(matched).mean())
                logged = record["metrics"][f"test/{domain}/map"]
                if abs(again - logged) > 1e-4:
                    print(f"{cell.key} {domain}: mAP {again:.4f} here, {logged:.4f} recorded")
                matches.setdefault(domain, {}).setdefault(name, []).append(matched)
    for domain, by_condition in matches.items():
        flat = {f"{n}#{k}": m for n, ms in by_condition.items() for k, m in enumerate(ms)}
        samples = bootstrap(flat, resamples)
        # The mAP of each resample, averaged over a condition's seeds.
        per_condition = {
            n: np.mean([samples[f"{n}#{k}"].mean(axis=1) for k in range(len(ms))], axis=0)
            for n, ms in by_condition.items()
        }
        # The figure itself: the full test set's mAP, averaged over seeds.
        full = {
            n: float(np.mean([average_precision(m).mean() for m in ms]))
            for n, ms in by_condition.items()
        }
        print(f"\n{domain.upper()} test set, {resamples} resamples of its images:")
        print("| condition | mAP (95% interval) | minus real_only (95% interval) | P(> 0) |")
        print("| --- | --- | --- | --- |")
        base = per_condition.get("real_only")
        for name, values in per_condition.items():
            low, high = interval(values)
            line = f"| {name} | {full[name]:.4f} ({low:.4f}, {high:.4f}) |"
            if base is not None and name != "real_only":
                delta = values - base
                low, high = interval(delta)
                share = np.mean(delta > 0)
                gain = full[name] - full["real_only"]
                line += f" {gain:+.4f} ({low:+.4f}, {high:+.4f}) | {share:.2f} |"
            else:
                line += " | |"
            print(line)
        for level in LEVELS:
            mixed = per_condition.get(f"mixed-{level}")
            bridged = per_condition.get(f"bridged-{level}")
            if mixed is not None and bridged is not None:
                delta = bridged - mixed
                low, high = interval(delta)
                gain = full[f"bridged-{level}"] - full[f"mixed-{level}"]
                print(
                    f"bridged-{level} minus mixed-{level}: {gain:+.4f} "
                    f"({low:+.4f}, {high:+.4f}), P(> 0) {np.mean(delta > 0):.2f}"
                )


if __name__ == "__main__":
    main()
