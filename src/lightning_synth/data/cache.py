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
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

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
        rgb = np.ascontiguousarray(picture.clip(0, 255).astype(np.uint8).transpose(1, 2, 0))
        for x0, y0, x1, y1 in (boxes if boxes is not None else np.zeros((0, 4))).astype(int):
            x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
            rgb[y0 : y1 + 1, [x0, x1]] = (0, 255, 64)
            rgb[[y0, y1], x0 : x1 + 1] = (0, 255, 64)
        return rgb
    picture = image[0] if image.ndim == 3 else image
    low, high = float(picture.min()), float(picture.max())
    picture = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
    gray = (picture * 255).astype(np.uint8)
    if mask is None:
        return gray
    return np.hstack([gray, (mask > 0).astype(np.uint8) * 255])


def _one_thread() -> None:
    """Worker initialiser: one torch thread per process, or processes fight over cores."""
    torch.set_num_threads(1)


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
            existing = json.loads(path.read_text())
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
        record = {"index": index, **_jsonable(sample.get("meta", {}))}
        _atomic_write(
            path.with_suffix(".json"), lambda file: file.write(json.dumps(record)), mode="w"
        )

    def render(self, workers: int = 0, progress: bool = True) -> None:
        """Render every missing sample (in ``workers`` processes when > 0)."""
        if self.make_sample is None:
            msg = "this cache was opened without make_sample, so it cannot render"
            raise RuntimeError(msg)
        _atomic_write(
            self.root / "manifest.json", lambda f: f.write(json.dumps(self.manifest, indent=1)), "w"
        )
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
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_one_thread)
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
        with np.load(self.sample_path(index)) as arrays:
            sample: dict[str, Any] = {key: torch.from_numpy(arrays[key]) for key in arrays.files}
        sample["meta"] = json.loads(self.sample_path(index).with_suffix(".json").read_text())
        return sample


class CachedDataset(Dataset[dict[str, Any]]):
    """Reads the samples of a rendered :class:`SampleCache`.

    Args:
        cache: A rendered cache.
        keys: Array keys to return (those a sample lacks are skipped), plus ``meta``.
        transform: Applied to every sample dict (e.g. to turn stored uint8 images into
            floats).
    """

    def __init__(
        self,
        cache: SampleCache,
        keys: tuple[str, ...] = ("image", "mask"),
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        missing = cache.missing()
        if missing:
            msg = (
                f"cache {cache.root} lacks {len(missing)} of {cache.length} samples; "
                "render it first"
            )
            raise ValueError(msg)
        self.cache, self.keys, self.transform = cache, keys, transform

    def __len__(self) -> int:
        return self.cache.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.cache.load(index)
        sample = {key: sample[key] for key in (*self.keys, "meta") if key in sample}
        return self.transform(sample) if self.transform is not None else sample
