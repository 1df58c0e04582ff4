"""Collation for the project's sample contract.

Images (and semantic masks) are stacked into one tensor; detection targets, provenance and
metadata stay lists with one entry per sample, because their sizes differ between samples.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from torch.utils.data import default_collate

from lightning_synth.data.sources import SampleList

#: Keys kept as per-sample lists by :func:`collate_samples`.
LIST_KEYS: frozenset[str] = frozenset(
    {"boxes", "labels", "masks", "visible_fraction", "meta", "source", "pool"}
)


def collate_samples(
    samples: Sequence[Mapping[str, Any]], list_keys: Collection[str] = LIST_KEYS
) -> dict[str, Any]:
    """Collate dict samples: stack tensors, keep ``list_keys`` as lists.

    Works for segmentation (``image`` and ``mask`` are stacked) and detection (``boxes`` and
    ``labels`` stay lists of tensors, as torchvision's detection models expect them).
    Every other key goes through :func:`torch.utils.data.default_collate`. A
    :class:`~lightning_synth.data.sources.SampleList` adds its provenance as ``source`` and
    ``pool`` lists.

    Args:
        samples: Samples, all with the same keys.
        list_keys: Keys whose values are returned as a list, one entry per sample.

    Returns:
        The batch as a dict.

    Example:
        >>> import torch
        >>> batch = collate_samples([
        ...     {"image": torch.zeros(3, 4, 4), "boxes": torch.zeros(2, 4), "source": "real"},
        ...     {"image": torch.ones(3, 4, 4), "boxes": torch.zeros(0, 4), "source": "synthetic"},
        ... ])
        >>> batch["image"].shape, [b.shape[0] for b in batch["boxes"]], batch["source"]
        (torch.Size([2, 3, 4, 4]), [2, 0], ['real', 'synthetic'])
    """
    if not samples:
        msg = "samples must hold at least one sample, got an empty batch"
        raise ValueError(msg)
    first = samples[0]
    # Cheap per-sample checks (the collate runs for every batch): a sample with other keys
    # either has another number of keys or lacks one of the first sample's (KeyError below).
    if len(set(map(len, samples))) != 1:
        _raise_key_mismatch(samples)
    batch: dict[str, Any] = {}
    for key in first:
        try:
            values = [sample[key] for sample in samples]
        except KeyError:
            _raise_key_mismatch(samples)
        if key in list_keys:
            batch[key] = values
            continue
        try:
            # default_collate stacks straight into shared memory inside workers (no extra copy).
            batch[key] = default_collate(values)
        except RuntimeError as error:
            shapes = sorted({tuple(value.shape) for value in values if hasattr(value, "shape")})
            if len(shapes) < 2:
                raise
            msg = (
                f"cannot stack {key!r}: samples have shapes {shapes}; resize them to one size, "
                "or add the key to list_keys"
            )
            raise ValueError(msg) from error
    if isinstance(samples, SampleList):
        batch["source"] = samples.sources
        batch["pool"] = list(samples.pools) if samples.pools is samples.sources else samples.pools
    return batch


def _raise_key_mismatch(samples: Sequence[Mapping[str, Any]]) -> None:
    reference = sorted(samples[0].keys())
    for position, sample in enumerate(samples):
        if sorted(sample.keys()) != reference:
            msg = (
                f"sample {position} of the batch has keys {sorted(sample.keys())}, "
                f"but sample 0 has {reference}"
            )
            raise ValueError(msg)
