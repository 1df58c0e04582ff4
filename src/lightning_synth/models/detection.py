"""Faster R-CNN builders: torchvision's detectors, and lighter ones for small objects on CPUs.

Nothing is downloaded unless a caller asks for pretrained weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torchvision.models import detection
from torchvision.ops import misc as misc_ops

DetectorName = Literal[
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet18_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_stride8_fpn",
    "fasterrcnn_timm_fpn",
]
#: The strides of the backbone features that feed the pyramids of this module's detectors
#: (a max-pooled stride-64 level is added on top).
PYRAMID_STRIDES = (8, 16, 32)


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


class TimmPyramid(nn.Module):
    """A timm model's feature maps at strides 8, 16 and 32 under a feature pyramid.

    The pyramid's levels are named ``"0"``, ``"1"``, ``"2"`` (strides 8-32) and ``"pool"``
    (stride 64), as torchvision's detectors expect; ``out_channels`` is their width.
    """

    def __init__(self, name: str, channels: int, pretrained: bool = False) -> None:
        super().__init__()
        import timm
        from torchvision.ops.feature_pyramid_network import (
            FeaturePyramidNetwork,
            LastLevelMaxPool,
        )

        try:
            self.body = timm.create_model(name, pretrained=pretrained, features_only=True)
        except RuntimeError as error:  # timm's "Unknown model" / "features_only not implemented"
            msg = f"backbone {name!r} is not a timm model with feature maps: {error}"
            raise ValueError(msg) from error
        info: Any = self.body.feature_info
        reductions = list(info.reduction())
        missing = [stride for stride in PYRAMID_STRIDES if stride not in reductions]
        if missing:
            msg = f"backbone {name!r} has feature maps at strides {reductions}, not at {missing}"
            raise ValueError(msg)
        # The last feature map at each stride (some models list two at one stride).
        self.levels = [len(reductions) - 1 - reductions[::-1].index(s) for s in PYRAMID_STRIDES]
        self.fpn = FeaturePyramidNetwork(
            [info.channels()[index] for index in self.levels],
            channels,
            extra_blocks=LastLevelMaxPool(),
        )
        self.out_channels = channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """The pyramid's levels of a batch of images."""
        features = self.body(images)
        picked = ((str(level), features[index]) for level, index in enumerate(self.levels))
        return self.fpn(OrderedDict(picked))


def fasterrcnn_timm_fpn(
    weights: str | None = None,
    weights_backbone: str | None = None,
    num_classes: int = 91,
    backbone: str = "resnet18",
    fpn_channels: int = 128,
    **options: Any,
) -> nn.Module:
    """Faster R-CNN on any timm model whose feature maps reach strides 8, 16 and 32.

    The pyramid (:class:`TimmPyramid`) takes the backbone's last feature map at each of
    those strides plus a max-pooled stride-64 level, one anchor size per level (16, 32, 64,
    128 pixels unless ``anchor_sizes`` says otherwise), ``fpn_channels`` wide. All layers
    train, norm layers included (timm's defaults: batch norm for ResNets). There are no
    detector weights (``weights`` must be None); ``weights_backbone="DEFAULT"`` downloads
    timm's pretrained weights for ``backbone``.
    """
    if weights is not None:
        msg = "there are no pretrained fasterrcnn_timm_fpn detectors; use pretrained_backbone"
        raise ValueError(msg)
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FasterRCNN

    pyramid = TimmPyramid(backbone, fpn_channels, pretrained=weights_backbone is not None)
    sizes = ((16,), (32,), (64,), (128,))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return FasterRCNN(pyramid, num_classes=num_classes, rpn_anchor_generator=anchors, **options)


_DETECTORS = {
    "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet18_fpn": fasterrcnn_resnet18_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
    "fasterrcnn_mobilenet_v3_large_320_fpn": detection.fasterrcnn_mobilenet_v3_large_320_fpn,
    "fasterrcnn_mobilenet_v3_large_stride8_fpn": fasterrcnn_mobilenet_v3_large_stride8_fpn,
    "fasterrcnn_timm_fpn": fasterrcnn_timm_fpn,
}
#: The detectors whose pyramid width ``fpn_channels`` sets.
_SIZED_PYRAMIDS = ("fasterrcnn_mobilenet_v3_large_stride8_fpn", "fasterrcnn_timm_fpn")


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
    representation_size: int | None = None,
    backbone: str | None = None,
    **options: Any,
) -> nn.Module:
    """A torchvision Faster R-CNN with ``num_classes`` classes (background included).

    Nothing is downloaded unless ``pretrained`` (COCO-trained detector; its box predictor is
    replaced for ``num_classes``) or ``pretrained_backbone`` (ImageNet backbone) is set.
    Without weights, batch norms train (torchvision freezes them only for pretrained ones).
    ``anchor_sizes`` and ``aspect_ratios`` (height over width) replace the RPN's anchors and,
    with them, its head: ResNet-FPN detectors take one size per pyramid level, MobileNet ones
    every size on each of their levels. ``fpn_channels`` sets the pyramid's width of the
    ``stride8`` MobileNet and the timm detectors (the others keep torchvision's 256).
    ``backbone`` names the timm model of ``fasterrcnn_timm_fpn`` (``"resnet18"`` if None)
    and is an error with any other detector.
    ``representation_size`` replaces the width of the box head's two fully connected layers
    (torchvision's 1024). Further ``options`` go to torchvision's ``FasterRCNN`` (e.g.
    ``box_batch_size_per_image``, ``box_score_thresh``, ``box_detections_per_img``).

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
    if backbone is not None:
        if name != "fasterrcnn_timm_fpn":
            msg = f"backbone is only an option of fasterrcnn_timm_fpn, not {name}"
            raise ValueError(msg)
        options["backbone"] = backbone
    if fpn_channels is not None:
        if name not in _SIZED_PYRAMIDS:
            msg = f"fpn_channels is only an option of {' and '.join(_SIZED_PYRAMIDS)}, not {name}"
            raise ValueError(msg)
        if fpn_channels < 1:
            msg = f"fpn_channels must be >= 1, got {fpn_channels}"
            raise ValueError(msg)
        options["fpn_channels"] = fpn_channels
    if trainable_backbone_layers is not None:
        if name == "fasterrcnn_timm_fpn":
            msg = "trainable_backbone_layers is not an option of fasterrcnn_timm_fpn (all train)"
            raise ValueError(msg)
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
    if representation_size is not None:
        _resize_box_head(model, representation_size, num_classes)
    return model


def _resize_box_head(model: nn.Module, width: int, num_classes: int) -> None:
    """Give the box head two fully connected layers of ``width`` (and a matching predictor)."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        msg = f"representation_size must be an integer >= 1, got {width!r}"
        raise ValueError(msg)
    roi_heads: Any = model.roi_heads
    if width == roi_heads.box_predictor.cls_score.in_features:
        return
    resolution = roi_heads.box_roi_pool.output_size[0]
    channels = model.backbone.out_channels  # type: ignore[union-attr]
    roi_heads.box_head = TwoMLPHead(channels * resolution**2, width)
    roi_heads.box_predictor = FastRCNNPredictor(width, num_classes)


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
