"""Pools of samples with provenance, and nested, seeded subsets of them.

A *pool* is one named dataset of one *kind* (``"synthetic"`` or ``"real"``). Every sample
drawn through :class:`PooledDataset` carries its provenance under the keys ``source`` (the
kind) and ``pool`` (the name), so a batch can be counted and logged by source.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
from torch.utils.data import Dataset

from lightning_synth.generators.base import stable_seed

__all__ = [
    "SOURCE_KINDS",
    "DatasetLike",
    "Pool",
    "PooledDataset",
    "SampleList",
    "SourceKind",
    "check_count",
    "check_fraction",
    "count_sources",
    "nested_subset",
    "resolve_dataset",
    "stable_seed",
    "subset_size",
]

SourceKind: TypeAlias = Literal["synthetic", "real"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("synthetic", "real")

#: A dataset, or a zero-argument callable that builds one (called in ``setup``).
DatasetLike: TypeAlias = Dataset[Any] | Callable[[], Dataset[Any]]


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` if it lies in (0, 1]; raise ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 < value <= 1.0:
        msg = f"{name} must be in (0, 1], got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


def subset_size(length: int, fraction: float) -> int:
    """Number of samples kept when taking ``fraction`` of ``length`` (half up, at least one).

    Example:
        >>> subset_size(160, 0.1), subset_size(10, 0.25), subset_size(3, 0.01)
        (16, 3, 1)
    """
    return min(length, max(1, math.floor(length * fraction + 0.5)))


def nested_subset(length: int, fraction: float, seed: int) -> list[int]:
    """Seeded subset of ``range(length)`` holding ``fraction`` of it, nested across fractions.

    The subset is a prefix of one seeded permutation, so for the same ``seed`` the 10% subset
    lies inside the 25% subset, which lies inside the 50% one: a sweep over fractions compares
    like with like. Indices are returned sorted.

    Args:
        length: Size of the full dataset.
        fraction: Share to keep, in (0, 1].
        seed: Seed of the permutation.

    Returns:
        Sorted list of kept indices.

    Example:
        >>> small, large = nested_subset(100, 0.1, seed=7), nested_subset(100, 0.25, seed=7)
        >>> len(small), len(large), set(small) <= set(large)
        (10, 25, True)
    """
    check_fraction("fraction", fraction)
    if length <= 0:
        msg = f"length must be positive, got {length}"
        raise ValueError(msg)
    if fraction == 1.0:
        return list(range(length))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(length, generator=generator)
    return sorted(order[: subset_size(length, fraction)].tolist())


@dataclass(frozen=True)
class Pool:
    """One named dataset of one kind, restricted to a subset of its indices.

    Args:
        name: Name of the pool, unique within a DataModule (e.g. ``"random"``, ``"real"``).
        kind: ``"synthetic"`` or ``"real"``.
        dataset: Map-style dataset whose items are dicts (the sample contract).
        indices: Indices of ``dataset`` that belong to the pool.
    """

    name: str
    kind: SourceKind
    dataset: Dataset[Any]
    indices: Sequence[int]

    def __len__(self) -> int:
        return len(self.indices)


class PooledDataset(Dataset[dict[str, Any]]):
    """Pools laid end to end, with provenance added to every sample.

    Index ``i`` addresses the pools in order: the first ``len(pools[0])`` indices belong to
    the first pool, and so on. Each sample is a shallow copy of the pool's sample with
    ``source`` (the pool's kind) and ``pool`` (its name) added.

    Args:
        pools: The pools, in the order their indices are laid out.
        batch_provenance: Let :meth:`__getitems__` return a :class:`SampleList` whose
            provenance :func:`~lightning_synth.data.collate_samples` adds to the batch, instead
            of a tagged copy of every sample; only for that collate function.
        transform: Applied to every sample before provenance is added (augmentation).

    Raises:
        ValueError: If ``pools`` is empty or one of them holds no samples.
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        batch_provenance: bool = False,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        if not pools:
            msg = "pools must hold at least one pool, got none"
            raise ValueError(msg)
        for pool in pools:
            if len(pool) == 0:
                msg = f"pool {pool.name!r} ({pool.kind}) is empty"
                raise ValueError(msg)
        self.pools = list(pools)
        self._ends: list[int] = []
        self._starts: list[int] = []
        total = 0
        for pool in self.pools:
            self._starts.append(total)
            total += len(pool)
            self._ends.append(total)
        self.batch_provenance = batch_provenance
        self.transform = transform
        # Whether every pool is its whole dataset in order (no subset): no index table lookups.
        self._identity = all(
            list(pool.indices) == list(range(len(pool.indices)))
            and len(pool.indices) == len(pool.dataset)  # type: ignore[arg-type]
            for pool in self.pools
        )
        # Per pool, what the batch loop needs, looked up once.
        self._entries = [
            (pool.dataset.__getitem__, pool.indices, start, pool.kind, pool.name)
            for pool, start in zip(self.pools, self._starts, strict=True)
        ]

    def __len__(self) -> int:
        return self._ends[-1]

    def pool_of(self, index: int) -> tuple[Pool, int]:
        """Return the pool that holds global ``index`` and the position inside that pool."""
        if not 0 <= index < len(self):
            msg = f"index must be in [0, {len(self)}), got {index}"
            raise IndexError(msg)
        position = bisect.bisect_right(self._ends, index)
        return self.pools[position], index - self._starts[position]

    def _local(self, index: int) -> tuple[Pool, int]:
        pool, local = self.pool_of(index)
        return pool, pool.indices[local]

    def __getitem__(self, index: int) -> dict[str, Any]:
        pool, local = self._local(index)
        sample = pool.dataset[local]
        if self.transform is not None:
            sample = self.transform(_checked_sample(sample, pool, local))
        return _with_provenance(sample, pool, local)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Fetch a whole batch; the DataLoader calls this instead of ``__getitem__``.

        With ``batch_provenance=True`` and plain dict samples, the samples come back as they
        are in a :class:`SampleList` that holds their provenance beside them, for
        :func:`~lightning_synth.data.collate_samples` to add to the batch; otherwise each
        sample is a copy with ``source`` and ``pool`` added.
        """
        # This is the mixing layer's whole cost per sample (benchmarks/bench_mixing.py):
        # copying every sample dict to tag it cost 5% of a plain loader's time on 3x64x64
        # images, so provenance travels beside the samples instead.
        size = self._ends[-1]
        if indices and (min(indices) < 0 or max(indices) >= size):
            bad = next(i for i in indices if not 0 <= i < size)
            msg = f"index must be in [0, {size}), got {bad}"
            raise IndexError(msg)
        samples, sources, names = self._gather(indices)
        if self.transform is not None:
            transform = self.transform
            samples = [
                transform(_checked_sample(sample, *self._local(index)))
                for index, sample in zip(indices, samples, strict=True)
            ]
        first = samples[0] if samples else {}
        # Collation enforces one key set per batch, so one sample's keys stand for all.
        if self.batch_provenance and set(map(type, samples)) == {dict} and "source" not in first:
            return SampleList(samples, sources=sources, pools=names)
        return [
            _with_provenance(sample, *self._local(index))
            for index, sample in zip(indices, samples, strict=True)
        ]

    def _gather(self, indices: Sequence[int]) -> tuple[list[Any], list[str], list[str]]:
        """The raw samples at global ``indices``, with their sources and pool names."""
        entries = self._entries
        if len(entries) <= 2:
            # One or two pools (the common case): flat comprehensions, no per-sample lookup.
            fetch0, table0, _, kind0, name0 = entries[0]
            fetch1, table1, start1, kind1, name1 = entries[-1]
            end0 = self._ends[0]
            if self._identity:  # whole pools: a pool's index is the dataset's
                samples = [fetch0(i) if i < end0 else fetch1(i - start1) for i in indices]
            else:
                samples = [
                    fetch0(table0[i]) if i < end0 else fetch1(table1[i - start1]) for i in indices
                ]
            sources: list[str] = [kind0 if i < end0 else kind1 for i in indices]
            if (name0, name1) == (kind0, kind1):  # pools named after their kinds: share the list
                return samples, sources, sources
            names = [name0 if i < end0 else name1 for i in indices]
            return samples, sources, names
        samples, sources, names = [], [], []
        for index in indices:
            fetch, table, start, kind, name = entries[bisect.bisect_right(self._ends, index)]
            samples.append(fetch(table[index - start]))
            sources.append(kind)
            names.append(name)
        return samples, sources, names


class SampleList(list):
    """Samples of one batch, with the provenance of each in ``sources`` and ``pools``."""

    __slots__ = ("pools", "sources")

    def __init__(self, samples: list[Any], sources: list[str], pools: list[str]) -> None:
        super().__init__(samples)
        self.sources = sources
        self.pools = pools


def _checked_sample(sample: Any, pool: Pool, local: int) -> Mapping[str, Any]:
    """``sample`` if it is a dict of the sample contract; a TypeError naming the pool if not."""
    if not isinstance(sample, Mapping):
        msg = (
            f"pool {pool.name!r} returned a {type(sample).__name__}, but samples must be dicts "
            "such as {'image': ..., 'mask': ...} or "
            "{'image': ..., 'boxes': ..., 'labels': ...}; "
            "wrap the dataset so that __getitem__ returns a dict"
        )
        raise TypeError(msg)
    return sample


def _with_provenance(sample: Any, pool: Pool, local: int) -> dict[str, Any]:
    """A shallow copy of ``sample`` with ``source`` and ``pool`` added, after checks."""
    sample = _checked_sample(sample, pool, local)
    previous = sample.get("source")
    if previous is not None and previous != pool.kind:
        msg = (
            f"pool {pool.name!r} is {pool.kind!r} but its sample {local} "
            f"already says source={previous!r}"
        )
        raise ValueError(msg)
    return {**sample, "source": pool.kind, "pool": pool.name}


def resolve_dataset(name: str, value: DatasetLike) -> Dataset[Any]:
    """Build ``value`` if it is a factory and check that the result is a sized, non-empty dataset.

    Args:
        name: Name used in error messages (e.g. ``"synthetic['random']"``).
        value: A dataset or a zero-argument callable returning one.

    Returns:
        The dataset.
    """
    dataset: Any = value if hasattr(value, "__getitem__") else value()
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        msg = f"{name} must be a map-style dataset (with __len__ and __getitem__), got {dataset!r}"
        raise TypeError(msg)
    if len(dataset) == 0:
        msg = f"{name} is empty (len 0)"
        raise ValueError(msg)
    return dataset


def count_sources(batch: Mapping[str, Any], key: str = "source") -> dict[str, int]:
    """Count the samples of a collated batch by provenance.

    Example:
        >>> count_sources({"source": ["real", "synthetic", "real"]})
        {'real': 2, 'synthetic': 1}
    """
    counts: dict[str, int] = {}
    for value in batch.get(key, ()):
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
