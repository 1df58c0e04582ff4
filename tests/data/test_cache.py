"""The disk cache: resumable after an interruption, atomic, checked against its settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lightning_synth.data.cache import CachedDataset, SampleCache


class Maker:
    """Deterministic samples; can be told to fail at one index (a kill mid-render)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.calls = fail_at, []

    def __call__(self, index: int) -> dict[str, Any]:
        self.calls.append(index)
        if index == self.fail_at:
            raise KeyboardInterrupt
        generator = torch.Generator().manual_seed(index)
        image = torch.rand(1, 8, 8, generator=generator)
        return {
            "image": image,
            "mask": (image[0] > 0.5).long(),
            "meta": {"seed": index, "dose": np.float64(3.5)},
        }


def test_render_resumes_after_an_interruption(tmp_path: Path) -> None:
    interrupted = Maker(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        SampleCache(tmp_path, 6, {"generator": "toy"}, interrupted, previews=2).render(
            progress=False
        )
    cache = SampleCache(tmp_path, 6, {"generator": "toy"}, Maker(), previews=2)
    assert cache.missing() == [3, 4, 5]
    assert not list((tmp_path / "samples").glob("*.tmp"))  # nothing half-written
    resumed = Maker()
    SampleCache(tmp_path, 6, {"generator": "toy"}, resumed, previews=2).render(progress=False)
    assert resumed.calls == [3, 4, 5]
    dataset = CachedDataset(cache)
    assert len(dataset) == 6
    sample = dataset[4]
    assert torch.equal(sample["image"], Maker()(4)["image"])
    assert sample["meta"] == {"index": 4, "seed": 4, "dose": 3.5}
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["000000.png", "000001.png"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"length": 6, "generator": "toy"}


def test_other_settings_are_refused_and_missing_samples_reported(tmp_path: Path) -> None:
    SampleCache(tmp_path, 2, {"generator": "toy"}, Maker()).render(progress=False)
    with pytest.raises(
        ValueError, match=r"rendered with other settings \(differing: \['generator'\]\)"
    ):
        SampleCache(tmp_path, 2, {"generator": "other"}, Maker())
    partial = SampleCache(tmp_path / "b", 3, {"generator": "toy"}, Maker(fail_at=1))
    with pytest.raises(KeyboardInterrupt):
        partial.render(progress=False)
    with pytest.raises(ValueError, match="lacks 2 of 3 samples; render it first"):
        CachedDataset(partial)
    with pytest.raises(FileNotFoundError, match="sample 2 .* is not rendered"):
        partial.load(2)


def test_render_in_worker_processes(tmp_path: Path) -> None:
    cache = SampleCache(tmp_path, 4, {"generator": "toy"}, Maker())
    cache.render(workers=2, progress=False)
    assert cache.missing() == []
    assert torch.equal(cache.load(2)["mask"], Maker()(2)["mask"])
