r"""Pallet detection with Faster R-CNN, trained on rendered warehouse scenes and real images.

    python recipes/pallet_det.py                    # CPU default: fit, test on ID and OOD
    python recipes/pallet_det.py --data.strategy=bridged --data.realism=half_realistic
    python recipes/pallet_det.py --data.strategy=real_only --data.real_fraction=0.1
    python recipes/pallet_det.py --config recipes/configs/pallet_det_gpu.yaml   # full size
    python recipes/pallet_det.py test --ckpt_path CKPT \
        --data.eval_annotations='{site: coco.json}' --data.eval_images='{site: images/}'
    python recipes/pallet_det.py predict-folder --images DIR --checkpoint CKPT \
        --out detections.json [--annotations coco.json]
    python recipes/pallet_det.py export-standins --out DIR [--width 640 --height 480]

Until you give it real images, the "real" training pool and the ID and OOD test sets are
rendered stand-ins (see ``lightning_synth.generators.warehouse.standins``): the numbers say
how a detector transfers between rendered domains, not to a camera. The default run writes
``results.json`` (AP per set) and ``predictions.png`` (test images: ground truth green,
detections red) next to the checkpoints.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lightning_synth.cli import LightningSynthCLI, run_directory, run_recipe
from lightning_synth.data.coco import write_coco
from lightning_synth.data.pallets import PalletDataModule, standin_set
from lightning_synth.predict import folder_command
from lightning_synth.tasks.detection import LOGGED_METRICS, DetectionTask

CONFIG = Path(__file__).parent / "configs" / "pallet_det.yaml"


def prediction_grid(
    task: DetectionTask, datamodule: PalletDataModule, per_set: int = 4
) -> Image.Image:
    """A row per test set of its first images: ground truth green, detections red."""
    loaders = datamodule.test_dataloader()
    loaders = loaders if isinstance(loaders, Mapping) else {"test": loaders}
    rows = []
    for loader in loaders.values():
        batch = next(iter(loader))
        rows.append(task.prediction_grid(batch["image"][:per_set], batch["boxes"][:per_set]))
    width = max(row.shape[1] for row in rows)
    rows = [
        np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
        for row in rows
    ]
    return Image.fromarray(np.concatenate(rows, axis=0))


def report(cli: LightningSynthCLI, results: Sequence[Mapping[str, float]]) -> None:
    """Print AP per test set; write results.json and predictions.png."""
    out = run_directory(cli.trainer)
    metrics = {key: float(value) for result in results for key, value in result.items()}
    (out / "results.json").write_text(json.dumps(metrics, indent=2))
    assert isinstance(cli.model, DetectionTask) and isinstance(cli.datamodule, PalletDataModule)
    prediction_grid(cli.model, cli.datamodule).save(out / "predictions.png")
    names = sorted({key.split("/")[1] for key in metrics if key.startswith("test/")})
    for name in names:
        line = ", ".join(
            f"{m} {metrics.get(f'test/{name}/{m}', float('nan')):.3f}" for m in LOGGED_METRICS
        )
        print(f"test set {name}: {line}")
    print(f"wrote {out / 'results.json'} and {out / 'predictions.png'}")


def export_standins(argv: Sequence[str]) -> None:
    """Write the stand-in sets in COCO format (images + JSON), e.g. to test the COCO path."""
    parser = argparse.ArgumentParser(prog="pallet_det.py export-standins")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--samples", type=int, default=128, help="images per test set")
    args = parser.parse_args(argv)
    for domain in ("id", "ood"):
        dataset = standin_set(domain, "test", args.samples, width=args.width, height=args.height)
        path = write_coco((dataset[i] for i in range(len(dataset))), args.out / domain)
        print(f"wrote {path} ({args.samples} images)")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the recipe (see the module docstring)."""
    commands = {
        "predict-folder": folder_command(DetectionTask, "detection", "pallet_det.py"),
        "export-standins": export_standins,
    }
    run_recipe(DetectionTask, PalletDataModule, CONFIG, report=report, argv=argv, commands=commands)


if __name__ == "__main__":
    main()
