"""Albumentations transforms for images that carry intensities, not colours (HRTEM fields).

They apply :mod:`lightning_synth.data.images`' functions to one (H, W, C) float image inside
an albumentations pipeline, so that they run in the loader's workers before a crop (see
:class:`~lightning_synth.data.HRTEMDataModule`'s ``normalize_fields``). A module of its own
because albumentations is imported here at import time.
"""

from __future__ import annotations

from typing import Any

import albumentations as A  # noqa: N812
import numpy as np
import torch

from lightning_synth.data.images import Normalization, coarsen, normalize_intensity


def _batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def _image(batch: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(batch[0].permute(1, 2, 0).numpy())


class CoarserPixels(A.ImageOnlyTransform):
    """The image as if recorded with pixels 1-``bounds[1]`` times coarser and resampled back.

    See :func:`~lightning_synth.data.images.coarsen`; the factor is drawn uniformly from
    ``bounds`` per image, and the transform applies with probability ``p``.
    """

    def __init__(self, bounds: tuple[float, float], p: float = 0.5) -> None:
        super().__init__(p=p)
        low, high = (float(v) for v in bounds)
        if not 1.0 <= low <= high:
            msg = f"bounds must be (low, high) with 1 <= low <= high, got {bounds!r}"
            raise ValueError(msg)
        self.bounds = (low, high)

    def get_params(self) -> dict[str, float]:
        """The factor of one image."""
        return {"factor": self.py_random.uniform(*self.bounds)}

    def apply(self, img: np.ndarray, factor: float = 1.0, **params: Any) -> np.ndarray:
        """``img`` (H, W, C) coarsened by ``factor``."""
        return _image(coarsen(_batch(img).float(), [factor]))


class NormalizeIntensity(A.ImageOnlyTransform):
    """:func:`~lightning_synth.data.images.normalize_intensity` of the whole image."""

    def __init__(self, method: Normalization = "percentile") -> None:
        super().__init__(p=1.0)
        self.method = method

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        """``img`` (H, W, C) normalised."""
        return _image(normalize_intensity(_batch(img), self.method))
