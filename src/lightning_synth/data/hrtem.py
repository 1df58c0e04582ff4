"""The HRTEM DataModule: simulated sets (on the fly or cached), a held-out domain, real data."""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, ClassVar

import torch

from lightning_synth.data.augmentation import Transforms, build_augmentation
from lightning_synth.data.generated import GeneratedDataModule, GeneratedDataset
from lightning_synth.data.images import (
    NORMALIZATIONS,
    Normalization,
    SegmentationFolder,
    check_pixel_size,
    coarsen,
    normalize_intensity,
)
from lightning_synth.data.sources import check_count, stable_seed
from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig

#: Dose range of the held-out set [e / A^2]: half the study's training range (100-1200).
HELD_OUT_DOSE: tuple[float, float] = (50.0, 600.0)


def held_out_config(
    config: SimulationConfig, dose: tuple[float, float] | None = HELD_OUT_DOSE
) -> SimulationConfig:
    """A shifted domain for testing: wider defocus, larger particles, thicker film, lower dose.

    Different seeds alone test memorisation; the shift tests generalisation to conditions
    the training set did not cover (the study's experimental images differ the same way).
    It is always at full fidelity and at the given ``dose`` (None: noiseless; drawn
    uniformly), whatever tier and doses the training set uses, because it stands in for
    recorded images (which have every effect and their own noise): models trained on
    different tiers or doses are then compared on the same test images.
    """
    config = config.with_fidelity("full")
    low, high = config.particle_diameter
    largest = min(high * 1.25, config.extent * 0.9)
    return dataclasses.replace(
        config,
        defocus=(config.defocus[0] * 1.5, config.defocus[1] * 1.5),
        particle_diameter=(min(low * 1.1, largest), largest),
        carbon_thickness=(config.carbon_thickness[0], config.carbon_thickness[1] * 1.25),
        dose=dose,
        dose_distribution="uniform",
    )


def field_transforms(
    normalization: Normalization, coarser_pixels: tuple[float, float] | None, share: float
) -> list[Any]:
    """Transforms that coarsen a share of the fields, then normalise each one whole.

    For :class:`HRTEMDataModule`'s ``normalize_fields``: they run in the loader's workers on
    whole fields, before the random crop.
    """
    from lightning_synth.data.field_transforms import CoarserPixels, NormalizeIntensity

    steps: list[Any] = []
    if coarser_pixels is not None:
        steps.append(CoarserPixels(coarser_pixels, p=share))
    return [*steps, NormalizeIntensity(normalization)]


def min_max_normalize(image: torch.Tensor) -> torch.Tensor:
    """Scale every image of a (N, C, H, W) batch to [0, 1] on its own (as the study did)."""
    return normalize_intensity(image, "min_max")


