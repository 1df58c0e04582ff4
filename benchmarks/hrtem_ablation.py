"""Fidelity and noise ablations of the HRTEM recipe's earlier default, on one held-out set.

The runs recorded in ``docs/hrtem_ablation/`` trained the default of that time (25.6 A
fields, one 1.5-2.2 nm particle, min-max normalisation; the ``before`` condition of
``benchmarks/hrtem_transfer.py``), and this script still does, so that its records stay
reproducible. ``benchmarks/hrtem_transfer.py --study fidelity noise`` runs the same studies
on today's default and scores them on another simulator's images too.

    python benchmarks/hrtem_ablation.py [--study fidelity noise] [--seeds 0 1 2]
                                        [--conditions basic full ...] [recipe options]

Each (condition, seed) is one run of ``recipes/hrtem_seg.py`` with its own cache under
``runs/ablation/``. A finished run leaves its metrics, options and wall time in
``docs/hrtem_ablation/<condition>-seed<seed>.json`` (small, committed), and a run whose
record exists is not run again: an interrupted study resumes where it stopped, on this
machine or another. The held-out domain depends only on the seed:
full fidelity and a fixed dose range (50-600 e/A^2) whatever the training set uses, so every
condition is compared on the same test images.

- ``fidelity``: one condition per tier (basic -> thermal -> aberrations -> plasmon -> full),
  all at the study's dose range (100-1200 e/A^2).
- ``noise``: full fidelity at other training doses: noiseless, the study's range (the same
  runs as the fidelity study's ``full``) and low dose only (50-300 e/A^2, noisier than the
  held-out set).

Prints a Markdown table per study: held-out F1, IoU, precision and recall, mean +- standard
deviation over seeds (the sample standard deviation; with 3 seeds it is rough). ``--report``
runs nothing: it prints the tables from the records there are, each row over the seeds
recorded for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hrtem_transfer import CONDITIONS
from lightning_synth.experiments import Cell, run_cells, summarise

RECIPE = Path(__file__).parents[1] / "recipes" / "hrtem_seg.py"
RECORDS = Path(__file__).parents[1] / "docs" / "hrtem_ablation"
#: Condition name -> recipe options. The "full" run is shared by both studies.
FIDELITY = {
    tier: [f"--data.simulation.fidelity={tier}"]
    for tier in ("basic", "thermal", "aberrations", "plasmon", "full")
}
NOISE = {
    "noiseless": ["--data.simulation.fidelity=full", "--data.simulation.dose=null"],
    "full": FIDELITY["full"],
    "dose-50-300": ["--data.simulation.fidelity=full", "--data.simulation.dose=[50,300]"],
}
STUDIES = {"fidelity": FIDELITY, "noise": NOISE}
METRICS = ("f1", "iou", "precision", "recall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", default=list(STUDIES), choices=STUDIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", help="only these conditions of each study")
    parser.add_argument("--root", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--records", type=Path, default=RECORDS, help="finished runs' metrics")
    parser.add_argument("--report", action="store_true", help="print the records, run nothing")
    args, extra = parser.parse_known_args()
    known = {name for study in args.study for name in STUDIES[study]}
    unknown = sorted(set(args.conditions or []) - known)
    if unknown:
        parser.error(f"unknown conditions {unknown}; the studies have {sorted(known)}")
    tables = []
    for study in args.study:
        rows = []
        for name, options in STUDIES[study].items():
            if args.conditions and name not in args.conditions:
                continue
            before = (*CONDITIONS["before"], *options)  # the default these records trained
            cells = [Cell(RECIPE, name, before, seed) for seed in args.seeds]
            scores = run_cells(cells, args.root, args.records, extra, args.report)
            if not scores:
                continue
            figures = [summarise([s[f"test/heldout/{m}"] for s in scores]) for m in METRICS]
            rows.append(f"| {name} | " + " | ".join(figures) + f" | {len(scores)} |")
        header = f"| {study}: trained on | " + " | ".join(f"held-out {m}" for m in METRICS)
        tables.append(
            header + " | seeds |\n|" + " --- |" * (len(METRICS) + 2) + "\n" + "\n".join(rows)
        )
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
