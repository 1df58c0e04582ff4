"""A DataModule that trains on synthetic data, real data, a mix of both, or both in phases."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from lightning_synth.data.augmentation import Transforms, build_augmentation
from lightning_synth.data.collate import collate_samples
from lightning_synth.data.samplers import MixingSampler
from lightning_synth.data.sources import (
    DatasetLike,
    Pool,
    PooledDataset,
    SourceKind,
    check_fraction,
    nested_subset,
    resolve_dataset,
    stable_seed,
)

Strategy: TypeAlias = Literal["real_only", "synthetic_only", "mixed", "bridged"]
Mixing: TypeAlias = Literal["concat", "ratio"]
Pools: TypeAlias = DatasetLike | Mapping[str, DatasetLike]

STRATEGIES: tuple[str, ...] = ("real_only", "synthetic_only", "mixed", "bridged")
MIXINGS: tuple[str, ...] = ("concat", "ratio")
#: Phase names with a fixed meaning: all pools of a kind, or both kinds mixed.
KIND_PHASES: tuple[str, ...] = ("synthetic", "real", "mixed")


class SynthRealDataModule(LightningDataModule):
    """Serves synthetic and real training data by a strategy, with named evaluation sets.

    **Pools.** ``synthetic`` and ``real`` are each one dataset, or a mapping of pool names
    to datasets (e.g. ``{"random": ..., "realistic": ...}``); a dataset may be given as a
    zero-argument factory, called in :meth:`setup`. Samples must be dicts (the sample
    contract); each training sample gains ``source`` (``"synthetic"``/``"real"``) and ``pool``.

    **Fractions.** ``real_fraction`` and ``synthetic_fraction`` keep a seeded subset of every
    pool of that kind (half up, at least one sample). Subsets are nested: for one ``seed`` the
    10% subset lies inside the 25% one, so fraction sweeps compare like with like.

    **Strategies and phases.** The train loader serves the current *phase*. A phase is a pool
    name, ``"synthetic"`` or ``"real"`` (all pools of that kind), or ``"mixed"`` (both kinds,
    combined by ``mixing``). ``real_only``, ``synthetic_only`` and ``mixed`` have one phase of
    that name; ``bridged`` has ``phases`` (default ``("synthetic", "real")``), e.g.
    ``("random", "realistic", "real")`` for a curriculum, which a callback such as
    :class:`~lightning_synth.callbacks.BridgedTransfer` steps through with :meth:`set_phase`.

    **Mixing.** ``"concat"``: one shuffled pass over the union per epoch. ``"ratio"``: every
    batch holds ``synthetic_ratio * batch_size`` synthetic samples (exactly when that is an
    integer, else its floor or ceiling by cumulative rounding, so the running share stays
    within half a sample); an epoch lasts until both kinds have been drawn completely once,
    the smaller kind cycling. Within a pass nothing is drawn twice.
    See :class:`~lightning_synth.data.MixingSampler` for the exact epoch length.

    **Distributed.** The train sampler shards each epoch across ranks itself (Lightning
    leaves it in place): disjoint batches, the same number on every rank, reshuffled by the
    epoch number. Evaluation loaders are left to Lightning's distributed sampler.

    Args:
        synthetic: Synthetic dataset, or mapping of pool name to dataset.
        real: Real dataset, or mapping of pool name to dataset.
        val: Validation dataset, or mapping of set name to dataset (e.g. ``{"id": ...,
            "ood": ...}``); with a mapping, ``val_dataloader`` returns a dict in that order.
        test: Test dataset or mapping, as ``val``.
        strategy: ``"real_only"``, ``"synthetic_only"``, ``"mixed"`` or ``"bridged"``; None
            chooses by what is given: ``"bridged"`` with ``phases``, else ``"mixed"`` with
            both kinds, else the one kind's ``*_only``.
        phases: Phase names for ``strategy="bridged"``; only valid with it.
        mixing: ``"concat"`` or ``"ratio"`` (for the ``"mixed"`` phase).
        synthetic_ratio: Share of synthetic samples per batch with ``mixing="ratio"``, in [0, 1].
        real_fraction: Share of every real pool kept, in (0, 1].
        synthetic_fraction: Share of every synthetic pool kept, in (0, 1].
        batch_size: Training batch size per rank.
        eval_batch_size: Evaluation batch size; defaults to ``batch_size``.
        num_workers: DataLoader workers.
        collate_fn: Collate function; defaults to :func:`~lightning_synth.data.collate_samples`,
            which also handles detection targets.
        pin_memory: Pin host memory; ``None`` pins when CUDA is available.
        persistent_workers: Keep workers between epochs; ``None`` does when ``num_workers > 0``.
        batches_per_epoch: Fixed number of training batches per rank and epoch (e.g. for
            generators of unbounded length); ``None`` derives it from the pools.
        drop_last: Round the epoch down to whole batches on every rank instead of up.
        train_transforms: Per-sample augmentation of every training sample (in the loader's
            workers): a list of albumentations transforms by name, e.g. ``["D4"]`` or
            ``[{"HorizontalFlip": {"p": 0.5}}]`` (see :class:`~lightning_synth.data.Augmentation`),
            or any callable on sample dicts. None: the DataModule's default
            (:attr:`default_train_transforms`; none here); ``[]``: none.
        eval_transforms: The same for validation and test samples (default: none).
        seed: Seed of the subsets and of every shuffle.

    Example:
        >>> import torch
        >>> def samples(n, value):
        ...     return [{"image": torch.full((1, 2, 2), value)} for _ in range(n)]
        >>> dm = SynthRealDataModule(samples(30, 0.0), samples(50, 1.0), real_fraction=0.2,
        ...                          synthetic_ratio=0.5, batch_size=4)
        >>> dm.setup("fit")
        >>> batch = next(iter(dm.train_dataloader()))
        >>> batch["source"]
        ['synthetic', 'synthetic', 'real', 'real']
    """

    #: The training augmentation that ``train_transforms=None`` means (subclasses set it).
    default_train_transforms: ClassVar[Transforms | None] = None

    def __init__(
        self,
        synthetic: Pools | None = None,
        real: Pools | None = None,
        *,
        val: Pools | None = None,
        test: Pools | None = None,
        strategy: Strategy | None = None,
        phases: Sequence[str] | None = None,
        mixing: Mixing = "ratio",
        synthetic_ratio: float = 0.5,
        real_fraction: float = 1.0,
        synthetic_fraction: float = 1.0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        batches_per_epoch: int | None = None,
        drop_last: bool = False,
        train_transforms: Transforms | None = None,
        eval_transforms: Transforms | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=["synthetic", "real", "val", "test", "collate_fn", "kwargs"]
        )
        if strategy is None:
            strategy = _default_strategy(synthetic, real, phases)
        if strategy not in STRATEGIES:
            msg = f"strategy must be one of {STRATEGIES}, got {strategy!r}"
            raise ValueError(msg)
        if mixing not in MIXINGS:
            msg = f"mixing must be one of {MIXINGS}, got {mixing!r}"
            raise ValueError(msg)
        if isinstance(synthetic_ratio, bool) or not 0.0 <= synthetic_ratio <= 1.0:
            msg = f"synthetic_ratio must be in [0, 1], got {synthetic_ratio!r}"
            raise ValueError(msg)
        self.real_fraction = check_fraction("real_fraction", real_fraction)
        self.synthetic_fraction = check_fraction("synthetic_fraction", synthetic_fraction)
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                msg = f"{name} must be a positive integer, got {value!r}"
                raise ValueError(msg)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            msg = f"num_workers must be an integer >= 0, got {num_workers!r}"
            raise ValueError(msg)
        if batches_per_epoch is not None and (
            isinstance(batches_per_epoch, bool)
            or not isinstance(batches_per_epoch, int)
            or batches_per_epoch < 1
        ):
            msg = f"batches_per_epoch must be an integer >= 1 or None, got {batches_per_epoch!r}"
            raise ValueError(msg)
        if isinstance(seed, bool) or not isinstance(seed, int):
            msg = f"seed must be an integer, got {seed!r}"
            raise ValueError(msg)
        self.train_transform = build_augmentation(
            self.default_train_transforms if train_transforms is None else train_transforms,
            "train_transforms",
        )
        self.eval_transform = build_augmentation(eval_transforms, "eval_transforms")

        self.strategy = strategy
        self.mixing = mixing
        self.synthetic_ratio = float(synthetic_ratio)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.collate_fn = collate_fn or collate_samples
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else persistent_workers
        )
        self.batches_per_epoch = batches_per_epoch
        self.drop_last = drop_last
        self.seed = seed

        self._pool_sources: dict[str, tuple[SourceKind, DatasetLike]] = {}
        self._add_pools("synthetic", synthetic)
        self._add_pools("real", real)
        self._eval_sources = {"val": _named(val, "val"), "test": _named(test, "test")}
        self._phases = self._resolve_phases(strategy, phases)
        self._phase = self._phases[0]

        # Built in setup(), one per split; None until then.
        self.pools: dict[str, Pool] | None = None
        self.val_datasets: dict[str, Dataset[Any]] | None = None
        self.test_datasets: dict[str, Dataset[Any]] | None = None

    # ------------------------------------------------------------------ arguments
    def _add_pools(self, kind: SourceKind, value: Pools | None) -> None:
        for name, dataset in _named(value, kind).items():
            if name in self._pool_sources:
                msg = f"pool name {name!r} is used twice (by {kind} and by the other kind)"
                raise ValueError(msg)
            if name == "mixed" or (name in KIND_PHASES and name != kind):
                msg = f"{kind} pool may not be named {name!r}: that name is a phase of its own"
                raise ValueError(msg)
            if hasattr(dataset, "__len__") and len(dataset) == 0:
                msg = f"{kind} pool {name!r} is empty (len 0)"
                raise ValueError(msg)
            self._pool_sources[name] = (kind, dataset)

    def _kind_pools(self, kind: SourceKind) -> list[str]:
        return [name for name, (k, _) in self._pool_sources.items() if k == kind]

    def _resolve_phases(self, strategy: str, phases: Sequence[str] | None) -> tuple[str, ...]:
        if strategy != "bridged":
            if phases is not None:
                msg = f"phases is only used with strategy='bridged', got strategy={strategy!r}"
                raise ValueError(msg)
            phases = {"real_only": ("real",), "synthetic_only": ("synthetic",)}.get(
                strategy, ("mixed",)
            )
        elif phases is None:
            phases = ("synthetic", "real")
        if isinstance(phases, str):
            msg = f"phases must be a sequence of phase names, got the string {phases!r}"
            raise ValueError(msg)
        phases = tuple(phases)
        if strategy == "bridged" and len(phases) < 2:
            msg = f"strategy='bridged' needs at least two phases, got phases={list(phases)}"
            raise ValueError(msg)
        if len(set(phases)) != len(phases):
            msg = f"phases must be distinct, got {list(phases)}"
            raise ValueError(msg)
        for phase in phases:
            self._phase_pool_names(phase)  # raises on an unknown phase or a missing pool
        return phases

    def _phase_pool_names(self, phase: str) -> tuple[list[str], list[str]]:
        """Synthetic and real pool names that phase ``phase`` draws from."""
        synthetic, real = self._kind_pools("synthetic"), self._kind_pools("real")
        if phase in self._pool_sources:
            kind = self._pool_sources[phase][0]
            return ([phase], []) if kind == "synthetic" else ([], [phase])
        wanted = {"synthetic": (True, False), "real": (False, True), "mixed": (True, True)}
        if phase not in wanted:
            known = sorted([*KIND_PHASES, *self._pool_sources])
            msg = f"unknown phase {phase!r}; a phase is one of {known}"
            raise ValueError(msg)
        need_synthetic, need_real = wanted[phase]
        for needed, names, kind in (
            (need_synthetic, synthetic, "synthetic"),
            (need_real, real, "real"),
        ):
            if needed and not names:
                msg = (
                    f"phase {phase!r} (strategy={self.strategy!r}) needs {kind} data, "
                    f"but {kind}=None"
                )
                raise ValueError(msg)
        return (synthetic if need_synthetic else []), (real if need_real else [])

    # ------------------------------------------------------------------ phases
    @property
    def phases(self) -> tuple[str, ...]:
        """The ordered phase names of the strategy."""
        return self._phases

    @property
    def phase(self) -> str:
        """The phase the train loader serves."""
        return self._phase

    def set_phase(self, name: str) -> None:
        """Serve phase ``name`` from the next :meth:`train_dataloader` call on.

        Raises:
            ValueError: If ``name`` is not one of :attr:`phases`.
        """
        if name not in self._phases:
            msg = f"unknown phase {name!r}; this DataModule's phases are {list(self._phases)}"
            raise ValueError(msg)
        self._phase = name

    def state_dict(self) -> dict[str, Any]:
        """The current phase, saved in checkpoints."""
        return {"phase": self._phase}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the phase saved by :meth:`state_dict`."""
        if "phase" in state_dict:
            self.set_phase(state_dict["phase"])

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stage: str | None = None) -> None:
        """Build the pools (fractions applied) and the evaluation sets the stage needs."""
        if stage in (None, "fit") and self.pools is None:
            self.pools = {}
            for name, (kind, source) in self._pool_sources.items():
                dataset: Any = resolve_dataset(f"{kind} pool {name!r}", source)
                fraction = self.synthetic_fraction if kind == "synthetic" else self.real_fraction
                indices = nested_subset(
                    len(dataset), fraction, stable_seed(self.seed, "subset", name)
                )
                self.pools[name] = Pool(name, kind, dataset, indices)
        if stage in (None, "fit", "validate") and self.val_datasets is None:
            self.val_datasets = _resolve_all("val", self._eval_sources["val"])
        if stage in (None, "test") and self.test_datasets is None:
            self.test_datasets = _resolve_all("test", self._eval_sources["test"])

    def _distributed(self) -> tuple[int, int]:
        trainer = self.trainer
        kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
        if kwargs:
            return int(kwargs["num_replicas"]), int(kwargs["rank"])
        return 1, 0

    def phase_dataset(self, phase: str | None = None) -> tuple[PooledDataset, MixingSampler]:
        """The dataset and sampler of a phase (default: the current one), for this rank."""
        if self.pools is None:
            msg = "call setup('fit') before asking for training data"
            raise RuntimeError(msg)
        phase = self._phase if phase is None else phase
        if phase not in self._phases:
            msg = f"unknown phase {phase!r}; this DataModule's phases are {list(self._phases)}"
            raise ValueError(msg)
        synthetic, real = self._phase_pool_names(phase)
        pools = [self.pools[name] for name in (*synthetic, *real)]
        dataset = PooledDataset(
            pools,
            batch_provenance=_collates_provenance(self.collate_fn),
            transform=self.train_transform,
        )
        world, rank = self._distributed()
        ratio_mixing = bool(synthetic) and bool(real) and self.mixing == "ratio"
        sizes = (
            [sum(len(self.pools[n]) for n in synthetic), sum(len(self.pools[n]) for n in real)]
            if ratio_mixing
            else [len(dataset)]
        )
        sampler = MixingSampler(
            sizes,
            self.batch_size,
            ratio=self.synthetic_ratio if ratio_mixing else None,
            seed=stable_seed(self.seed, "phase", phase),
            num_replicas=world,
            rank=rank,
            batches_per_epoch=self.batches_per_epoch,
            drop_last=self.drop_last,
        )
        return dataset, sampler

    def describe_phase(self, phase: str | None = None) -> str:
        """One line saying which pools, and how many samples of each, a phase draws from."""
        if self.pools is None:
            msg = "call setup('fit') before describing a phase"
            raise RuntimeError(msg)
        phase = self._phase if phase is None else phase
        synthetic, real = self._phase_pool_names(phase)
        parts = [f"{self.pools[n].kind} {n!r} ({len(self.pools[n])})" for n in (*synthetic, *real)]
        how = ""
        if synthetic and real:
            how = (
                f", ratio {self.synthetic_ratio:g} synthetic per batch"
                if self.mixing == "ratio"
                else ", concatenated"
            )
        return f"phase {phase!r}: " + " + ".join(parts) + how

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader[Any]:
        """Loader of the current phase only; rebuilt whenever Lightning asks again."""
        dataset, sampler = self.phase_dataset()
        return DataLoader(dataset, sampler=sampler, **self._loader_kwargs(self.batch_size))

    def val_dataloader(self) -> DataLoader[Any] | dict[str, DataLoader[Any]] | list[Any]:
        """Validation loader, a dict of them by set name, or ``[]`` when there is none."""
        if self.val_datasets is None:
            self.setup("validate")
        return self._eval_loaders(self.val_datasets, self._eval_sources["val"])

    def test_dataloader(self) -> DataLoader[Any] | dict[str, DataLoader[Any]] | list[Any]:
        """Test loader, a dict of them by set name, or ``[]`` when there is none."""
        if self.test_datasets is None:
            self.setup("test")
        return self._eval_loaders(self.test_datasets, self._eval_sources["test"])

    def _eval_loaders(
        self, datasets: dict[str, Dataset[Any]] | None, sources: dict[str, DatasetLike]
    ) -> DataLoader[Any] | dict[str, DataLoader[Any]] | list[Any]:
        if not datasets:
            return []
        transform = self.eval_transform
        loaders = {
            name: DataLoader(
                dataset if transform is None else TransformedDataset(dataset, transform),
                shuffle=False,
                **self._loader_kwargs(self.eval_batch_size),
            )
            for name, dataset in datasets.items()
        }
        if list(sources) == [UNNAMED_SET]:
            return loaders[UNNAMED_SET]
        return loaders

    def _loader_kwargs(self, batch_size: int) -> dict[str, Any]:
        return {
            "batch_size": batch_size,
            "num_workers": self.num_workers,
            "collate_fn": self.collate_fn,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
        }


