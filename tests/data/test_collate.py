from __future__ import annotations

import pytest
import torch

from lightning_synth.data import collate_samples


def test_detection_targets_stay_lists_and_images_stack() -> None:
    samples = [
        {
            "image": torch.rand(3, 6, 6),
            "boxes": torch.rand(n, 4),
            "labels": torch.ones(n, dtype=torch.int64),
            "source": "real",
            "meta": {"file": f"{n}.png"},
        }
        for n in (0, 2, 5)
    ]
    batch = collate_samples(samples)
    assert batch["image"].shape == (3, 3, 6, 6)
    assert [b.shape for b in batch["boxes"]] == [(0, 4), (2, 4), (5, 4)]
    assert [int(lab.sum()) for lab in batch["labels"]] == [0, 2, 5]
    assert batch["source"] == ["real"] * 3
    assert batch["meta"][1] == {"file": "2.png"}


def test_segmentation_masks_and_other_keys_collate_by_default() -> None:
    samples = [
        {"image": torch.rand(1, 4, 4), "mask": torch.zeros(4, 4).long(), "id": i} for i in range(2)
    ]
    batch = collate_samples(samples)
    assert batch["mask"].shape == (2, 4, 4)
    assert batch["id"].tolist() == [0, 1]


def test_bad_batches_get_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"cannot stack 'image': samples have shapes"):
        collate_samples([{"image": torch.zeros(1, 4, 4)}, {"image": torch.zeros(1, 5, 4)}])
    with pytest.raises(ValueError, match="sample 1 of the batch has keys"):
        collate_samples([{"image": torch.zeros(1)}, {"img": torch.zeros(1)}])
    with pytest.raises(ValueError, match="empty batch"):
        collate_samples([])
