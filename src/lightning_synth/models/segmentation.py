"""Segmentation models from segmentation_models_pytorch (any smp or timm encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from lightning_synth._lazy import missing_extra

Architecture = Literal["unet", "unetplusplus", "fpn", "deeplabv3plus"]
ARCHITECTURES: tuple[str, ...] = ("unet", "unetplusplus", "fpn", "deeplabv3plus")


def build_segmenter(
    architecture: Architecture = "unet",
    encoder: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 1,
    classes: int = 2,
    decoder_channels: Sequence[int] | None = None,
) -> nn.Module:
    """An smp model; ``encoder`` is an smp encoder or ``"tu-<timm model>"``.

    Nothing is downloaded unless ``encoder_weights`` names pretrained weights (e.g.
    ``"imagenet"``). ``decoder_channels`` sets the widths of a U-Net (or U-Net++) decoder's
    five blocks, from the deepest (smp's default: 256, 128, 64, 32, 16); narrower blocks
    make a step on the CPU cheaper (``benchmarks/bench_segmenter.py``).

    Example:
        >>> model = build_segmenter("unet", "resnet18", in_channels=1, classes=2)
        >>> type(model).__name__
        'Unet'
    """
    try:
        import segmentation_models_pytorch as smp
    except ModuleNotFoundError as error:
        raise missing_extra(error, "the segmentation models") from error

    classes_by_name = {
        "unet": smp.Unet,
        "unetplusplus": smp.UnetPlusPlus,
        "fpn": smp.FPN,
        "deeplabv3plus": smp.DeepLabV3Plus,
    }
    if architecture not in classes_by_name:
        msg = f"architecture must be one of {sorted(classes_by_name)}, got {architecture!r}"
        raise ValueError(msg)
    for name, value in (("in_channels", in_channels), ("classes", classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be an integer >= 1, got {value!r}"
            raise ValueError(msg)
    options = {}
    if decoder_channels is not None:
        if architecture not in ("unet", "unetplusplus"):
            msg = f"decoder_channels applies to unet and unetplusplus, not {architecture!r}"
            raise ValueError(msg)
        widths = list(decoder_channels) if isinstance(decoder_channels, Sequence) else []
        if len(widths) != 5 or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
        ):
            msg = f"decoder_channels must be 5 integers >= 1, got {decoder_channels!r}"
            raise ValueError(msg)
        options["decoder_channels"] = widths
    return classes_by_name[architecture](
        encoder_name=encoder,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=classes,
        **options,
    )