#: Key of an evaluation set given as one dataset (not a mapping); its loader is returned bare.
UNNAMED_SET = "_single"


def _collates_provenance(collate_fn: Callable[..., Any]) -> bool:
    """Whether ``collate_fn`` is :func:`collate_samples` (or a partial of it)."""
    while isinstance(collate_fn, functools.partial):
        collate_fn = collate_fn.func
    return collate_fn is collate_samples


def _named(value: Pools | None, default: str) -> dict[str, DatasetLike]:
    """Turn a dataset, a mapping of them, or None into a name -> dataset dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        for name in value:
            if not isinstance(name, str) or not name:
                msg = f"{default} names must be non-empty strings, got {name!r}"
                raise ValueError(msg)
        return dict(value)
    return {UNNAMED_SET if default in ("val", "test") else default: value}


def _default_strategy(
    synthetic: Pools | None, real: Pools | None, phases: Sequence[str] | None
) -> Strategy:
    """The strategy that ``strategy=None`` means for what was given."""
    if phases is not None:
        return "bridged"
    if synthetic is not None and real is not None:
        return "mixed"
    return "real_only" if real is not None else "synthetic_only"


class TransformedDataset(Dataset[dict[str, Any]]):
    """A dataset whose samples pass through ``transform``."""

    def __init__(self, dataset: Dataset[Any], transform: Callable[[Any], Any]) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.transform(self.dataset[index])


def _resolve_all(split: str, sources: dict[str, DatasetLike]) -> dict[str, Dataset[Any]]:
    return {
        name: resolve_dataset(split if name == UNNAMED_SET else f"{split}[{name!r}]", source)
        for name, source in sources.items()
    }
