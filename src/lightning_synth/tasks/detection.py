"""Object detection with torchvision's Faster R-CNN, for any LightningCLI recipe.

Metrics per named validation and test set: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and mAR@100
from torchmetrics' ``MeanAveragePrecision`` (the faster_coco_eval backend), logged as
``val/<set>/map``, ``val/<set>/map_50`` ... at the end of each evaluation epoch. Objects
that a sample lists as crowd regions (``meta["crowd_boxes"]`` and ``meta["crowd_labels"]``:
the warehouse generator's pallets below its visibility rule, a COCO file's ``iscrowd``
annotations) are scored as COCO does: a detection matched to one neither counts nor costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.detection import MeanAveragePrecision
from typing_extensions import override

from lightning_synth.drawing import draw_boxes
from lightning_synth.models.detection import DetectorName, build_detector
from lightning_synth.tasks.base import BaseTask

#: The scalar entries of MeanAveragePrecision's result that are logged.
LOGGED_METRICS = ("map", "map_50", "map_75", "mar_100")


def evaluation_target(
    boxes: torch.Tensor, labels: torch.Tensor, meta: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """An image's target for ``MeanAveragePrecision``: its objects plus its crowd regions.

    Crowd regions come from ``meta["crowd_boxes"]`` (xyxy, in the unaugmented image's
    frame, so evaluation sets only) with ``meta["crowd_labels"]``, and get ``iscrowd`` 1.

    Example:
        >>> target = evaluation_target(torch.tensor([[0.0, 0, 8, 4]]), torch.tensor([1]),
        ...                            {"crowd_boxes": [[10, 10, 12, 11]], "crowd_labels": [1]})
        >>> target["boxes"].shape, target["iscrowd"].tolist()
        (torch.Size([2, 4]), [0, 1])
    """
    crowd_boxes = (meta or {}).get("crowd_boxes", [])
    crowd_labels = (meta or {}).get("crowd_labels", [])
    if len(crowd_boxes) != len(crowd_labels):
        msg = (
            f"meta lists {len(crowd_boxes)} crowd_boxes but {len(crowd_labels)} crowd_labels; "
            "every crowd region needs its label"
        )
        raise ValueError(msg)
    crowd = torch.as_tensor(crowd_boxes, dtype=boxes.dtype, device=boxes.device).reshape(-1, 4)
    flags = torch.cat([torch.zeros(len(boxes)), torch.ones(len(crowd))]).to(boxes.device)
    return {
        "boxes": torch.cat([boxes, crowd]),
        "labels": torch.cat(
            [labels, torch.as_tensor(crowd_labels, dtype=labels.dtype, device=labels.device)]
        ),
        "iscrowd": flags.to(torch.int64),
    }


class DetectionTask(BaseTask):
    """Faster R-CNN detection (pallets by default: one class plus the background).

    Batches follow the project's contract: ``image`` a list (or stack) of (3, H, W) floats in
    [0, 1], ``boxes`` a list of (N, 4) xyxy pixel boxes, ``labels`` a list of (N,) int64.
    A non-finite loss stops the run with the loss terms in the message.

    Args:
        model: Faster R-CNN variant: ResNet-50-FPN (default, torchvision's), ResNet-18-FPN
            (lighter, same architecture), torchvision's MobileNet-v3 ones (their pyramid
            starts at stride 32), or a MobileNet-v3 whose pyramid starts at stride 8
            (``fasterrcnn_mobilenet_v3_large_stride8_fpn``, for small objects on a CPU), or
            any timm model under the same stride-8 pyramid (``fasterrcnn_timm_fpn``, with
            ``backbone``).
        num_classes: Classes including the background.
        pretrained: Start from torchvision's COCO-trained weights (downloads them).
        pretrained_backbone: Start from an ImageNet backbone (downloads it).
        min_size: The detector resizes images so that their short side is this long...
        max_size: ...and their long side at most this long [pixels].
        trainable_backbone_layers: Backbone stages to train (torchvision's default if None).
        box_batch_size_per_image: Proposals sampled per image for the box head's loss
            (torchvision's 512; fewer make CPU steps cheaper, the box head's cost is linear in it).
        anchor_sizes: RPN anchor sizes [pixels] (torchvision's 32 to 512 if None).
        aspect_ratios: RPN anchor aspect ratios, height over width (torchvision's 0.5, 1,
            2 if None). Pallets seen from the front are 5 to 8 times wider than high.
        representation_size: Width of the box head's two fully connected layers
            (torchvision's 1024; its first layer alone is 12544 x 1024, the largest matrix
            product of a training step at small image sizes).
        fpn_channels: Width of the feature pyramid of the ``stride8`` MobileNet and the
            timm detectors (128 if None; the other detectors keep torchvision's 256).
        backbone: The timm model of ``fasterrcnn_timm_fpn`` (e.g. ``"resnet18"``, the
            default, or ``"resnet10t"``); an error with the other detectors.
        channels_last: Keep the model in the channels-last memory format. On CPUs it avoids a
            very slow path of depthwise convolutions (MobileNet): their backward pass took
            6.4 s in NCHW and 88 ms channels-last on this project's development machine.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adamw"``.
        lr: Peak learning rate.
        weight_decay: Weight decay.
        warmup_steps: Linear warm-up steps; then a cosine decay to ``lr / 20`` over the run
            (torch's ``LinearLR`` then ``CosineAnnealingLR``, in a ``SequentialLR``).
        score_threshold: Detections scoring below this are dropped at inference.
        detections_per_image: At most this many detections per image.
    """

    logged_metrics = LOGGED_METRICS

    def __init__(
        self,
        model: DetectorName = "fasterrcnn_resnet50_fpn",
        num_classes: int = 2,
        pretrained: bool = False,
        pretrained_backbone: bool = False,
        min_size: int = 480,
        max_size: int = 640,
        trainable_backbone_layers: int | None = None,
        box_batch_size_per_image: int = 512,
        anchor_sizes: list[int] | None = None,
        aspect_ratios: list[float] | None = None,
        representation_size: int = 1024,
        fpn_channels: int | None = None,
        backbone: str | None = None,
        channels_last: bool = False,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        score_threshold: float = 0.05,
        detections_per_image: int = 100,
    ) -> None:
        if optimizer not in ("sgd", "adamw"):
            msg = f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}"
            raise ValueError(msg)
        if not (isinstance(lr, int | float) and lr > 0) or not (
            isinstance(warmup_steps, int) and warmup_steps >= 0
        ):
            msg = f"lr must be > 0 and warmup_steps >= 0, got {lr!r} and {warmup_steps!r}"
            raise ValueError(msg)
        if not 0 <= score_threshold < 1:
            msg = f"score_threshold must be in [0, 1), got {score_threshold!r}"
            raise ValueError(msg)
        super().__init__()

    @override
    def configure_models(self) -> None:
        hp = self.hparams
        self.model = build_detector(
            hp["model"],
            hp["num_classes"],
            hp["pretrained"],
            hp["pretrained_backbone"],
            hp["min_size"],
            hp["max_size"],
            hp["trainable_backbone_layers"],
            hp["anchor_sizes"],
            hp["aspect_ratios"],
            hp["fpn_channels"],
            hp["representation_size"],
            hp.get("backbone"),
            box_batch_size_per_image=hp["box_batch_size_per_image"],
            box_score_thresh=hp["score_threshold"],
            box_detections_per_img=hp["detections_per_image"],
        )
        if hp["channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)

    @override
    def configure_metrics(self) -> MetricCollection:
        # COCO mAP over the whole set, computed at the end of each evaluation epoch.
        return MetricCollection(
            {
                "ap": MeanAveragePrecision(
                    box_format="xyxy", iou_type="bbox", backend="faster_coco_eval"
                )
            }
        )

    @override
    def finish_metrics(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # -1 means "no ground truth at all" in COCO; log it as 0.
        return {key: value.clamp_min(0.0) for key, value in values.items()}

    @override
    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections (``boxes``, ``scores``, ``labels``) per image, in eval mode."""
        return self.model(list(images))

    @staticmethod
    def _targets(batch: Mapping[str, Any]) -> list[dict[str, torch.Tensor]]:
        return [
            {"boxes": boxes, "labels": labels}
            for boxes, labels in zip(batch["boxes"], batch["labels"], strict=True)
        ]

    @override
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        images = list(batch["image"])
        losses = self.model(images, self._targets(batch))
        loss = sum(losses.values())
        assert isinstance(loss, torch.Tensor)
        if not torch.isfinite(loss):
            terms = ", ".join(f"{k} {float(v):.4g}" for k, v in losses.items())
            msg = (
                f"the training loss is {float(loss)} at step {self.global_step} ({terms}); "
                "stopping. Lower the learning rate or raise warmup_steps."
            )
            raise FloatingPointError(msg)
        size = len(images)
        self.log("train/loss", loss, batch_size=size, prog_bar=True)
        for key, value in losses.items():
            self.log(f"train/{key}", value, batch_size=size)
        return loss

    @override
    def evaluation_step(
        self, batch: Mapping[str, Any], metrics: MetricCollection, stage: str, name: str
    ) -> None:
        metas = batch.get("meta") or [None] * len(batch["boxes"])
        targets = [
            evaluation_target(boxes, labels, meta)
            for boxes, labels, meta in zip(batch["boxes"], batch["labels"], metas, strict=True)
        ]
        metrics.update(self(batch["image"]), targets)

    @override
    def predict_step(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> list[dict[str, torch.Tensor]]:
        images = batch["image"] if isinstance(batch, Mapping) else batch
        return [{k: v.cpu() for k, v in p.items()} for p in self(images)]

    @torch.no_grad()
    def prediction_grid(
        self,
        images: Sequence[torch.Tensor],
        boxes: Sequence[torch.Tensor] | None = None,
        score_threshold: float = 0.5,
    ) -> np.ndarray:
        """The images in a row (uint8): ``boxes`` (ground truth) green, detections red.

        Detections scoring below ``score_threshold`` are left out.
        """
        was_training = self.training
        self.eval()
        found = self([image.to(self.device) for image in images])
        self.train(was_training)
        pictures = [
            draw_detections(
                image,
                None if boxes is None else boxes[i],
                p["boxes"][p["scores"] >= score_threshold],
            )
            for i, (image, p) in enumerate(zip(images, found, strict=True))
        ]
        return np.concatenate(pictures, axis=1)

    @override
    def configure_optimizers(self) -> Any:
        parameters = [p for p in self.parameters() if p.requires_grad]
        hp = self.hparams
        if hp["optimizer"] == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                parameters, lr=hp["lr"], momentum=0.9, weight_decay=hp["weight_decay"]
            )
        else:
            optimizer = torch.optim.AdamW(parameters, lr=hp["lr"], weight_decay=hp["weight_decay"])
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self._trainer else 1
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": warmup_cosine(optimizer, int(hp["warmup_steps"]), total),
                "interval": "step",
            },
        }


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.05
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to ``floor`` x the peak.

    Step ``k < warmup`` runs at ``(k + 1) / warmup`` of the peak; the cosine spans the other
    ``total - warmup`` steps.
    """
    from torch.optim import lr_scheduler

    peaks = [group["lr"] for group in optimizer.param_groups]
    cosine = lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(total - warmup, 1), eta_min=floor * min(peaks)
    )
    if warmup <= 1:
        return cosine
    ramp = lr_scheduler.LinearLR(
        optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1
    )
    return lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def draw_detections(
    image: torch.Tensor, truth: torch.Tensor | None, boxes: torch.Tensor
) -> np.ndarray:
    """``image`` (C x H x W in [0, 1]) as uint8 RGB: ``truth`` boxes green, ``boxes`` red.

    Boxes narrower or lower than a pixel (a detector may predict them) are drawn as one pixel.
    """
    return draw_boxes(image, [(truth, (0, 230, 64), 2), (boxes, (255, 40, 40), 1)])
