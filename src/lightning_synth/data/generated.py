"""One dataset and one DataModule base for any sample generator.

:class:`GeneratedDataset` serves the samples of a generator (a callable ``(seed, index) ->
sample``, see :class:`~lightning_synth.generators.base.SampleGenerator`), on the fly or from
a disk cache. :class:`GeneratedDataModule` is a
:class:`~lightning_synth.data.SynthRealDataModule` that renders the caches of its generated
sets in ``prepare_data`` and serves them as pools and evaluation sets; the HRTEM, pallet and
toy DataModules, and a user's own renderer, are thin uses of it.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lightning_synth.data.cache import SampleCache
from lightning_synth.data.datamodule import Pools, SynthRealDataModule
from lightning_synth.generators.base import generator_manifest

#: Array keys of the sample contract that a generated set serves by default.
CONTRACT_KEYS: tuple[str, ...] = ("image", "mask", "boxes", "labels", "visible_fraction")


class GeneratedDataset(Dataset[dict[str, Any]]):
    """The samples of a generator: sample ``i`` is ``generator(seed, i)``.

    Generated on the fly, or, with ``cache_dir``, read from a disk cache rendered once by
    :meth:`render` (resumable, atomic per sample, optionally in several processes). Either
    way sample ``i`` depends only on ``(generator, seed, i)``, so it is the same in any
    DataLoader worker and on any rank.

    Args:
        generator: A callable ``(seed, index) -> sample dict``; picklable, so that workers
            and render processes can run it.
        length: Number of samples.
        seed: Seed of the set.
        keys: Array keys to serve (plus ``meta``); None serves those of
            :data:`CONTRACT_KEYS` that the samples have. A cache stores every array anyway.
        quantize: Store and serve images as 8-bit values (``round(255 x) / 255``), as a camera
            records them; images must then lie in [0, 1]. Cached and on-the-fly samples are
            identical either way.
        cache_dir: Folder of the disk cache; None generates every sample on the fly.
        previews: PNG previews written for this many first samples of a cache.

    Example:
        >>> from lightning_synth.generators.toy import ToyDisksGenerator
        >>> data = GeneratedDataset(ToyDisksGenerator(size=16), length=4, seed=1)
        >>> sample = data[2]
        >>> sorted(sample), tuple(sample["image"].shape)
        (['image', 'mask', 'meta'], (1, 16, 16))
        >>> bool(torch.equal(sample["image"], data[2]["image"]))
        True
    """

    def __init__(
        self,
        generator: Any,
        length: int,
        seed: int = 0,
        *,
        keys: Sequence[str] | None = None,
        quantize: bool = False,
        cache_dir: str | Path | None = None,
        previews: int = 16,
    ) -> None:
        if not callable(generator):
            msg = f"generator must be a callable (seed, index) -> sample, got {generator!r}"
            raise TypeError(msg)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            msg = f"length must be an integer >= 1, got {length!r}"
            raise ValueError(msg)
        if isinstance(seed, bool) or not isinstance(seed, int):
            msg = f"seed must be an integer, got {seed!r}"
            raise TypeError(msg)
        if isinstance(keys, str):
            msg = f"keys must be a sequence of sample keys, got the string {keys!r}"
            raise ValueError(msg)
        self.generator = generator
        self.length = length
        self.seed = seed
        self.keys = tuple(keys) if keys is not None else None
        self.quantize = bool(quantize)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.previews = previews
        self._cache: SampleCache | None = None

    def __repr__(self) -> str:
        where = f", cache_dir={str(self.cache_dir)!r}" if self.cache_dir else ""
        name = generator_manifest(self.generator)["generator"].rsplit(".", 1)[-1]
        return f"{type(self).__name__}({name}, length={self.length}, seed={self.seed}{where})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    # ------------------------------------------------------------------ cache
    def cached(self, cache_dir: str | Path) -> GeneratedDataset:
        """A copy of this set that reads (and renders into) ``cache_dir``."""
        clone = copy.copy(self)
        clone.cache_dir, clone._cache = Path(cache_dir), None
        return clone

    @property
    def cache(self) -> SampleCache | None:
        """The disk cache (None for an on-the-fly set); opening it checks its manifest."""
        if self.cache_dir is None:
            return None
        if self._cache is None:
            manifest = {
                **generator_manifest(self.generator),
                "seed": self.seed,
                "quantize": self.quantize,
            }
            self._cache = SampleCache(
                self.cache_dir,
                self.length,
                manifest=manifest,
                make_sample=self.stored_sample,
                previews=self.previews,
            )
        return self._cache

    def missing(self) -> list[int]:
        """Indices not in the cache yet (none for an on-the-fly set)."""
        cache = self.cache
        return [] if cache is None else cache.missing()

    def render(self, workers: int = 0, progress: bool = True) -> None:
        """Render every missing sample into the cache (nothing to do on the fly).

        Args:
            workers: Processes that render (0: this process).
            progress: Show a progress bar.
        """
        cache = self.cache
        if cache is not None:
            cache.render(workers=workers, progress=progress)

    # ------------------------------------------------------------------ samples
    def stored_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as the cache stores it (quantised images as uint8)."""
        sample = self.generator(self.seed, index)
        if not isinstance(sample, Mapping) or not isinstance(sample.get("image"), torch.Tensor):
            msg = (
                f"{generator_manifest(self.generator)['generator']} returned "
                f"{type(sample).__name__} for (seed={self.seed}, index={index}); a generator "
                "must return a dict with an 'image' tensor (the sample contract)"
            )
            raise TypeError(msg)
        sample = dict(sample)
        if self.quantize:
            image = sample["image"]
            if image.dtype != torch.uint8:
                low, high = float(image.min()), float(image.max())
                if low < 0.0 or high > 1.0:
                    msg = (
                        f"quantize=True needs images in [0, 1], but sample {index} spans "
                        f"[{low:.4g}, {high:.4g}]"
                    )
                    raise ValueError(msg)
                sample["image"] = (image * 255).round().to(torch.uint8)
        return sample

    def _served(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        keys = self.keys if self.keys is not None else CONTRACT_KEYS
        served = {key: sample[key] for key in (*keys, "meta") if key in sample}
        if self.quantize and served["image"].dtype == torch.uint8:
            served["image"] = served["image"].to(torch.float32) / 255
        return served

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            index = operator.index(index)
        except TypeError:
            msg = f"index must be an integer, got {index!r}"
            raise TypeError(msg) from None
        if not 0 <= index < self.length:
            msg = f"index must be in [0, {self.length}), got {index}"
            raise IndexError(msg)
        cache = self.cache
        sample = cache.load(index) if cache is not None else self.stored_sample(index)
        return self._served(sample)


class GeneratedDataModule(SynthRealDataModule):
    """A :class:`~lightning_synth.data.SynthRealDataModule` whose sets may be generated.

    Pools and evaluation sets are given as for SynthRealDataModule; every
    :class:`GeneratedDataset` among them is, with ``cache_dir``, rendered once into
    ``cache_dir/<split>-<name>`` (``cache_dir/<split>`` for an unnamed one) by
    :meth:`prepare_data` (resumable, in ``render_workers`` processes) and read from there;
    without ``cache_dir`` it is generated on the fly, in the loaders' workers. Other
    datasets (the user's real data, a COCO folder of another renderer's output) are served as
    they are.

    Args:
        synthetic: Synthetic pool(s): datasets, factories or GeneratedDatasets.
        real: Real pool(s), likewise.
        val: Validation set(s), likewise.
        test: Test set(s), likewise.
        cache_dir: Render the generated sets here first; None generates them on the fly.
        render_workers: Processes that render the caches (0: the main process).
        **kwargs: Every other argument of SynthRealDataModule (``strategy``, ``phases``,
            fractions, batch sizes, loader options, transforms, ``seed``).

    Example:
        >>> from lightning_synth.generators.toy import ToyDisksGenerator
        >>> dm = GeneratedDataModule(
        ...     synthetic=GeneratedDataset(ToyDisksGenerator(16, "clean"), 8, seed=1),
        ...     real=GeneratedDataset(ToyDisksGenerator(16, "recorded"), 8, seed=2),
        ...     strategy="bridged", batch_size=4)
        >>> dm.phases
        ('synthetic', 'real')
    """

    def __init__(
        self,
        synthetic: Pools | None = None,
        real: Pools | None = None,
        *,
        val: Pools | None = None,
        test: Pools | None = None,
        cache_dir: str | None = None,
        render_workers: int = 0,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(render_workers, bool)
            or not isinstance(render_workers, int)
            or render_workers < 0
        ):
            msg = f"render_workers must be an integer >= 0, got {render_workers!r}"
            raise ValueError(msg)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.render_workers = render_workers
        #: The generated sets by cache folder name, in the order they are rendered.
        self.generated: dict[str, GeneratedDataset] = {}
        super().__init__(
            self._with_caches("synthetic", synthetic),
            self._with_caches("real", real),
            val=self._with_caches("val", val),
            test=self._with_caches("test", test),
            **kwargs,
        )

    def _with_caches(self, split: str, value: Pools | None) -> Pools | None:
        """``value`` with each GeneratedDataset given its cache folder (and recorded)."""
        if value is None:
            return None
        named = value if isinstance(value, Mapping) else {None: value}
        out: dict[Any, Any] = {}
        for name, dataset in named.items():
            if isinstance(dataset, GeneratedDataset):
                folder = split if name is None else f"{split}-{name}"
                if self.cache_dir is not None:
                    dataset = dataset.cached(self.cache_dir / folder)
                self.generated[folder] = dataset
            out[name] = dataset
        return out if isinstance(value, Mapping) else out[None]

    def prepare_data(self) -> None:
        """Render every cache that is not complete (only with ``cache_dir``)."""
        for dataset in self.generated.values():
            dataset.render(workers=self.render_workers)

    def setup(self, stage: str | None = None) -> None:
        """Check that every cache is complete, then build the splits."""
        for folder, dataset in self.generated.items():
            missing = dataset.missing()
            if missing:
                msg = (
                    f"cache {dataset.cache_dir} ({folder}) lacks {len(missing)} of "
                    f"{dataset.length} samples; call prepare_data() first (Lightning does in fit)"
                )
                raise RuntimeError(msg)
        super().setup(stage)