class HRTEMDataModule(GeneratedDataModule):
    """Simulated HRTEM training data, a held-out simulated test domain, optional real data.

    Training samples come from ``simulation`` (pool ``synthetic``); validation samples from
    the same settings with other seeds (set ``val``); test samples from
    :func:`held_out_config` (set ``heldout``). With ``cache_dir`` every set is rendered to
    disk once in ``prepare_data`` (resumable); without it samples are simulated on the fly.
    ``bridge_fidelity`` trains first on the ``basic`` tier, then on ``simulation``'s tier
    (``strategy="bridged"``); with ``real_images`` the real data (a folder or the study's
    HDF5, cut into tiles of the simulated images' size) is the ``real`` pool for
    ``"mixed"`` or ``"bridged"``.

    Training samples get one of the 8 symmetries of the square (albumentations' ``D4``;
    ``train_transforms`` replaces it), then, with ``train_crop``, a random square crop: the
    simulated fields can then be larger than the training samples, so that the largest
    particles fit in a field with their surroundings, crops cut particles at their edges, and
    each rendered field serves a different crop every epoch. Validation and test images are
    whole fields. On the device, with ``coarser_pixels``, a share of the training images is
    seen as if recorded with coarser pixels and resampled to the simulation's pixel size, as
    :func:`lightning_synth.predict.segment` resamples a user's coarser image; then every
    image of every split is normalised on its own (``normalization``; the same rule
    ``segment`` applies).

    Args:
        simulation: Simulation settings of the training set.
        train_samples: Training samples.
        val_samples: Validation samples (same domain, other seeds).
        test_samples: Held-out test samples (shifted domain, other seeds).
        heldout_dose: Dose range of the held-out samples [e / A^2], None for noiseless ones;
            independent of the training dose (see :func:`held_out_config`).
        simulation_device: Device that renders the cache in the main process; CUDA when
            available and ``render_workers == 0``, else the CPU. Samples simulated on the
            fly (no ``cache_dir``) are simulated on the CPU, in the loaders' workers.
        bridge_fidelity: Pretrain on the ``basic`` tier, then fine-tune on ``simulation``'s
            tier (needs ``strategy="bridged"`` or None, and no real data).
        real_images: Folder of real images or an HDF5 file (``images``/``maps`` datasets).
        real_masks: Folder of masks for a folder of images (same file stems).
        real_pixel_size: Pixel size of the real images [A]; they are resampled to the
            simulation's detector pixel.
        real_tile: Side of the tiles the resampled real images are cut into [pixels]; None
            takes the training samples' side (``train_crop``, else the simulated images'), so
            real and simulated samples batch together.
        train_crop: Side of the random square crop of every training sample [pixels]; a
            multiple of 32 up to ``simulation.detector_pixels``. None trains on whole fields.
        normalization: How each image is scaled to [0, 1] (see
            :func:`~lightning_synth.data.images.normalize_intensity`): ``"percentile"``
            (0.5% and 99.5% quantiles, clipped), ``"robust"`` (median -/+ 4 standard
            deviations from the interquartile range, clipped: hot pixels and bright edges
            saturate; for cameras that have them) or ``"min_max"`` (the study's rule).
        coarser_pixels: Range of the factor by which a training image's pixels are made
            coarser (drawn per image, uniformly; see
            :func:`~lightning_synth.data.images.coarsen`), e.g. ``(1.0, 1.6)`` for users'
            images up to 1.6 times the simulation's pixel size. None: never.
        coarser_share: Share of the training images made coarser (with ``coarser_pixels``).
        normalize_fields: Coarsen and normalise each training field whole in the loader's
            workers, before ``train_crop`` cuts it: a crop's normalisation then sees the
            field's surroundings (51.2 A by default), as each 256-pixel window of
            :func:`~lightning_synth.predict.segment` does, instead of the crop alone.
        **kwargs: The arguments of :class:`GeneratedDataModule` and
            :class:`~lightning_synth.data.SynthRealDataModule` (``cache_dir``,
            ``render_workers``, ``strategy``, ``batch_size``, ``seed`` ...).
    """

    default_train_transforms: ClassVar[Transforms | None] = ["D4"]

    def __init__(
        self,
        simulation: SimulationConfig | None = None,
        train_samples: int = 200,
        val_samples: int = 32,
        test_samples: int = 64,
        heldout_dose: tuple[float, float] | None = HELD_OUT_DOSE,
        simulation_device: str | None = None,
        bridge_fidelity: bool = False,
        real_images: str | None = None,
        real_masks: str | None = None,
        real_pixel_size: float | None = None,
        real_tile: int | None = None,
        train_crop: int | None = None,
        normalization: Normalization = "percentile",
        coarser_pixels: tuple[float, float] | None = None,
        coarser_share: float = 0.5,
        normalize_fields: bool = False,
        **kwargs: Any,
    ) -> None:
        simulation = simulation or SimulationConfig()
        if not isinstance(simulation, SimulationConfig):
            msg = f"simulation must be a SimulationConfig, got {simulation!r}"
            raise TypeError(msg)
        if normalization not in NORMALIZATIONS:
            msg = f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            raise ValueError(msg)
        if train_crop is not None and (
            isinstance(train_crop, bool)
            or not isinstance(train_crop, int)
            or train_crop < 32
            or train_crop % 32
            or train_crop > simulation.detector_pixels
        ):
            msg = (
                "train_crop must be None or a multiple of 32 between 32 and "
                f"simulation.detector_pixels ({simulation.detector_pixels}), got {train_crop!r}"
            )
            raise ValueError(msg)
        if coarser_pixels is not None and (
            len(coarser_pixels) != 2
            or not all(math.isfinite(v) for v in coarser_pixels)
            or not 1.0 <= coarser_pixels[0] <= coarser_pixels[1]
        ):
            msg = (
                "coarser_pixels must be None or (low, high) with 1 <= low <= high, "
                f"got {coarser_pixels!r}"
            )
            raise ValueError(msg)
        if not 0.0 <= coarser_share <= 1.0:
            msg = f"coarser_share must be in [0, 1], got {coarser_share!r}"
            raise ValueError(msg)
        self.normalization = normalization
        self.coarser_pixels: tuple[float, float] | None = None
        if coarser_pixels is not None:
            self.coarser_pixels = (float(coarser_pixels[0]), float(coarser_pixels[1]))
        self.coarser_share = coarser_share
        self.normalize_fields = normalize_fields
        if train_crop is not None or normalize_fields:
            transforms = kwargs.get("train_transforms")
            if transforms is None:
                transforms = self.default_train_transforms
            if callable(transforms):
                msg = (
                    "train_crop and normalize_fields need train_transforms as a list of "
                    "transforms, not a callable"
                )
                raise ValueError(msg)
            crop = [{"RandomCrop": {"height": train_crop, "width": train_crop}}]
            kwargs["train_transforms"] = [*(transforms or []), *(crop if train_crop else [])]
            # The fields' own transforms go in before the crop once the base class has saved
            # the (plain, YAML-able) hyperparameters.
            fields_then_crop = [
                *(transforms or []),
                *field_transforms(normalization, self.coarser_pixels, coarser_share),
                *(crop if train_crop else []),
            ]
        for name, value in (
            ("train_samples", train_samples),
            ("val_samples", val_samples),
            ("test_samples", test_samples),
        ):
            check_count(name, value)
        self.simulation = simulation
        # Check the real data before anything renders: a wrong path fails now, not after
        # the caches.
        real = None
        if real_images:
            if bridge_fidelity:
                msg = "bridge_fidelity and real_images both define the second phase; choose one"
                raise ValueError(msg)
            real = real_segmentation_source(
                real_images,
                real_masks,
                real_pixel_size,
                simulation.detector_pixel_size,
                real_tile if real_tile is not None else train_crop or simulation.detector_pixels,
            )
        elif real_masks or real_pixel_size is not None or real_tile is not None:
            msg = "real_masks, real_pixel_size and real_tile need real_images"
            raise ValueError(msg)
        seed = kwargs.get("seed", 0)
        workers = kwargs.get("render_workers", 0)
        # Render processes simulate on the CPU; the main process uses CUDA when there is one.
        self.simulation_device = simulation_device or (
            "cuda"
            if kwargs.get("cache_dir") and workers == 0 and torch.cuda.is_available()
            else "cpu"
        )

        def simulated(config: SimulationConfig, length: int, name: str) -> GeneratedDataset:
            simulator = HRTEMSimulator(config, device=self.simulation_device)
            return GeneratedDataset(simulator, length, stable_seed(seed, "set", name))

        synthetic: Any = simulated(simulation, train_samples, "train")
        if bridge_fidelity:
            if kwargs.get("strategy") not in (None, "bridged"):
                msg = (
                    "bridge_fidelity=True trains in the phases basic -> full, so it needs "
                    f"strategy='bridged' (or None), got strategy={kwargs['strategy']!r}"
                )
                raise ValueError(msg)
            if kwargs.get("phases") is not None:
                msg = (
                    "bridge_fidelity=True sets the phases; leave phases unset, "
                    f"got {kwargs['phases']!r}"
                )
                raise ValueError(msg)
            basic = simulated(simulation.with_fidelity("basic"), train_samples, "basic")
            synthetic = {"basic": basic, "full": synthetic}
            kwargs.update(strategy="bridged", phases=["basic", "full"])
        super().__init__(
            synthetic,
            real,
            val={"val": simulated(simulation, val_samples, "val")},
            test={
                "heldout": simulated(
                    held_out_config(simulation, heldout_dose), test_samples, "test"
                )
            },
            **kwargs,
        )
        if normalize_fields:
            self.train_transform = build_augmentation(fields_then_crop, "train_transforms")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Coarsen a share of the training images, then normalise every image on its own.

        With ``normalize_fields`` the training images arrive coarsened and normalised.
        """
        if isinstance(batch, dict) and "image" in batch:
            trainer = self.trainer
            training = trainer is not None and trainer.training
            if training and self.normalize_fields:
                return batch
            if self.coarser_pixels is not None and training:
                low, high = self.coarser_pixels
                count = len(batch["image"])
                chosen = torch.rand(count) < self.coarser_share
                drawn = low + (high - low) * torch.rand(count)
                factors = torch.where(chosen, drawn, torch.ones(count))
                batch["image"] = coarsen(batch["image"], factors.tolist())
            batch["image"] = normalize_intensity(batch["image"], self.normalization)
        return batch


def real_segmentation_source(
    images: str,
    masks: str | None,
    pixel_size: float | None,
    target_pixel_size: float,
    tile: int | None,
) -> functools.partial[SegmentationFolder]:
    """A factory of the real pool, after checking every argument (nothing is read yet)."""
    if pixel_size is None:
        msg = "real_pixel_size is required with real_images (Angstrom per pixel)"
        raise ValueError(msg)
    check_pixel_size("real_pixel_size", pixel_size)
    for name, value in (("real_images", images), ("real_masks", masks)):
        if value is not None and not Path(value).exists():
            msg = f"{name} not found: {value}"
            raise FileNotFoundError(msg)
    return functools.partial(
        SegmentationFolder.from_path, images, masks, pixel_size, target_pixel_size, tile
    )
