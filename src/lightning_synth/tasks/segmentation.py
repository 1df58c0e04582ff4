"""Semantic segmentation with segmentation_models_pytorch models, for any LightningCLI recipe."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)
from typing_extensions import override

from lightning_synth.tasks.base import evaluation_set_names

Architecture = Literal["unet", "unetplusplus", "fpn", "deeplabv3plus"]
_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
    "fpn": smp.FPN,
    "deeplabv3plus": smp.DeepLabV3Plus,
}


def _metrics() -> MetricCollection:
    return MetricCollection(
        {
            "f1": BinaryF1Score(),
            "iou": BinaryJaccardIndex(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
        }
    )


class SegmentationTask(LightningModule):
    """Binary (particle / background) segmentation: smp model, cross-entropy + Dice loss.

    Metrics per named validation and test set (``val/<set>/f1`` ...): F1 (= Dice), IoU,
    precision and recall of the particle class, over all pixels of the set. The optimiser is
    Adam with the learning rate decayed by ``lr_decay`` per epoch, as in the study.

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
    ) -> None:
        super().__init__()
        if architecture not in _ARCHITECTURES:
            msg = f"architecture must be one of {sorted(_ARCHITECTURES)}, got {architecture!r}"
            raise ValueError(msg)
        if not lr > 0 or not 0 < lr_decay <= 1:
            msg = f"lr must be > 0 and lr_decay in (0, 1], got lr={lr!r}, lr_decay={lr_decay!r}"
            raise ValueError(msg)
        self.save_hyperparameters()
        self.model = _ARCHITECTURES[architecture](
            encoder_name=encoder,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=2,
        )
        self.dice = smp.losses.DiceLoss(mode="multiclass")
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.val_metrics = nn.ModuleDict()
        self.test_metrics = nn.ModuleDict()

    @override
    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            names = evaluation_set_names(self, "val")
            self.val_metrics = nn.ModuleDict({n: _metrics() for n in names})
        if stage == "test":
            names = evaluation_set_names(self, "test")
            self.test_metrics = nn.ModuleDict({n: _metrics() for n in names})

    # ------------------------------------------------------------------ steps
    @override
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image)

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, mask) + self.hparams["dice_weight"] * self.dice(logits, mask)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self._loss(logits, batch["mask"])
        if not torch.isfinite(loss):
            msg = f"the training loss is {float(loss)} at step {self.global_step}; stopping"
            raise FloatingPointError(msg)
        self.log("train/loss", loss, batch_size=len(batch["image"]), prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, Any], dataloader_idx: int, stage: str) -> None:
        logits = self(batch["image"])
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        name = (
            list(metrics)[dataloader_idx] if len(metrics) > dataloader_idx else str(dataloader_idx)
        )
        size = len(batch["image"])
        self.log(
            f"{stage}/{name}/loss",
            self._loss(logits, batch["mask"]),
            batch_size=size,
            add_dataloader_idx=False,
        )
        collection: MetricCollection = metrics[name]  # type: ignore[assignment]
        collection.update(logits.argmax(1), batch["mask"])
        for key, metric in collection.items():
            self.log(f"{stage}/{name}/{key}", metric, batch_size=size, add_dataloader_idx=False)

    @override
    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate(batch, dataloader_idx, "val")

    @override
    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "test")

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


def segment_folder(
    task: SegmentationTask,
    images: str | Path,
    pixel_size: float,
    out: str | Path,
    masks: str | Path | None = None,
    model_pixel_size: float = 0.2,
) -> dict[str, Any]:
    """Segment every image of a folder, of any size, taken at ``pixel_size`` [A].

    Each image is resampled to the model's pixel size, min-max normalised, padded to a
    multiple of 32, segmented, and its mask resampled back to the image's own pixels. Writes
    ``<stem>_mask.png`` (0/255) and ``<stem>_mask.npy`` per image; with ``masks`` (same stems)
    also per-image and overall F1/IoU in ``metrics.json``.

    Returns:
        The metrics (empty without ``masks``).
    """
    from PIL import Image

    from lightning_synth.data.images import IMAGE_SUFFIXES, read_image, resample

    folder, out = Path(images), Path(out)
    files = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if folder.is_dir()
        else []
    )
    if not files:
        msg = f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}"
        raise ValueError(msg)
    truths = {}
    if masks is not None:
        truths = {p.stem: p for p in Path(masks).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    out.mkdir(parents=True, exist_ok=True)
    task.eval()
    factor = pixel_size / model_pixel_size
    per_image: dict[str, dict[str, float]] = {}
    totals = torch.zeros(3)  # true positives, predicted, actual
    for path in files:
        original = torch.from_numpy(read_image(path))
        image = resample(original, factor)
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
        height, width = image.shape
        pad = (0, (-width) % 32, 0, (-height) % 32)
        padded = F.pad(
            image[None, None], pad, mode="reflect" if min(height, width) > 32 else "replicate"
        )
        with torch.no_grad():
            prediction = task(padded.to(task.device)).argmax(1)[0, :height, :width].cpu()
        mask = resample(prediction, 1 / factor, mask=True)
        mask = F.interpolate(mask[None, None].float(), size=tuple(original.shape), mode="nearest")[
            0, 0
        ].long()
        np.save(out / f"{path.stem}_mask.npy", mask.numpy())
        Image.fromarray((mask.numpy() * 255).astype(np.uint8)).save(out / f"{path.stem}_mask.png")
        if path.stem in truths:
            truth = torch.from_numpy(read_image(truths[path.stem]) > 0)
            if truth.shape != mask.shape:
                msg = (
                    f"mask {truths[path.stem]} is {tuple(truth.shape)}, "
                    f"its image {path} {tuple(mask.shape)}"
                )
                raise ValueError(msg)
            hit = float((mask.bool() & truth).sum())
            counts = torch.tensor([hit, float(mask.sum()), float(truth.sum())])
            totals += counts
            per_image[path.name] = _scores(counts)
    if not per_image:
        return {}
    metrics = {"overall": _scores(totals), "images": per_image}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _scores(counts: torch.Tensor) -> dict[str, float]:
    hit, predicted, actual = (float(v) for v in counts)
    union = predicted + actual - hit
    return {
        "f1": 2 * hit / (predicted + actual) if predicted + actual else 1.0,
        "iou": hit / union if union else 1.0,
        "precision": hit / predicted if predicted else 1.0,
        "recall": hit / actual if actual else 1.0,
    }
