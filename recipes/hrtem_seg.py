"""HRTEM nanoparticle segmentation trained purely on simulated micrographs.

    python recipes/hrtem_seg.py                     # CPU default: cache, fit, test, figure
    python recipes/hrtem_seg.py --config recipes/configs/hrtem_seg_paper.yaml   # GPU, full size
    python recipes/hrtem_seg.py fit --model.lr=0.002 --data.simulation.fidelity=basic
    python recipes/hrtem_seg.py predict-folder --images DIR --pixel-size 0.25 \
        --checkpoint runs/hrtem_seg/.../best.ckpt --out DIR [--masks DIR]

The default run trains a U-Net (ResNet-18 encoder, no downloaded weights) on simulated
images, tests it on a held-out simulated domain (other seeds, shifted conditions), and
writes ``predictions.png`` and ``results.json`` next to the checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from lightning_synth.cli import LightningSynthCLI, run_directory, run_recipe
from lightning_synth.data.hrtem import HRTEMDataModule
from lightning_synth.predict import folder_command
from lightning_synth.tasks.segmentation import SegmentationTask

CONFIG = Path(__file__).parent / "configs" / "hrtem_seg.yaml"


def report(cli: LightningSynthCLI, results: Sequence[Mapping[str, float]]) -> None:
    """Print the held-out metrics; write them and a figure of predictions."""
    out = run_directory(cli.trainer)
    metrics = {key: float(value) for result in results for key, value in result.items()}
    datamodule = cli.datamodule
    assert isinstance(datamodule, HRTEMDataModule)
    loader = datamodule.test_dataloader()
    loader = next(iter(loader.values())) if isinstance(loader, dict) else loader
    batch = datamodule.on_after_batch_transfer(next(iter(loader)), 0)
    assert isinstance(cli.model, SegmentationTask)
    grid = cli.model.prediction_grid(batch["image"][:6], batch["mask"][:6])
    Image.fromarray(grid).save(out / "predictions.png")
    (out / "results.json").write_text(json.dumps(metrics, indent=2))
    names = ("f1", "iou", "precision", "recall")
    line = ", ".join(f"{n} {metrics.get(f'test/heldout/{n}', float('nan')):.3f}" for n in names)
    print(f"held-out simulated domain: {line}")
    print(
        f"wrote {out / 'predictions.png'} (image | truth | prediction) and {out / 'results.json'}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the recipe (see the module docstring)."""
    commands = {"predict-folder": folder_command(SegmentationTask, "segmentation", "hrtem_seg.py")}
    run_recipe(
        SegmentationTask, HRTEMDataModule, CONFIG, report=report, argv=argv, commands=commands
    )


if __name__ == "__main__":
    main()
