"""A disk cache of generated samples: rendered once, resumable after a kill, atomic writes.

Layout of a cache directory::

    manifest.json          what the samples were generated from (checked on every open)
    samples/000042.npz     arrays of sample 42 (image, mask, ...)
    samples/000042.json    its metadata record; written last, so it marks the sample done
    previews/000042.png    PNG previews of the first ``previews`` samples

Every file is written to a temporary name and renamed into place, so a kill leaves either a
whole sample or none; rendering again skips what is done.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lightning_synth.drawing import draw_boxes

#: Key of a sample record that lists its arrays' dtypes and shapes (checked on load).
ARRAYS_RECORD = "_arrays"
#: Sample keys stored as arrays; everything under ``meta`` goes to the JSON record.
ARRAY_KEYS = ("image", "mask", "instance_masks", "boxes", "labels", "visible_fraction", "masks")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _preview(
    image: np.ndarray, mask: np.ndarray | None, boxes: np.ndarray | None = None
) -> np.ndarray:
    """A uint8 picture of a sample: grey (with its mask beside it) or RGB (with its boxes)."""
    if image.ndim == 3 and image.shape[0] == 3:
        picture = image.astype(np.float32)
        if image.dtype != np.uint8:
            picture = picture * 255
        rgb = torch.from_numpy(picture.clip(0, 255).astype(np.uint8))
        return draw_boxes(
            rgb, [(None if boxes is None else torch.from_numpy(boxes), (0, 255, 64), 1)]
        )
    picture = image[0] if image.ndim == 3 else image
    low, high = float(picture.min()), float(picture.max())
    picture = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
    gray = (picture * 255).astype(np.uint8)
    if mask is None:
        return gray
    return np.hstack([gray, (mask > 0).astype(np.uint8) * 255])


def _render_worker(parent: int) -> None:
    """Render-process initialiser: one torch thread, and exit when the parent is gone.

    One thread per process, or the processes fight over the cores. A process pool's workers
    otherwise keep rendering after their parent is killed (SIGKILL gives it no chance to
    stop them); a watcher thread ends the worker once its parent has changed.
    """
    torch.set_num_threads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class SampleCache:
    """Renders ``length`` samples of ``make_sample(index)`` into ``root``.

    Args:
        root: Cache directory.
        length: Number of samples.
        manifest: What the samples depend on (generator settings, seed); JSON-serialisable.
            Opening a directory whose manifest differs raises, so one directory never mixes
            samples of two settings.
        make_sample: Picklable callable ``index -> sample dict`` (deterministic per index).
        previews: Write PNG previews of this many first samples.
    """

    def __init__(
        self,
        root: str | Path,
        length: int,
        manifest: Mapping[str, Any],
        make_sample: Callable[[int], Mapping[str, Any]] | None = None,
        previews: int = 16,
    ) -> None:
        if length < 1:
            msg = f"length must be >= 1, got {length}"
            raise ValueError(msg)
        self.root = Path(root)
        self.length = length
        self.manifest = _jsonable({"length": length, **manifest})
        self.make_sample = make_sample
        self.previews = previews
        path = self.root / "manifest.json"
        if path.exists():
            existing = _read_json(path, "cache manifest")
            if existing != self.manifest:
                differing = sorted(
                    k
                    for k in set(existing) | set(self.manifest)
                    if existing.get(k) != self.manifest.get(k)
                )
                msg = (
                    f"cache {self.root} was rendered with other settings (differing: {differing}); "
                    "use another directory or delete this one"
                )
                raise ValueError(msg)

    def sample_path(self, index: int) -> Path:
        """Path of sample ``index``'s arrays."""
        return self.root / "samples" / f"{index:06d}.npz"

    def is_done(self, index: int) -> bool:
        """Whether sample ``index`` is complete (its record is written last)."""
        return self.sample_path(index).with_suffix(".json").exists()

    def missing(self) -> list[int]:
        """Indices not rendered yet."""
        return [i for i in range(self.length) if not self.is_done(i)]

    def write(self, index: int, sample: Mapping[str, Any]) -> None:
        """Store one sample atomically (arrays, then preview, then the record)."""
        arrays = {
            key: np.asarray(
                sample[key].cpu() if isinstance(sample[key], torch.Tensor) else sample[key]
            )
            for key in ARRAY_KEYS
            if key in sample
        }
        if "image" not in arrays:
            msg = f"sample {index} has no 'image'"
            raise ValueError(msg)
        path = self.sample_path(index)
        _atomic_write(path, lambda file: np.savez_compressed(file, **arrays))  # type: ignore[arg-type]
        if index < self.previews:
            from PIL import Image

            preview = _preview(arrays["image"], arrays.get("mask"), arrays.get("boxes"))
            _atomic_write(
                self.root / "previews" / f"{index:06d}.png",
                lambda file: Image.fromarray(preview).save(file, format="PNG"),
            )
        layout = {key: [str(array.dtype), list(array.shape)] for key, array in arrays.items()}
        record = {"index": index, **_jsonable(sample.get("meta", {})), ARRAYS_RECORD: layout}
        _atomic_write(
            path.with_suffix(".json"), lambda file: file.write(json.dumps(record)), mode="w"
        )

    def render(self, workers: int = 0, progress: bool = True) -> None:
        """Render every missing sample (in ``workers`` processes when > 0)."""
        if self.make_sample is None:
            msg = "this cache was opened without make_sample, so it cannot render"
            raise RuntimeError(msg)
        manifest = self.root / "manifest.json"
        if not manifest.exists() and any((self.root / "samples").glob("*.json")):
            msg = (
                f"cache {self.root} holds samples but no manifest.json, so what they were "
                "rendered from is unknown; use another directory or delete this one"
            )
            raise ValueError(msg)
        _atomic_write(manifest, lambda f: f.write(json.dumps(self.manifest, indent=1)), "w")
        todo = self.missing()
        if not todo:
            return
        bar = tqdm(
            total=self.length,
            initial=self.length - len(todo),
            desc=f"rendering {self.root.name}",
            disable=not progress,
        )
        samples: Iterable[tuple[int, Mapping[str, Any]]]
        if workers > 0:
            pool = ProcessPoolExecutor(
                max_workers=workers, initializer=_render_worker, initargs=(os.getpid(),)
            )
            samples = zip(todo, pool.map(self.make_sample, todo), strict=True)
        else:
            pool = None
            samples = ((index, self.make_sample(index)) for index in todo)
        try:
            for index, sample in samples:
                self.write(index, sample)
                bar.update()
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def load(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as tensors, with its record under ``meta``."""
        if not 0 <= index < self.length:
            msg = f"index must be in [0, {self.length}), got {index}"
            raise IndexError(msg)
        if not self.is_done(index):
            msg = f"sample {index} of {self.root} is not rendered; call render() first"
            raise FileNotFoundError(msg)
        path = self.sample_path(index)
        record = _read_json(path.with_suffix(".json"), f"record of sample {index}")
        layout = record.pop(ARRAYS_RECORD, None)
        try:
            with np.load(path) as arrays:
                sample: dict[str, Any] = {
                    key: torch.from_numpy(arrays[key]) for key in arrays.files
                }
        except Exception as error:  # zip, pickle and OS errors of a damaged file
            msg = f"cannot read cached sample {path}: {error}; delete it and render again"
            raise ValueError(msg) from error
        if layout is not None:
            found = {key: [str(v.numpy().dtype), list(v.shape)] for key, v in sample.items()}
            if found != layout:
                msg = (
                    f"cached sample {path} holds {found}, but its record says {layout}; "
                    "delete it and render again"
                )
                raise ValueError(msg)
        sample["meta"] = record
        return sample


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        msg = f"cannot read the {what} {path}: {error}; delete it and render again"
        raise ValueError(msg) from error
