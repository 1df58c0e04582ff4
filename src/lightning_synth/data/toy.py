"""A dataset over the toy disk generator, deterministic per seed and index."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from lightning_synth.data.sources import stable_seed
from lightning_synth.generators.toy import TOY_STYLES, ToyStyle, render_disks


class ToyDisksDataset(Dataset[dict[str, Any]]):
    """Images of ellipses with their masks, generated on the fly.

    Sample ``i`` depends only on ``(seed, i)``, so it is the same in any worker and on any rank.

    Args:
        length: Number of samples.
        size: Image side in pixels.
        style: ``"clean"`` (rendered-looking) or ``"recorded"`` (camera-looking).
        seed: Seed of the whole set.

    Example:
        >>> data = ToyDisksDataset(4, size=16, seed=1)
        >>> sample = data[2]
        >>> sorted(sample), sample["image"].shape
        (['image', 'mask', 'meta'], torch.Size([1, 16, 16]))
        >>> bool(torch.equal(sample["image"], data[2]["image"]))
        True
    """

    def __init__(
        self, length: int, size: int = 32, style: ToyStyle = "clean", seed: int = 0
    ) -> None:
        if length < 1:
            msg = f"length must be >= 1, got {length}"
            raise ValueError(msg)
        if size < 8:
            msg = f"size must be >= 8 pixels, got {size}"
            raise ValueError(msg)
        if style not in TOY_STYLES:
            msg = f"style must be one of {TOY_STYLES}, got {style!r}"
            raise ValueError(msg)
        self.length, self.size, self.style, self.seed = length, size, style, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            msg = f"index must be in [0, {self.length}), got {index}"
            raise IndexError(msg)
        generator = torch.Generator().manual_seed(stable_seed(self.seed, self.style, str(index)))
        image, mask = render_disks(self.size, generator, self.style)
        return {"image": image, "mask": mask, "meta": {"index": index, "style": self.style}}
