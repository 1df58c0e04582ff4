"""The disk cache: resumable after an interruption, atomic, checked against its settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lightning_synth.data.cache import SampleCache


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
    assert cache.missing() == []
    sample = cache.load(4)
    assert torch.equal(sample["image"], Maker()(4)["image"])
    assert sample["meta"] == {"index": 4, "seed": 4, "dose": 3.5}
    assert sorted(sample) == ["image", "mask", "meta"]
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
    assert partial.missing() == [1, 2]
    with pytest.raises(FileNotFoundError, match="sample 2 .* is not rendered"):
        partial.load(2)


def test_render_in_worker_processes(tmp_path: Path) -> None:
    cache = SampleCache(tmp_path, 4, {"generator": "toy"}, Maker())
    cache.render(workers=2, progress=False)
    assert cache.missing() == []
    assert torch.equal(cache.load(2)["mask"], Maker()(2)["mask"])


def test_damaged_files_are_named(tmp_path: Path) -> None:
    cache = SampleCache(tmp_path, 3, {"generator": "toy"}, Maker())
    cache.render(progress=False)
    cache.sample_path(0).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"cannot read cached sample .*000000\.npz"):
        cache.load(0)
    cache.sample_path(1).with_suffix(".json").write_text("{truncated")
    with pytest.raises(ValueError, match=r"record of sample 1 .*000001\.json"):
        cache.load(1)
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=r"cache manifest .*manifest\.json"):
        SampleCache(tmp_path, 3, {"generator": "toy"}, Maker())


def test_a_sample_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    small = SampleCache(tmp_path / "small", 2, {"generator": "toy"}, Maker())
    small.render(progress=False)
    other = SampleCache(
        tmp_path / "other", 2, {"generator": "toy"}, lambda i: {"image": torch.zeros(1, 4, 4)}
    )
    other.render(progress=False)
    other.sample_path(1).replace(small.sample_path(1))
    with pytest.raises(
        ValueError, match=r"000001\.npz holds .*\[1, 4, 4\].*record says .*\[1, 8, 8\]"
    ):
        small.load(1)


def test_samples_without_a_manifest_are_not_adopted(tmp_path: Path) -> None:
    SampleCache(tmp_path, 2, {"generator": "toy"}, Maker()).render(progress=False)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ValueError, match="holds samples but no manifest.json"):
        SampleCache(tmp_path, 2, {"generator": "other"}, Maker()).render(progress=False)


SLOW_RENDER = """
import os, sys, time
from pathlib import Path
from lightning_synth.data.cache import SampleCache

class Slow:
    def __init__(self, folder):
        self.folder = folder
    def __call__(self, index):
        (Path(self.folder) / f"{os.getpid()}.pid").touch()
        time.sleep(60)

SampleCache(sys.argv[1], 8, {"generator": "slow"}, Slow(sys.argv[2])).render(workers=2, progress=False)
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return False
    return "State:\tZ" not in status.read_text()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_render_workers_end_with_a_killed_parent(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen(
        [sys.executable, "-c", SLOW_RENDER, str(tmp_path / "cache"), str(pids)]
    )
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.stem) for p in pids.iterdir()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def test_detection_previews_show_their_boxes(tmp_path: Path) -> None:
    from PIL import Image

    def boxed(index: int) -> dict[str, Any]:
        return {
            "image": torch.zeros(3, 12, 16),
            "boxes": torch.tensor([[2.0, 3.0, 10.0, 9.0]]),
            "labels": torch.ones(1).long(),
        }

    SampleCache(tmp_path, 1, {"generator": "boxes"}, boxed).render(progress=False)
    preview = np.asarray(Image.open(tmp_path / "previews" / "000000.png"))
    assert preview.shape == (12, 16, 3)
    assert preview[3, 2].tolist() == [0, 255, 64] and preview[8, 9].tolist() == [0, 255, 64]
    assert preview[5, 5].tolist() == [0, 0, 0]
