"""A dataset over the toy disk generator, deterministic per seed and index."""

from __future__ import annotations

from lightning_synth.data.generated import GeneratedDataset
from lightning_synth.generators.toy import ToyDisksGenerator, ToyStyle


class ToyDisksDataset(GeneratedDataset):
    """Images of ellipses with their masks: ``GeneratedDataset(ToyDisksGenerator(size, style))``.

    Sample ``i`` depends only on ``(seed, i)``, so it is the same in any worker and on any rank.

    Args:
        length: Number of samples.
        size: Image side in pixels.
        style: ``"clean"`` (rendered-looking) or ``"recorded"`` (camera-looking).
        seed: Seed of the whole set.

    Example:
        >>> import torch
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
        super().__init__(ToyDisksGenerator(size, style), length, seed)
