"""Object detection with torchvision's Faster R-CNN, for any LightningCLI recipe.

Metrics per named validation and test set: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and mAR@100
from torchmetrics' ``MeanAveragePrecision`` (the faster_coco_eval backend), logged as
``val/<set>/map``, ``val/<set>/map_50`` ... at the end of each evaluation epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from PIL import Image, ImageDraw
from torch import nn
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models import detection
from torchvision.ops import misc as misc_ops
from typing_extensions import override

from lightning_synth.tasks.base import evaluation_set_names

DetectorName = Literal[
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet18_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_stride8_fpn",
]


def fasterrcnn_resnet18_fpn(
    weights: str | None = None,
    weights_backbone: str | None = None,
    num_classes: int = 91,
    trainable_backbone_layers: int = 5,
    **options: Any,
) -> nn.Module:
    """Faster R-CNN on a ResNet-18-FPN: torchvision's ResNet-50 model with a lighter backbone.

    torchvision has no such detector, so there are no detector weights (``weights`` must be
    None); ``weights_backbone="DEFAULT"`` downloads ImageNet ResNet-18 weights.
    """
    if weights is not None:
        msg = "there are no pretrained fasterrcnn_resnet18_fpn detectors; use pretrained_backbone"
        raise ValueError(msg)
    from torchvision.models import ResNet18_Weights
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FasterRCNN

    backbone_weights = ResNet18_Weights.DEFAULT if weights_backbone else None
    norm = misc_ops.FrozenBatchNorm2d if backbone_weights else nn.BatchNorm2d
    backbone = resnet_fpn_backbone(
        backbone_name="resnet18",
        weights=backbone_weights,
        trainable_layers=trainable_backbone_layers,
        norm_layer=norm,
    )
    return FasterRCNN(backbone, num_classes=num_classes, **options)


def fasterrcnn_mobilenet_v3_large_stride8_fpn(
    weights: str | None = None,
    weights_backbone: str | None = None,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    fpn_channels: int = 128,
    **options: Any,
) -> nn.Module:
    """Faster R-CNN on a MobileNet-v3-Large whose feature pyramid starts at stride 8.

    torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` feeds its pyramid from two stride-32
    stages only (an 8 x 10 grid for a 320 x 240 image), too coarse for objects of 10-30
    pixels. This one takes the last block at each resolution, strides 8, 16 and 32 (40, 112
    and 960 channels), plus a max-pooled stride-64 level: one anchor size per level, like the
    ResNet-FPN detectors (16, 32, 64 and 128 pixels unless ``anchor_sizes`` says otherwise).
    ``fpn_channels`` is the pyramid's width (256 in torchvision; 128 keeps the stride-8 convs
    of the pyramid and the RPN cheap on a CPU). There are no detector weights (``weights``
    must be None); ``weights_backbone="DEFAULT"`` downloads ImageNet MobileNet-v3 weights.
    """
    if weights is not None:
        msg = (
            "there are no pretrained fasterrcnn_mobilenet_v3_large_stride8_fpn detectors; "
            "use pretrained_backbone"
        )
        raise ValueError(msg)
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FasterRCNN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    backbone_weights = MobileNet_V3_Large_Weights.DEFAULT if weights_backbone else None
    norm = misc_ops.FrozenBatchNorm2d if backbone_weights else nn.BatchNorm2d
    features = mobilenet_v3_large(weights=backbone_weights, norm_layer=norm).features
    # The blocks that start a new resolution (and the first and last block), as torchvision
    # counts trainable stages.
    stage_starts = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)]
    stage_starts.append(len(features) - 1)
    trainable = trainable_backbone_layers
    if trainable is None:
        trainable = 3 if backbone_weights else len(stage_starts)
    if not 0 <= trainable <= len(stage_starts):
        msg = f"trainable_backbone_layers must be in [0, {len(stage_starts)}], got {trainable}"
        raise ValueError(msg)
    first_trained = len(features) if trainable == 0 else stage_starts[len(stage_starts) - trainable]
    for block in features[:first_trained]:
        block.requires_grad_(False)
    # The last block of each resolution from stride 8 on: the block before the stride-16
    # and stride-32 ones start, and the final one.
    ends = [i - 1 for i in stage_starts[3:-1]] + [len(features) - 1]
    backbone = BackboneWithFPN(
        features,
        {str(index): str(level) for level, index in enumerate(ends)},
        [features[index].out_channels for index in ends],
        fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    sizes = ((16,), (32,), (64,), (128,))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors, **options)


_DETECTORS = {
    "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet18_fpn": fasterrcnn_resnet18_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
    "fasterrcnn_mobilenet_v3_large_stride8_fpn": fasterrcnn_mobilenet_v3_large_stride8_fpn,
}
#: The scalar entries of MeanAveragePrecision's result that are logged.
LOGGED_METRICS = ("map", "map_50", "map_75", "mar_100")


def build_detector(
    name: DetectorName,
    num_classes: int,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
    min_size: int = 480,
    max_size: int = 640,
    trainable_backbone_layers: int | None = None,
    anchor_sizes: Sequence[int] | None = None,
    aspect_ratios: Sequence[float] | None = None,
    fpn_channels: int | None = None,
    **options: Any,
) -> nn.Module:
    """A torchvision Faster R-CNN with ``num_classes`` classes (background included).

    Nothing is downloaded unless ``pretrained`` (COCO-trained detector; its box predictor is
    replaced for ``num_classes``) or ``pretrained_backbone`` (ImageNet backbone) is set.
    Without weights, batch norms train (torchvision freezes them only for pretrained ones).
    ``anchor_sizes`` and ``aspect_ratios`` (height over width) replace the RPN's anchors and,
    with them, its head: ResNet-FPN detectors take one size per pyramid level, MobileNet ones
    every size on each of their levels. ``fpn_channels`` sets the pyramid's width of the
    ``stride8`` MobileNet detector (the others keep torchvision's 256). Further ``options``
    go to torchvision's ``FasterRCNN`` (e.g. ``box_batch_size_per_image``).

    Example:
        >>> model = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=2)
        >>> type(model).__name__
        'FasterRCNN'
    """
    if name not in _DETECTORS:
        msg = f"model must be one of {sorted(_DETECTORS)}, got {name!r}"
        raise ValueError(msg)
    if num_classes < 2:
        msg = f"num_classes counts the background, so it must be >= 2, got {num_classes}"
        raise ValueError(msg)
    builder = _DETECTORS[name]
    options = {"min_size": min_size, "max_size": max_size, **options}
    if fpn_channels is not None:
        if builder is not fasterrcnn_mobilenet_v3_large_stride8_fpn:
            msg = (
                "fpn_channels is only an option of fasterrcnn_mobilenet_v3_large_stride8_fpn, "
                f"not {name}"
            )
            raise ValueError(msg)
        if fpn_channels < 1:
            msg = f"fpn_channels must be >= 1, got {fpn_channels}"
            raise ValueError(msg)
        options["fpn_channels"] = fpn_channels
    if trainable_backbone_layers is not None:
        options["trainable_backbone_layers"] = trainable_backbone_layers
    if pretrained:
        model = builder(weights="DEFAULT", **options)
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(features, num_classes)
    else:
        backbone = "DEFAULT" if pretrained_backbone else None
        model = builder(weights=None, weights_backbone=backbone, num_classes=num_classes, **options)
    if anchor_sizes is not None or aspect_ratios is not None:
        _replace_anchors(model, anchor_sizes, aspect_ratios)
    return model


def _replace_anchors(
    model: nn.Module, sizes: Sequence[int] | None, ratios: Sequence[float] | None
) -> None:
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.rpn import RPNHead

    rpn: Any = model.rpn
    old = rpn.anchor_generator
    levels = len(old.sizes)
    one_per_level = all(len(level) == 1 for level in old.sizes)
    if sizes is None:
        per_level = old.sizes
    elif one_per_level:
        if len(sizes) != levels:
            msg = f"anchor_sizes must give one size per pyramid level ({levels}), got {list(sizes)}"
            raise ValueError(msg)
        per_level = tuple((int(size),) for size in sizes)
    else:
        per_level = (tuple(int(size) for size in sizes),) * levels
    ratio_levels = (
        old.aspect_ratios if ratios is None else (tuple(float(r) for r in ratios),) * levels
    )
    if min(min(r) for r in ratio_levels) <= 0 or min(min(s) for s in per_level) <= 0:
        msg = f"anchor sizes and aspect ratios must be positive, got {per_level} and {ratio_levels}"
        raise ValueError(msg)
    rpn.anchor_generator = AnchorGenerator(per_level, ratio_levels)
    channels = rpn.head.conv[0][0].in_channels
    rpn.head = RPNHead(channels, rpn.anchor_generator.num_anchors_per_location()[0])


class DetectionTask(LightningModule):
    """Faster R-CNN detection (pallets by default: one class plus the background).

    Batches follow the project's contract: ``image`` a list (or stack) of (3, H, W) floats in
    [0, 1], ``boxes`` a list of (N, 4) xyxy pixel boxes, ``labels`` a list of (N,) int64.
    A non-finite loss stops the run with the loss terms in the message.

    Args:
        model: Faster R-CNN variant: ResNet-50-FPN (default, torchvision's), ResNet-18-FPN
            (lighter, same architecture), torchvision's MobileNet-v3 ones (their pyramid
            starts at stride 32), or a MobileNet-v3 whose pyramid starts at stride 8
            (``fasterrcnn_mobilenet_v3_large_stride8_fpn``, for small objects on a CPU).
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
        fpn_channels: Width of the feature pyramid of the ``stride8`` MobileNet detector
            (128 if None; the other detectors keep torchvision's 256).
        channels_last: Keep the model in the channels-last memory format. On CPUs it avoids a
            very slow path of depthwise convolutions (MobileNet): their backward pass took
            6.4 s in NCHW and 88 ms channels-last on this project's development machine.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adamw"``.
        lr: Peak learning rate.
        weight_decay: Weight decay.
        warmup_steps: Linear warm-up steps; then a cosine decay to ``lr / 20`` over the run.
        score_threshold: Detections scoring below this are dropped at inference.
        detections_per_image: At most this many detections per image.
    """

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
        channels_last: bool = False,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        warmup_steps: int = 100,
        score_threshold: float = 0.05,
        detections_per_image: int = 100,
    ) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adamw"):
            msg = f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}"
            raise ValueError(msg)
        if not lr > 0 or warmup_steps < 0:
            msg = f"lr must be > 0 and warmup_steps >= 0, got {lr!r} and {warmup_steps!r}"
            raise ValueError(msg)
        self.save_hyperparameters()
        self.model = build_detector(
            model,
            num_classes,
            pretrained,
            pretrained_backbone,
            min_size,
            max_size,
            trainable_backbone_layers,
            anchor_sizes,
            aspect_ratios,
            fpn_channels,
            box_batch_size_per_image=box_batch_size_per_image,
        )
        roi_heads: Any = self.model.roi_heads
        if representation_size != roi_heads.box_predictor.cls_score.in_features:
            from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

            resolution = roi_heads.box_roi_pool.output_size[0]
            channels = self.model.backbone.out_channels  # type: ignore[union-attr]
            roi_heads.box_head = TwoMLPHead(channels * resolution**2, representation_size)
            roi_heads.box_predictor = FastRCNNPredictor(representation_size, num_classes)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        roi_heads.score_thresh = score_threshold
        roi_heads.detections_per_img = detections_per_image
        self.val_metrics = nn.ModuleDict()
        self.test_metrics = nn.ModuleDict()

    @override
    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            names = evaluation_set_names(self, "val")
            self.val_metrics = nn.ModuleDict({n: _average_precision() for n in names})
        if stage == "test":
            names = evaluation_set_names(self, "test")
            self.test_metrics = nn.ModuleDict({n: _average_precision() for n in names})

    @override
    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections (``boxes``, ``scores``, ``labels``) per image, in eval mode."""
        return self.model(list(images))

    @override
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        images = list(batch["image"])
        targets = [
            {"boxes": boxes, "labels": labels}
            for boxes, labels in zip(batch["boxes"], batch["labels"], strict=True)
        ]
        losses = self.model(images, targets)
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

    def _evaluate(self, batch: Mapping[str, Any], dataloader_idx: int, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        names = list(metrics)
        name = names[dataloader_idx] if dataloader_idx < len(names) else str(dataloader_idx)
        predictions = self(batch["image"])
        targets = [
            {"boxes": boxes, "labels": labels}
            for boxes, labels in zip(batch["boxes"], batch["labels"], strict=True)
        ]
        metric: MeanAveragePrecision = metrics[name]  # type: ignore[assignment]
        metric.update(predictions, targets)

    def _log_epoch(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        for name, module in metrics.items():
            metric: MeanAveragePrecision = module  # type: ignore[assignment]
            result = metric.compute()
            for key in LOGGED_METRICS:
                value = result[key]
                # -1 means "no ground truth at all" in COCO; log it as 0.
                self.log(f"{stage}/{name}/{key}", value.clamp_min(0.0), add_dataloader_idx=False)
            metric.reset()

    @override
    def validation_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._evaluate(batch, dataloader_idx, "val")

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    @override
    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "test")

    @override
    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

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
        warmup = int(hp["warmup_steps"])

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def draw_detections(
    image: torch.Tensor, truth: torch.Tensor | None, boxes: torch.Tensor
) -> np.ndarray:
    """``image`` (C x H x W in [0, 1]) as uint8 RGB: ``truth`` boxes green, ``boxes`` red.

    Boxes narrower or lower than a pixel (a detector may predict them) are drawn as one pixel.
    """
    array = (image[:3].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    picture = Image.fromarray(np.ascontiguousarray(array))
    pen = ImageDraw.Draw(picture)
    for box in [] if truth is None else truth.tolist():
        pen.rectangle(_pixel_corners(box), outline=(0, 230, 64), width=2)
    for box in boxes.tolist():
        pen.rectangle(_pixel_corners(box), outline=(255, 40, 40), width=1)
    return np.asarray(picture)


def _pixel_corners(box: Sequence[float]) -> list[float]:
    """The first and last pixel PIL draws of an xyxy box (right, bottom exclusive); >= one."""
    left, top, right, bottom = box
    return [left, top, max(left, right - 1), max(top, bottom - 1)]


def _average_precision() -> MeanAveragePrecision:
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval")
