"""Pictures of predictions against ground truth on every validation set, every few epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image
from typing_extensions import override

from lightning_synth.loggers import run_directory
from lightning_synth.tasks.base import evaluation_set_names

TARGET_KEYS = ("mask", "boxes")


class PredictionImages(Callback):
    """Logs a grid of the model's predictions against ground truth per validation set.

    The first ``images`` samples of each validation set's first batch are drawn by the
    task's ``prediction_grid(images, truth)`` (``SegmentationTask``: image | truth |
    prediction; ``DetectionTask``: truth boxes green, detections red) after every
    ``every_n_epochs``-th validation epoch. A logger with ``log_image`` (W&B) gets it as
    ``val/<set>/predictions``; for the others, it is written to the run's folder as
    ``predictions/epoch<N>-<set>.png``. Rank 0 only; the sanity check is skipped.

    Args:
        every_n_epochs: Draw after every this many epochs.
        images: Samples per set.
    """

    def __init__(self, every_n_epochs: int = 1, images: int = 4) -> None:
        super().__init__()
        if every_n_epochs < 1 or images < 1:
            msg = f"every_n_epochs and images must be >= 1, got {every_n_epochs} and {images}"
            raise ValueError(msg)
        self.every_n_epochs = every_n_epochs
        self.images = images
        self._batches: dict[int, Mapping[str, Any]] = {}

    def _due(self, trainer: Trainer) -> bool:
        return (
            not trainer.sanity_checking
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
            and trainer.is_global_zero
        )

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and self._due(trainer) and isinstance(batch, Mapping):
            self._batches[dataloader_idx] = batch

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._batches:
            return
        batches, self._batches = self._batches, {}
        draw = getattr(pl_module, "prediction_grid", None)
        if draw is None:
            msg = f"{type(pl_module).__name__} has no prediction_grid(images, truth) to draw with"
            raise TypeError(msg)
        names = evaluation_set_names(pl_module, "val")
        for index, batch in sorted(batches.items()):
            key = next((k for k in TARGET_KEYS if k in batch), None)
            truth = batch[key][: self.images] if key else None
            grid = draw(batch["image"][: self.images], truth)
            name = names[index] if index < len(names) else str(index)
            self._log(trainer, name, np.asarray(grid))

    @rank_zero_only
    def _log(self, trainer: Trainer, name: str, grid: np.ndarray) -> None:
        step, epoch = trainer.global_step, trainer.current_epoch
        written = False
        loggers: list[Logger | None] = [*trainer.loggers] or [None]
        for logger in loggers:
            log_image = getattr(logger, "log_image", None) if logger else None
            if log_image is not None:
                log_image(key=f"val/{name}/predictions", images=[grid], step=step)
            elif not written:
                folder = run_directory(trainer) / "predictions"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(grid).save(folder / f"epoch{epoch}-{name}.png")
                written = True
