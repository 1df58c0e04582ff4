"""The pallet detection DataModule: rendered pools per realism level, stand-ins, COCO sets.

Rendered images are quantised to 8 bits, whether generated on the fly or read from a cache,
so the two give identical samples (a recorded image has 8 bits too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from lightning_synth.data.augmentation import Transforms
from lightning_synth.data.coco import CocoDetection
from lightning_synth.data.collate import LIST_KEYS, collate_samples
from lightning_synth.data.generated import GeneratedDataModule, GeneratedDataset
from lightning_synth.data.sources import check_count, stable_seed
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


def rendered_pallets(config: SceneConfig, length: int, seed: int) -> GeneratedDataset:
    """A set of rendered pallet samples (8-bit images, the detection keys).

    Example:
        >>> from lightning_synth.generators.warehouse import realism_config
        >>> data = rendered_pallets(realism_config("random", width=64, height=48), 2, seed=0)
        >>> sorted(data[0]), data[0]["image"].dtype
        (['boxes', 'image', 'labels', 'meta', 'visible_fraction'], torch.float32)
    """
    generator = PalletSceneGenerator(config)
    return GeneratedDataset(generator, length, seed, keys=DETECTION_KEYS, quantize=True)


def standin_set(domain: str, split: str, length: int, **scene: Any) -> GeneratedDataset:
    """Stand-in domain ``domain``'s ``split`` set (``"train"``, ``"val"``, ``"test"``).

    Its seed is fixed by the domain and split alone, whatever the DataModule's seed.
    """
    config = standin_config(domain, **scene)  # type: ignore[arg-type]
    return rendered_pallets(config, length, stable_seed(DOMAIN_SEEDS[domain], split))


class PalletDataModule(GeneratedDataModule):
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

    Batches keep images as a list (torchvision's detectors take images of any size).
    Training samples are flipped left to right at random (albumentations' bbox-aware
    ``HorizontalFlip``; ``train_transforms`` replaces it, e.g. with photometric transforms).

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
        test_annotations: Named COCO JSON files tested on as well, never validated on (e.g.
            ``{independent: benchmarks/data/pallet_independent/coco.json}``, a set that
            another renderer made): their figures cannot steer checkpoint selection.
        test_images: Their folders, by the same names.
        categories: COCO category names that are pallets (label 1 and up).
        **kwargs: The arguments of :class:`GeneratedDataModule` and
            :class:`~lightning_synth.data.SynthRealDataModule` (``cache_dir``,
            ``render_workers``, ``strategy``, ``phases``, ``real_fraction``, ``batch_size``,
            ``batches_per_epoch``, ``seed`` ...).
    """

    default_train_transforms: ClassVar[Transforms | None] = [{"HorizontalFlip": {"p": 0.5}}]

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
        test_annotations: dict[str, str] | None = None,
        test_images: dict[str, str] | None = None,
        categories: Sequence[str] | None = None,
        **kwargs: Any,
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
            ("width", width),
            ("height", height),
        ):
            check_count(name, value)
        for name, fields in (("scene", scene), ("synthetic_scene", synthetic_scene)):
            if fields is not None and not isinstance(fields, Mapping):
                msg = f"{name} must be a mapping of SceneConfig fields, got {fields!r}"
                raise TypeError(msg)
        for kind, folders, files in (
            ("eval", eval_images, eval_annotations),
            ("test", test_images, test_annotations),
        ):
            if set(folders or {}) - set(files or {}):
                msg = (
                    f"{kind}_images names {sorted(folders or {})} must have {kind}_annotations "
                    f"too (got {sorted(files or {})})"
                )
                raise ValueError(msg)
        # The user's files are checked before anything renders.
        for name, path in (
            ("real_annotations", real_annotations),
            *((f"eval_annotations[{k!r}]", v) for k, v in (eval_annotations or {}).items()),
            *((f"test_annotations[{k!r}]", v) for k, v in (test_annotations or {}).items()),
        ):
            if path is not None and not Path(path).is_file():
                msg = f"{name}: COCO annotation file {path} does not exist"
                raise FileNotFoundError(msg)
        for name, path in (
            ("real_images", real_images),
            *((f"eval_images[{k!r}]", v) for k, v in (eval_images or {}).items()),
            *((f"test_images[{k!r}]", v) for k, v in (test_images or {}).items()),
        ):
            if path is not None and not Path(path).is_dir():
                msg = f"{name}: image folder {path} does not exist"
                raise FileNotFoundError(msg)
        if real_images and not real_annotations:
            msg = "real_images needs real_annotations (the COCO JSON of those images)"
            raise ValueError(msg)
        self.levels = levels
        seed = kwargs.get("seed", 0)
        size = {"width": width, "height": height, **dict(scene or {})}
        overrides = {**size, **dict(synthetic_scene or {})}
        synthetic = {
            str(level): rendered_pallets(
                realism_config(level, **overrides),
                synthetic_samples,
                stable_seed(seed, "synthetic", level),
            )
            for level in levels
        }
        cats = list(categories) if categories else None
        real: Any
        if real_annotations:
            real = partial(CocoDetection, real_annotations, real_images, cats)
        else:
            real = standin_set("id", "train", real_samples, **size)
        if eval_annotations:
            images = eval_images or {}
            sets: dict[str, Any] = {
                name: partial(CocoDetection, path, images.get(name), cats)
                for name, path in eval_annotations.items()
            }
            val, test = dict(sets), dict(sets)
        else:
            val = {d: standin_set(d, "val", val_samples, **size) for d in ("id", "ood")}
            test = {d: standin_set(d, "test", test_samples, **size) for d in ("id", "ood")}
        clashes = sorted(set(test_annotations or {}) & set(test))
        if clashes:
            msg = f"test_annotations names {clashes} are the names of sets tested already"
            raise ValueError(msg)
        test_images = test_images or {}
        for name, path in (test_annotations or {}).items():
            test[name] = partial(CocoDetection, path, test_images.get(name), cats)
        super().__init__(
            synthetic,
            real,
            val=val,
            test=test,
            collate_fn=partial(collate_samples, list_keys=LIST_KEYS | {"image"}),
            **kwargs,
        )
