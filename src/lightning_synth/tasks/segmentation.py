"""Semantic segmentation with segmentation_models_pytorch models, for any LightningCLI recipe."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)
from typing_extensions import override

from lightning_synth.models.segmentation import ARCHITECTURES, Architecture, build_segmenter
from lightning_synth.tasks.base import BaseTask


class SegmentationTask(BaseTask):
    """Binary (particle / background) segmentation: smp model, cross-entropy + Dice loss.

    Metrics per named validation and test set (``val/<set>/f1`` ...): F1 (= Dice), IoU,
    precision and recall of the particle class, over all pixels of the set, and the loss
    (``val/<set>/loss``). The optimiser is Adam with the learning rate decayed by
    ``lr_decay`` per epoch, as in the study.

    Args:
        architecture: smp architecture.
        encoder: Encoder name: an smp encoder (``"resnet18"``) or any timm model as
            ``"tu-<name>"`` (e.g. ``"tu-convnext_tiny"``).
        encoder_weights: Pretrained encoder weights to download (e.g. ``"imagenet"``); None
            (the default) trains from scratch and never goes online.
        in_channels: Image channels.
        lr: Adam learning rate.
        lr_decay: Learning-rate factor per epoch (ExponentialLR).
        dice_weight: Weight of the Dice term next to cross-entropy.
        channels_last: Use the channels-last memory format (faster convolutions on GPUs).
        decoder_channels: Widths of the U-Net decoder's five blocks, deepest first; None
            keeps smp's (256, 128, 64, 32, 16).
    """

    def __init__(
        self,
        architecture: Architecture = "unet",
        encoder: str = "resnet18",
        encoder_weights: str | None = None,
        in_channels: int = 1,
        lr: float = 1e-3,
        lr_decay: float = 0.8,
        dice_weight: float = 1.0,
        channels_last: bool = False,
        decoder_channels: Sequence[int] | None = None,
    ) -> None:
        if architecture not in ARCHITECTURES:
            msg = f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}"
            raise ValueError(msg)
        if not _positive(lr) or not (_positive(lr_decay) and lr_decay <= 1):
            msg = f"lr must be > 0 and lr_decay in (0, 1], got lr={lr!r}, lr_decay={lr_decay!r}"
            raise ValueError(msg)
        if not (_positive(dice_weight) or dice_weight == 0):
            msg = f"dice_weight must be a number >= 0, got {dice_weight!r}"
            raise ValueError(msg)
        super().__init__()

    @override
    def configure_models(self) -> None:
        hp = self.hparams
        self.model = build_segmenter(
            hp["architecture"],
            hp["encoder"],
            hp["encoder_weights"],
            hp["in_channels"],
            2,
            decoder_channels=hp.get("decoder_channels"),
        )
        self.channels_last = bool(hp["channels_last"])
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @override
    def configure_losses(self) -> None:
        from segmentation_models_pytorch.losses import DiceLoss

        self.dice = DiceLoss(mode="multiclass")

    @override
    def configure_metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "f1": BinaryF1Score(),
                "iou": BinaryJaccardIndex(),
                "precision": BinaryPrecision(),
                "recall": BinaryRecall(),
            }
        )

    # ------------------------------------------------------------------ steps
    @override
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image)

    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy plus ``dice_weight`` times the Dice loss."""
        return F.cross_entropy(logits, mask) + self.hparams["dice_weight"] * self.dice(logits, mask)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["mask"])
        if not torch.isfinite(loss):
            msg = f"the training loss is {float(loss)} at step {self.global_step}; stopping"
            raise FloatingPointError(msg)
        self.log("train/loss", loss, batch_size=len(batch["image"]), prog_bar=True)
        return loss

    @override
    def evaluation_step(
        self, batch: dict[str, Any], metrics: MetricCollection, stage: str, name: str
    ) -> None:
        logits = self(batch["image"])
        self.log(
            f"{stage}/{name}/loss",
            self.loss(logits, batch["mask"]),
            batch_size=len(batch["image"]),
            add_dataloader_idx=False,
        )
        metrics.update(logits.argmax(1), batch["mask"])

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        image = batch["image"] if isinstance(batch, Mapping) else batch
        return self(image).softmax(1)[:, 1]

    @override
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
        scheduler = torch.optim.lr_scheduler.ExponentialLR(
            optimizer, gamma=self.hparams["lr_decay"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # ------------------------------------------------------------------ figures
    @torch.no_grad()
    def prediction_grid(
        self, images: torch.Tensor, masks: torch.Tensor | None = None
    ) -> np.ndarray:
        """Rows of image | ground truth | prediction (uint8, for a PNG).

        Ground truth and prediction are shown as outlines over the image (truth green,
        prediction magenta, overlap white) when ``masks`` are given; else prediction only.
        """
        was_training = self.training
        self.eval()
        predictions = self(images.to(self.device)).argmax(1).cpu()
        self.train(was_training)
        rows = []
        for index in range(len(images)):
            picture = images[index, 0].float().cpu()
            picture = (picture - picture.min()) / (picture.max() - picture.min()).clamp_min(1e-12)
            gray = (picture.numpy() * 255).astype(np.uint8)
            panels = [np.stack([gray] * 3, axis=-1)]
            if masks is not None:
                panels.append(_overlay(gray, masks[index].cpu().numpy() > 0, (0, 255, 0)))
            panels.append(_overlay(gray, predictions[index].numpy() > 0, (255, 0, 255)))
            rows.append(np.concatenate(panels, axis=1))
        return np.concatenate(rows, axis=0)


def _overlay(gray: np.ndarray, mask: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """``gray`` as RGB with ``mask`` tinted in ``colour``."""
    rgb = np.stack([gray] * 3, axis=-1).astype(np.float32)
    tint = np.asarray(colour, np.float32)
    rgb[mask] = 0.5 * rgb[mask] + 0.5 * tint
    return rgb.astype(np.uint8)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
