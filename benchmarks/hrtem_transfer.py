"""What each setting of the HRTEM default buys on micrographs that another simulator made.

    python benchmarks/hrtem_transfer.py [--study robustness fidelity noise]
                                        [--conditions default coverage ...] [--seeds 0 1 2]
    python benchmarks/hrtem_transfer.py --report      # the tables from the records, no run

Each (condition, seed) is one run of ``recipes/hrtem_seg.py`` (the default config plus the
condition's options) through :func:`lightning_synth.experiments.run_cell`: resumable, its
record in ``docs/hrtem_transfer/<condition>-seed<seed>.json``. Once a run has finished, its
best checkpoint is scored on the cross-simulator set of ``benchmarks/hrtem_cross_simulator.py``
(render it first), as abTEM made it and with a camera's defects added, and those scores join
the record. The ``robustness`` study, from the default before this study to the default now
(every condition up to ``single-crystals`` draws single crystals only, spheres and Wulff
shapes, as the defaults of its time did, and every condition but ``default`` trains at
100-1200 e/A^2, as every default did before it):

- ``before``: 25.6 A fields, one 1.5-2.2 nm particle on 2-5 nm of carbon, 8 frozen phonons,
  400 whole fields, min-max normalisation, 12 epochs.
- ``one-pixel-size``: the default before ``coarser_pixels`` (51.2 A fields, one to three
  2-5 nm particles on 2-8 nm of carbon, 4 frozen phonons, 160 fields, random 128-pixel
  crops, 16 epochs, percentile normalisation, none of the robustness knobs), trained at the
  simulation's pixel size only.
- ``robust``: ``one-pixel-size`` with the robust normalisation.
- ``knobs``: ``robust`` plus the robustness knobs (Kirkland or Lobato potentials per image,
  read-out noise, gain pattern, hot pixels); ``knobs-percentile``: ``one-pixel-size`` plus
  the knobs.
- ``crop128``: ``one-pixel-size`` with half the training crops made coarser by a factor
  of 1-1.6 and resampled back (``coarser_pixels``), as users' images at coarser pixels are;
  ``longer`` (28 epochs, the rate decayed x0.9 per epoch) and ``normalize-fields`` (each
  field normalised whole before the crop): ``crop128`` otherwise.
- ``crop192``: ``crop128`` with 192-pixel crops; ``crop192-narrow``: the same through a
  U-Net decoder of half smp's widths (a training step 0.6x the cost on the CPU);
  ``crop192-more-fields``: ``crop192-narrow`` on twice the fields for half the epochs, the
  rate decayed x0.64 per epoch (the same steps and schedule).
- ``single-crystals``: the half-width decoder on whole 256-pixel fields, of single
  crystals.
- ``dose-100-1200``: ``single-crystals`` with multiply twinned particles (Ino decahedra,
  Mackay icosahedra) among the shapes, a quarter each; the default until it trained at low
  dose.
- ``log-dose``: ``dose-100-1200`` with the training doses drawn uniformly in log dose (the
  same fields, the same 100-1200 e/A^2, more of them at low dose).
- ``default``: the recipe's default, ``dose-100-1200`` trained at 50-300 e/A^2.
- ``grid-knobs``: ``dose-100-1200`` with the numerics drawn per image (sampling 0.05 or
  0.1 A, slices of 1-2.5 A, 2-8 frozen phonons); ``sampling-knob`` and ``slices-phonons``
  draw the first or the other two only.

The ``fidelity`` study trains ``single-crystals`` at each tier below ``full`` (``basic``,
``thermal``, ``aberrations``, ``plasmon``; ``full`` is ``single-crystals``), and the
``noise`` study without dose noise (``noiseless``) and at low dose only (``dose-50-300``),
the study's claims, now scored on another simulator's images as well as on the held-out
domain. The
``material`` study trains the default on wurtzite CdSe (``cdse``; ``cdse-crop192`` and
``cdse-one-pixel-size`` with the settings of those conditions) and scores it on the CdSe
set; every other condition is scored on the Au set.

The held-out simulated domain follows the training settings, so its figures compare only
conditions of one field size; the cross-simulator set is the same for all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import hrtem_cross_simulator as cross
from lightning_synth.experiments import Cell, run_cell, summarise

RECIPE = Path(__file__).parents[1] / "recipes" / "hrtem_seg.py"
RECORDS = Path(__file__).parents[1] / "docs" / "hrtem_transfer"
KNOBS = [
    "--data.simulation.parametrizations=[kirkland,lobato]",
    "--data.simulation.readout_noise=[0,3]",
    "--data.simulation.flat_field=[0,0.05]",
    "--data.simulation.hot_pixels=[0,0.0005]",
]
#: What differs between simulation codes' numerics, drawn per image: the sampling (abTEM's
#: set: 0.05 A), the slice thickness and the number of frozen phonons.
GRID_KNOBS = [
    "--data.simulation.sampling=[0.05,0.1]",
    "--data.simulation.slice_thickness=[1.0,2.5]",
    "--data.simulation.frozen_phonons=[2,8]",
]
#: Brings back training at the simulation's pixel size only (the default before
#: ``coarser_pixels``), for the conditions measured against that default.
ONE_PIXEL_SIZE = ["--data.coarser_pixels=null"]
#: Brings back smp's U-Net decoder widths (256, 128, 64, 32, 16), the defaults' before the
#: half-width decoder.
WIDE = ["--model.decoder_channels=null"]
#: The defaults before whole fields: 128-pixel, then 192-pixel crops, with the wide decoder.
CROP128 = ["--data.train_crop=128", *WIDE]
CROP192 = ["--data.train_crop=192", *WIDE]
#: Brings back single crystals only (spheres and Wulff shapes; the default's before the
#: multiply twinned particles), for the conditions measured against that default.
SINGLE_CRYSTALS = ["--data.simulation.shapes=[sphere,wulff]"]
#: Brings back the training doses of 100-1200 e/A^2 (every default's until the default trained
#: at 50-300), for the conditions measured with them.
DOSE_100_1200 = ["--data.simulation.dose=[100,1200]"]
_SINGLE_CRYSTAL_CONDITIONS: dict[str, list[str]] = {
    "before": [
        "--data.simulation.detector_pixels=128",
        "--data.simulation.particle_diameter=[15,22]",
        "--data.simulation.particles=[1,1]",
        "--data.simulation.carbon_thickness=[20,50]",
        "--data.simulation.frozen_phonons=8",
        "--data.train_samples=400",
        "--data.val_samples=64",
        "--data.test_samples=128",
        "--data.train_crop=null",
        "--data.normalization=min_max",
        "--trainer.max_epochs=12",
        *ONE_PIXEL_SIZE,
        *WIDE,
    ],
    "one-pixel-size": [*ONE_PIXEL_SIZE, *CROP128],
    "robust": ["--data.normalization=robust", *ONE_PIXEL_SIZE, *CROP128],
    "knobs": [*KNOBS, "--data.normalization=robust", *ONE_PIXEL_SIZE, *CROP128],
    "knobs-percentile": [*KNOBS, *ONE_PIXEL_SIZE, *CROP128],
    "crop128": CROP128,
    "longer": ["--trainer.max_epochs=28", "--model.lr_decay=0.9", *CROP128],
    "normalize-fields": ["--data.normalize_fields=true", *CROP128],
    "crop192": CROP192,
    "crop192-narrow": ["--data.train_crop=192"],
    "crop192-more-fields": [
        "--data.train_crop=192",
        "--data.train_samples=320",
        "--trainer.max_epochs=8",
        "--model.lr_decay=0.64",
    ],
    "single-crystals": [],
}
CONDITIONS: dict[str, list[str]] = {
    **{
        name: [*SINGLE_CRYSTALS, *DOSE_100_1200, *options]
        for name, options in _SINGLE_CRYSTAL_CONDITIONS.items()
    },
    "dose-100-1200": DOSE_100_1200,
    "log-dose": ["--data.simulation.dose_distribution=log_uniform", *DOSE_100_1200],
    "default": [],
    "grid-knobs": [*GRID_KNOBS, *DOSE_100_1200],
    "sampling-knob": [*GRID_KNOBS[:1], *DOSE_100_1200],
    "slices-phonons": [*GRID_KNOBS[1:], *DOSE_100_1200],
}
TIERS = ("basic", "thermal", "aberrations", "plasmon")
STUDIES: dict[str, dict[str, list[str]]] = {
    "robustness": CONDITIONS,
    "fidelity": {
        **{
            tier: [*SINGLE_CRYSTALS, *DOSE_100_1200, f"--data.simulation.fidelity={tier}"]
            for tier in TIERS
        },
        "single-crystals": [*SINGLE_CRYSTALS, *DOSE_100_1200],
    },
    "noise": {
        "noiseless": [
            *SINGLE_CRYSTALS,
            "--data.simulation.dose=null",
            "--data.simulation.readout_noise=[0,0]",
        ],
        "single-crystals": [*SINGLE_CRYSTALS, *DOSE_100_1200],
        "dose-50-300": [*SINGLE_CRYSTALS, "--data.simulation.dose=[50,300]"],
    },
    "material": {
        "cdse": ["--data.simulation.element=CdSe", *DOSE_100_1200],
        "cdse-crop192": ["--data.simulation.element=CdSe", *DOSE_100_1200, *CROP192],
        "cdse-one-pixel-size": [
            "--data.simulation.element=CdSe",
            *DOSE_100_1200,
            *ONE_PIXEL_SIZE,
            *CROP128,
        ],
    },
}
#: The cross-simulator set each condition is scored on (default: Au).
MATERIALS = {name: "CdSe" for name in STUDIES["material"]}
METRICS = ("f1", "iou", "precision", "recall")


def add_cross_scores(cell: Cell, scratch: Path, records: Path, set_folder: Path) -> dict:
    """The cell's record, with its scores on the cross-simulator set's current version.

    Scores of another version of the set or of another way of segmenting (see
    :func:`scoring_key`), or none, are replaced when the cell's checkpoint is still in
    ``scratch``, and dropped otherwise: they are not comparable with the others.
    """
    path = records / f"{cell.key}.json"
    record: dict[str, Any] = json.loads(path.read_text())
    if not (set_folder / "manifest.json").exists():  # written when the whole set is rendered
        print(f"--- {cell.key}: {set_folder} is not fully rendered; score it later")
        return record
    current = scoring_key(set_folder)
    scored = record.get("cross_simulator", {}).get("set")
    if scored == current:
        return record
    found = sorted((scratch / cell.key).glob("*/*/checkpoints/best.ckpt"))
    if not found:
        print(f"--- {cell.key}: no checkpoint left under {scratch / cell.key} to score")
        if scored is not None:
            print(f"--- {cell.key}: dropped its scores on another version of the set ({scored})")
            del record["cross_simulator"]
            path.write_text(json.dumps(record, indent=2) + "\n")
        return record
    items = cross.load_set(set_folder)
    clean = cross.evaluate(found[0], items)
    defects = cross.evaluate(found[0], cross.corrupted(items))
    print(cross.describe(f"{cell.key} on the cross-simulator set", clean))
    print(cross.describe(f"{cell.key} with camera defects", defects))
    record["cross_simulator"] = {"set": current, "clean": clean, "defects": defects}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", default=["robustness"], choices=STUDIES)
    parser.add_argument("--conditions", nargs="+", help="only these conditions of each study")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument(
        "--sets", type=Path, default=cross.SET_FOLDER, help="the cross-simulator sets' folder"
    )
    parser.add_argument("--report", action="store_true", help="print the records, run nothing")
    parser.add_argument(
        "--bins", default="default", help="print this condition's scores per size and dose bin"
    )
    args, extra = parser.parse_known_args()
    known = {name for study in args.study for name in STUDIES[study]}
    unknown = sorted(set(args.conditions or []) - known)
    if unknown:
        parser.error(f"unknown conditions {unknown}; the studies have {sorted(known)}")
    header = (
        "| condition | held-out f1 | held-out iou | held-out precision | held-out recall "
        "| cross f1 | cross precision | cross recall | defects f1 | defects precision "
        "| defects recall | minutes | seeds |"
    )
    for study in args.study:
        rows = []
        for name, options in STUDIES[study].items():
            if args.conditions and name not in args.conditions:
                continue
            row = condition_row(name, options, args, extra)
            if row:
                rows.append(row)
        print(f"\n{study}\n\n" + header + "\n|" + " --- |" * 13 + "\n" + "\n".join(rows))
    print(bins_table(args.bins, args.seeds, args.records, scored_on(args.sets, args.bins)))


def scored_on(sets: Path, condition: str) -> Path:
    """The folder of the cross-simulator set that ``condition`` is scored on."""
    return sets / MATERIALS.get(condition, "Au")


def scoring_key(set_folder: Path) -> dict[str, Any]:
    """What a record's cross-simulator scores must name to compare with the others.

    The set (material, seed and version, from its manifest; while it is still rendering,
    the ones ``hrtem_cross_simulator.py`` renders now for the folder's material) and how its
    images were segmented: each image normalised whole, as
    :func:`lightning_synth.predict.segment` does by default (not window by window).
    """
    manifest_path = set_folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    else:
        material = set_folder.name if set_folder.name in cross.SETS else "Au"
        manifest = {
            "material": material,
            "seed": cross.SETS[material]["seed"],
            "version": cross.SET_VERSION,
        }
    return {
        "material": manifest.get("material", "Au"),
        "seed": manifest["seed"],
        "version": manifest.get("version", 1),
        "normalize_windows": False,
    }


def on_current_set(records: list[dict], set_folder: Path) -> list[dict]:
    """The records scored on the set's current version, the current way (only those compare).

    Early records name the set by its folder only, or lack the way of segmenting.
    """
    current = scoring_key(set_folder)
    return [r for r in records if r.get("cross_simulator", {}).get("set") == current]


def bins_table(name: str, seeds: list[int], records: Path, set_folder: Path) -> str:
    """F1, precision and recall of condition ``name`` per size and dose bin, over seeds."""
    paths = [records / f"{name}-seed{seed}.json" for seed in seeds]
    found = [json.loads(path.read_text()) for path in paths if path.exists()]
    scored = [record["cross_simulator"] for record in on_current_set(found, set_folder)]
    if not scored:
        return ""
    lines = [
        f"\n{name} per bin ({len(scored)} seeds; images per bin in the last column)\n",
        "| bin | cross f1 | cross precision | cross recall | defects f1 | images |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    tables = (
        ("size", "largest particle {} A"),
        ("dose", "dose {} e/A^2"),
        ("pixel", "pixel size {} A"),
    )
    for table, label in tables:
        if not all(table in s["clean"] for s in scored):  # early records lack pixel bins
            continue
        for key, row in scored[0]["clean"][table].items():
            values = [s["clean"][table][key] for s in scored]
            defects = [s["defects"][table][key]["f1"] for s in scored]
            cells = [summarise([v[m] for v in values]) for m in ("f1", "precision", "recall")]
            lines.append(
                f"| {label.format(key)} | " + " | ".join(cells) + f" | {summarise(defects)} | "
                f"{row['images']} |"
            )
    return "\n".join(lines)


def condition_row(
    name: str, options: list[str], args: argparse.Namespace, extra: list[str]
) -> str | None:
    """Run (unless ``--report``) and score a condition's seeds; its table row."""
    records = []
    for seed in args.seeds:
        cell = Cell(RECIPE, name, tuple(options), seed)
        if not args.report:
            run_cell(cell, args.root, args.records, extra)
            add_cross_scores(cell, args.root, args.records, scored_on(args.sets, name))
        path = args.records / f"{cell.key}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
    scored = on_current_set(records, scored_on(args.sets, name))
    if not scored:
        return None
    cells = [summarise([r["metrics"][f"test/heldout/{m}"] for r in scored]) for m in METRICS]
    for kind in ("clean", "defects"):
        values = [r["cross_simulator"][kind]["overall"] for r in scored]
        cells += [summarise([v[m] for v in values]) for m in ("f1", "precision", "recall")]
    minutes = [r["wall_seconds"] / 60 for r in scored if r.get("wall_seconds")]
    cells.append(summarise(minutes) if minutes else "-")
    return f"| {name} | " + " | ".join(cells) + f" | {len(scored)} |"


if __name__ == "__main__":
    sys.exit(main())
