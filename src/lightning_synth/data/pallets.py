"""Pallet detection data: rendered sets (on the fly or cached), stand-ins, COCO, a DataModule.

Rendered images are quantised to 8 bits, whether generated on the fly or read from a cache,
so the two give identical samples (a recorded image has 8 bits too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lightning_synth.data.cache import CachedDataset, SampleCache
from lightning_synth.data.coco import CocoDetection
from lightning_synth.data.collate import LIST_KEYS, collate_samples
from lightning_synth.data.datamodule import Mixing, Strategy, SynthRealDataModule
from lightning_synth.data.sources import stable_seed
from lightning_synth.generators.warehouse import (
    DOMAIN_SEEDS,
    REALISM_LEVELS,
    PalletSceneGenerator,
    Realism,
    SceneConfig,
    realism_config,
    standin_config,
)

#: The keys of a detection sample (plus ``meta``).
DETECTION_KEYS = ("image", "boxes", "labels", "visible_fraction")


class RenderPallets:
    """Picklable ``index -> sample``: the rendered sample of ``(config, seed, index)``.

    The image comes back as uint8 (3, H, W); the generator is built lazily, once per process.
    """

    def __init__(self, config: SceneConfig, seed: int) -> None:
        self.config, self.seed = config, int(seed)
        self._generator: PalletSceneGenerator | None = None

    def __call__(self, index: int) -> dict[str, Any]:
        """Render sample ``index``."""
        if self._generator is None:
            self._generator = PalletSceneGenerator(self.config, self.seed)
        sample = self._generator(index)
        sample["image"] = (sample["image"] * 255).round().to(torch.uint8)
        return sample

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "seed": self.seed, "_generator": None}


def _to_float(sample: dict[str, Any]) -> dict[str, Any]:
    sample["image"] = sample["image"].to(torch.float32) / 255
    return sample


class RenderedPallets(Dataset[dict[str, Any]]):
    """Pallet detection samples rendered on the fly; sample ``i`` depends on ``(config, seed, i)``.

    Args:
        length: Number of samples.
        config: Scene settings.
        seed: Seed of the set.
    """

    def __init__(self, length: int, config: SceneConfig, seed: int = 0) -> None:
        if length < 1:
            msg = f"length must be >= 1, got {length}"
            raise ValueError(msg)
        self.length = length
        self.render = RenderPallets(config, seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            msg = f"index must be in [0, {self.length}), got {index}"
            raise IndexError(msg)
        sample = self.render(index)
        return _to_float({key: sample[key] for key in (*DETECTION_KEYS, "meta")})


def horizontal_flip(images: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
    """Flip images (C, H, W) and their xyxy boxes left to right, in place of the lists."""
    for index, (image, boxes) in enumerate(zip(images, targets, strict=True)):
        width = image.shape[-1]
        images[index] = image.flip(-1)
        flipped = boxes.clone()
        flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
        targets[index] = flipped


class PalletDataModule(SynthRealDataModule):
    """Rendered pallets (one pool per realism level), real images, ID and OOD evaluation sets.

    **Synthetic pools.** One per level in ``realism`` (``"realistic"``, ``"half_realistic"``,
    ``"random"``), ``synthetic_samples`` each, rendered from ``seed``; ``synthetic_scene``
    overrides any :class:`~lightning_synth.generators.warehouse.SceneConfig` knob of every
    level (e.g. for a sweep), ``scene`` any knob of every rendered set, stand-ins included
    (e.g. ``min_box_side``, so that all sets are annotated alike).

    **Real data.** A COCO set (``real_annotations``, ``real_images``), or, until a user has
    one, ``real_samples`` images of the stand-in ``id`` domain (see
    :mod:`lightning_synth.generators.warehouse.standins`; rendered, not recorded: the
    stand-ins say how a model transfers between rendered domains, not to a camera).

    **Evaluation.** ``val`` and ``test`` sets named ``id`` and ``ood``: the stand-in domains
    (fixed seeds, other seeds for test than for validation), or the user's COCO sets given as
    ``eval_annotations`` (name -> JSON) and ``eval_images`` (name -> folder), used for both
    validation and test.

    Batches keep images as a list (torchvision's detectors take images of any size);
    training batches are flipped left to right at random (``flip``).

    Args:
        realism: Realism level(s) of the synthetic pools.
        synthetic_samples: Samples per synthetic pool.
        real_samples: Stand-in real training samples (without ``real_annotations``).
        val_samples: Samples per stand-in validation set.
        test_samples: Samples per stand-in test set.
        width: Image width of rendered sets [pixels].
        height: Image height of rendered sets [pixels].
        scene: SceneConfig fields to override in every rendered set (synthetic and stand-in).
        synthetic_scene: SceneConfig fields to override in the synthetic levels only.
        real_annotations: COCO JSON of the user's real training images.
        real_images: Their folder (default: the JSON's folder).
        eval_annotations: Named COCO JSON files for validation and test.
        eval_images: Their folders, by the same names.
        categories: COCO category names that are pallets (label 1 and up).
        cache_dir: Render every rendered set here first (resumable); None renders on the fly.
        render_workers: Processes that render the caches.
        strategy: See :class:`SynthRealDataModule`.
        phases: See :class:`SynthRealDataModule`.
        mixing: See :class:`SynthRealDataModule`.
        synthetic_ratio: See :class:`SynthRealDataModule`.
        real_fraction: See :class:`SynthRealDataModule`.
        synthetic_fraction: See :class:`SynthRealDataModule`.
        batch_size: Training batch size per rank.
        batches_per_epoch: Training batches per epoch, whatever the strategy (equal budgets
            across strategies); None derives it from the pools.
        num_workers: DataLoader workers.
        flip: Random left-right flips of training batches.
        seed: Seed of the synthetic pools, the subsets and the shuffles.
    """

    def __init__(
        self,
        realism: Realism | Sequence[Realism] = "random",
        synthetic_samples: int = 800,
        real_samples: int = 160,
        val_samples: int = 64,
        test_samples: int = 128,
        width: int = 640,
        height: int = 480,
        scene: dict[str, Any] | None = None,
        synthetic_scene: dict[str, Any] | None = None,
        real_annotations: str | None = None,
        real_images: str | None = None,
        eval_annotations: dict[str, str] | None = None,
        eval_images: dict[str, str] | None = None,
        categories: Sequence[str] | None = None,
        cache_dir: str | None = None,
        render_workers: int = 0,
        strategy: Strategy = "mixed",
        phases: Sequence[str] | None = None,
        mixing: Mixing = "ratio",
        synthetic_ratio: float = 0.5,
        real_fraction: float = 1.0,
        synthetic_fraction: float = 1.0,
        batch_size: int = 4,
        batches_per_epoch: int | None = None,
        num_workers: int = 0,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        levels = [realism] if isinstance(realism, str) else list(realism)
        unknown = [level for level in levels if level not in REALISM_LEVELS]
        if not levels or unknown or len(set(levels)) != len(levels):
            msg = f"realism must be distinct levels of {REALISM_LEVELS}, got {realism!r}"
            raise ValueError(msg)
        for name, value in (
            ("synthetic_samples", synthetic_samples),
            ("val_samples", val_samples),
            ("test_samples", test_samples),
            ("real_samples", real_samples),
        ):
            if value < 1:
                msg = f"{name} must be >= 1, got {value}"
                raise ValueError(msg)
        if (eval_images or eval_annotations) and set(eval_images or {}) - set(
            eval_annotations or {}
        ):
            msg = (
                f"eval_images names {sorted(eval_images or {})} must have eval_annotations too "
                f"(got {sorted(eval_annotations or {})})"
            )
            raise ValueError(msg)
        self.levels = levels
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.render_workers = render_workers
        self.flip = flip
        self._rendered: dict[str, tuple[SceneConfig, int, int]] = {}
        size = {"width": width, "height": height, **dict(scene or {})}
        overrides = {**size, **dict(synthetic_scene or {})}
        for level in levels:
            config = realism_config(level, **overrides)
            self._rendered[f"synthetic-{level}"] = (
                config,
                synthetic_samples,
                stable_seed(seed, "synthetic", level),
            )
        synthetic: dict[str, Any] = {
            str(level): self._source(f"synthetic-{level}") for level in levels
        }

        if real_annotations:
            categories_ = list(categories) if categories else None
            real: Any = partial(CocoDetection, real_annotations, real_images, categories_)
        else:
            self._standin("real-id", "id", "train", real_samples, size)
            real = self._source("real-id")
        if eval_annotations:
            names = list(eval_annotations)
            images = eval_images or {}
            cats = list(categories) if categories else None
            sets = {
                name: partial(CocoDetection, eval_annotations[name], images.get(name), cats)
                for name in names
            }
            val, test = dict(sets), dict(sets)
        else:
            val, test = {}, {}
            for domain in ("id", "ood"):
                self._standin(f"val-{domain}", domain, "val", val_samples, size)
                self._standin(f"test-{domain}", domain, "test", test_samples, size)
                val[domain] = self._source(f"val-{domain}")
                test[domain] = self._source(f"test-{domain}")
        super().__init__(
            synthetic,
            real,
            val=val,
            test=test,
            strategy=strategy,
            phases=phases,
            mixing=mixing,
            synthetic_ratio=synthetic_ratio,
            real_fraction=real_fraction,
            synthetic_fraction=synthetic_fraction,
            batch_size=batch_size,
            num_workers=num_workers,
            batches_per_epoch=batches_per_epoch,
            collate_fn=partial(collate_samples, list_keys=LIST_KEYS | {"image"}),
            seed=seed,
        )

    def _standin(self, name: str, domain: str, split: str, length: int, size: dict) -> None:
        config = standin_config(domain, **size)  # type: ignore[arg-type]
        self._rendered[name] = (config, length, stable_seed(DOMAIN_SEEDS[domain], split))

    def _cache(self, name: str) -> SampleCache:
        assert self.cache_dir is not None
        config, length, seed = self._rendered[name]
        return SampleCache(
            self.cache_dir / name,
            length,
            manifest={"config": dataclasses.asdict(config), "seed": seed},
            make_sample=RenderPallets(config, seed),
        )

    def _source(self, name: str) -> Any:
        config, length, seed = self._rendered[name]
        if self.cache_dir is None:
            return partial(RenderedPallets, length, config, seed)
        return partial(_cached, self, name)

    def prepare_data(self) -> None:
        """Render every cache that is not complete (only with ``cache_dir``)."""
        if self.cache_dir is None:
            return
        for name in self._rendered:
            self._cache(name).render(workers=self.render_workers)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Random left-right flips of training batches."""
        trainer = self.trainer
        training = trainer is not None and trainer.training
        if self.flip and training and isinstance(batch, dict) and "boxes" in batch:
            flips = torch.rand(len(batch["image"])) < 0.5
            chosen = [i for i in range(len(flips)) if flips[i]]
            images = [batch["image"][i] for i in chosen]
            boxes = [batch["boxes"][i] for i in chosen]
            horizontal_flip(images, boxes)
            for position, index in enumerate(chosen):
                batch["image"][index] = images[position]
                batch["boxes"][index] = boxes[position]
        return batch


def _cached(datamodule: PalletDataModule, name: str) -> CachedDataset:
    return CachedDataset(datamodule._cache(name), DETECTION_KEYS, transform=_to_float)
