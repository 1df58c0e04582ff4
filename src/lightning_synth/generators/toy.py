"""A toy image generator: bright ellipses on a background, with their segmentation mask.

It stands in for a real generator in examples and tests: cheap, deterministic, and with two
styles that differ the way rendered and recorded images do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812

from lightning_synth.generators.base import stable_seed

ToyStyle = Literal["clean", "recorded"]
TOY_STYLES: tuple[str, ...] = ("clean", "recorded")


def render_disks(
    size: int,
    generator: torch.Generator,
    style: ToyStyle = "clean",
    max_disks: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ellipses on a background and return the image and its mask.

    ``"clean"`` draws sharp, high-contrast disks with weak noise, like a simple renderer.
    ``"recorded"`` draws lower-contrast ellipses, blurred, on an uneven background with
    stronger noise, like a camera would record them.

    Args:
        size: Image side in pixels.
        generator: Source of randomness; the same state gives the same image.
        style: ``"clean"`` or ``"recorded"``.
        max_disks: At most this many ellipses (at least one).

    Returns:
        ``image`` of shape (1, size, size), float32, and ``mask`` of shape (size, size), int64.

    Example:
        >>> image, mask = render_disks(32, torch.Generator().manual_seed(0))
        >>> image.shape, mask.shape, mask.dtype, int(mask.max())
        (torch.Size([1, 32, 32]), torch.Size([32, 32]), torch.int64, 1)
    """
    if style not in TOY_STYLES:
        msg = f"style must be 'clean' or 'recorded', got {style!r}"
        raise ValueError(msg)

    def uniform(low: float, high: float, n: int = 1) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    axis = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    count = int(torch.randint(1, max_disks + 1, (1,), generator=generator))
    mask = torch.zeros(size, size, dtype=torch.bool)
    for _ in range(count):
        cy, cx = uniform(0.2 * size, 0.8 * size, 2)
        radius = float(uniform(0.08 * size, 0.18 * size))
        squash = float(uniform(0.6, 1.0)) if style == "recorded" else 1.0
        mask |= ((x - cx) / radius) ** 2 + ((y - cy) / (radius * squash)) ** 2 <= 1.0

    if style == "clean":
        image = 0.1 + 0.8 * mask.float() + 0.05 * torch.randn(size, size, generator=generator)
    else:
        contrast = float(uniform(0.25, 0.45))
        tilt = uniform(-0.3, 0.3, 2)
        background = 0.4 + tilt[0] * (x / size - 0.5) + tilt[1] * (y / size - 0.5)
        image = background + contrast * mask.float()
        kernel = torch.exp(-0.5 * (torch.arange(-3, 4, dtype=torch.float32) / 1.2) ** 2)
        kernel = kernel / kernel.sum()
        image = F.conv2d(image[None, None], kernel.view(1, 1, 1, 7), padding=(0, 3))
        image = F.conv2d(image, kernel.view(1, 1, 7, 1), padding=(3, 0))[0, 0]
        image = image + 0.12 * torch.randn(size, size, generator=generator)
    return image.unsqueeze(0).float(), mask.long()


@dataclass(frozen=True)
class ToyDisksGenerator:
    """The toy generator: ``(seed, index) -> {"image", "mask", "meta"}`` (see :func:`render_disks`).

    Args:
        size: Image side in pixels (>= 8).
        style: ``"clean"`` (rendered-looking) or ``"recorded"`` (camera-looking).
        max_disks: At most this many ellipses (>= 1).

    Example:
        >>> sample = ToyDisksGenerator(size=16)(seed=1, index=2)
        >>> tuple(sample["image"].shape), sample["meta"]
        ((1, 16, 16), {'index': 2, 'style': 'clean'})
    """

    size: int = 32
    style: ToyStyle = "clean"
    max_disks: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 8:
            msg = f"size must be an integer >= 8 pixels, got {self.size!r}"
            raise ValueError(msg)
        if self.style not in TOY_STYLES:
            msg = f"style must be one of {TOY_STYLES}, got {self.style!r}"
            raise ValueError(msg)
        if (
            isinstance(self.max_disks, bool)
            or not isinstance(self.max_disks, int)
            or self.max_disks < 1
        ):
            msg = f"max_disks must be an integer >= 1, got {self.max_disks!r}"
            raise ValueError(msg)

    @property
    def config(self) -> ToyDisksGenerator:
        """The generator is its own (frozen) config."""
        return self

    def __call__(self, seed: int, index: int) -> dict[str, Any]:
        """The sample of ``(seed, index)``."""
        generator = torch.Generator().manual_seed(stable_seed(seed, self.style, str(index)))
        image, mask = render_disks(self.size, generator, self.style, self.max_disks)
        return {"image": image, "mask": mask, "meta": {"index": index, "style": self.style}}
