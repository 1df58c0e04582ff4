"""Simulated HRTEM samples as datasets (on the fly or cached), and their DataModule."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lightning_synth.data.cache import CachedDataset, SampleCache
from lightning_synth.data.datamodule import Mixing, Strategy, SynthRealDataModule
from lightning_synth.data.images import SegmentationFolder
from lightning_synth.data.sources import stable_seed
from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig


class SimulateIndex:
    """Picklable ``index -> sample``: the HRTEM sample of ``(config, seed, index)``.

    The simulator is built lazily, once per process, so the callable can be sent to workers.
    """

    def __init__(self, config: SimulationConfig, seed: int, device: str | None = "cpu") -> None:
        self.config, self.seed, self.device = config, seed, device
        self._simulator: HRTEMSimulator | None = None

    def __call__(self, index: int) -> dict[str, Any]:
        """Simulate sample ``index``."""
        if self._simulator is None:
            self._simulator = HRTEMSimulator(self.config, device=self.device)
        return self._simulator.simulate(stable_seed(self.seed, "hrtem", str(index)))

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "seed": self.seed, "device": self.device, "_simulator": None}


class SimulatedHRTEMDataset(Dataset[dict[str, Any]]):
    """HRTEM samples generated on the fly; sample ``i`` depends only on ``(config, seed, i)``.

    Args:
        length: Number of samples.
        config: Simulation settings.
        seed: Seed of the set.
        device: Torch device of the simulation; keep ``"cpu"`` inside DataLoader workers (use
            ``num_workers=0`` to simulate on a GPU).
    """

    def __init__(
        self, length: int, config: SimulationConfig, seed: int = 0, device: str | None = "cpu"
    ) -> None:
        if length < 1:
            msg = f"length must be >= 1, got {length}"
            raise ValueError(msg)
        self.length = length
        self.simulate = SimulateIndex(config, seed, device)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            msg = f"index must be in [0, {self.length}), got {index}"
            raise IndexError(msg)
        sample = self.simulate(index)
        return {"image": sample["image"], "mask": sample["mask"], "meta": sample["meta"]}


#: Dose range of the held-out set [e / A^2]: half the study's training range (100-1200).
HELD_OUT_DOSE: tuple[float, float] = (50.0, 600.0)


def held_out_config(
    config: SimulationConfig, dose: tuple[float, float] | None = HELD_OUT_DOSE
) -> SimulationConfig:
    """A shifted domain for testing: wider defocus, larger particles, thicker film, lower dose.

    Different seeds alone test memorisation; the shift tests generalisation to conditions
    the training set did not cover (the study's experimental images differ the same way).
    It is always at full fidelity and at the given ``dose`` (None: noiseless), whatever tier
    and dose the training set uses, because it stands in for recorded images (which have
    every effect and their own noise): models trained on different tiers or doses are then
    compared on the same test images.
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
    )


def _dihedral(
    image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the 8 symmetries of the square per sample (90-degree rotations and flips)."""
    turns = torch.randint(0, 4, (image.shape[0],), generator=generator)
    flips = torch.randint(0, 2, (image.shape[0],), generator=generator)
    images, masks = [], []
    for index in range(image.shape[0]):
        picture, target = image[index], mask[index]
        if flips[index]:
            picture, target = picture.flip(-1), target.flip(-1)
        k = int(turns[index])
        images.append(torch.rot90(picture, k, (-2, -1)))
        masks.append(torch.rot90(target, k, (-2, -1)))
    return torch.stack(images), torch.stack(masks)


def min_max_normalize(image: torch.Tensor) -> torch.Tensor:
    """Scale every image of a (N, C, H, W) batch to [0, 1] on its own (as the study did)."""
    flat = image.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return (image - low) / (high - low).clamp_min(1e-12)


class HRTEMDataModule(SynthRealDataModule):
    """Simulated HRTEM training data, a held-out simulated test domain, optional real data.

    Training samples come from ``simulation``; validation samples from the same settings with
    other seeds (set ``val``); test samples from :func:`held_out_config` (set ``heldout``). With
    ``cache_dir`` every set is rendered to disk once in ``prepare_data`` (resumable); without
    it samples are simulated on the fly. ``strategy="bridged"`` with ``bridge_fidelity`` trains
    first on the ``basic`` tier, then on ``simulation``'s tier; with ``real_images`` the real
    data (a folder or the study's HDF5) is the ``real`` pool for ``mixed`` or ``bridged``.

    On the device, every image is min-max normalised on its own, and training batches get a
    random one of the 8 square symmetries per sample.

    Args:
        simulation: Simulation settings of the training set.
        train_samples: Training samples.
        val_samples: Validation samples (same domain, other seeds).
        test_samples: Held-out test samples (shifted domain, other seeds).
        heldout_dose: Dose range of the held-out samples [e / A^2], None for noiseless ones;
            independent of the training dose (see :func:`held_out_config`).
        cache_dir: Render the sets here first; None simulates on the fly.
        render_workers: Processes that render the cache (on the CPU).
        simulation_device: Device of the simulation in the main process; CUDA when
            available and ``render_workers == 0``, else the CPU.
        bridge_fidelity: With ``strategy="bridged"`` and no real data: pretrain on the
            ``basic`` tier, then fine-tune on ``simulation``'s tier.
        real_images: Folder of real images or an HDF5 file (``images``/``maps`` datasets).
        real_masks: Folder of masks for a folder of images.
        real_pixel_size: Pixel size of the real images [A]; they are resampled to the
            simulation's detector pixel.
        strategy: See :class:`SynthRealDataModule`.
        mixing: See :class:`SynthRealDataModule`.
        synthetic_ratio: See :class:`SynthRealDataModule`.
        real_fraction: See :class:`SynthRealDataModule`.
        synthetic_fraction: See :class:`SynthRealDataModule`.
        batch_size: Training batch size per rank.
        num_workers: DataLoader workers.
        seed: Seed of every set and shuffle.
    """

    def __init__(
        self,
        simulation: SimulationConfig | None = None,
        train_samples: int = 200,
        val_samples: int = 32,
        test_samples: int = 64,
        heldout_dose: tuple[float, float] | None = HELD_OUT_DOSE,
        cache_dir: str | None = None,
        render_workers: int = 0,
        simulation_device: str | None = None,
        bridge_fidelity: bool = False,
        real_images: str | None = None,
        real_masks: str | None = None,
        real_pixel_size: float | None = None,
        strategy: Strategy = "synthetic_only",
        mixing: Mixing = "ratio",
        synthetic_ratio: float = 0.5,
        real_fraction: float = 1.0,
        synthetic_fraction: float = 1.0,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        simulation = simulation or SimulationConfig()
        self.simulation = simulation
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.render_workers = render_workers
        # Worker processes render on the CPU; the main process uses CUDA when there is one.
        self.simulation_device = simulation_device or (
            "cuda" if render_workers == 0 and torch.cuda.is_available() else "cpu"
        )
        sets = {
            "train": (simulation, train_samples),
            "val": (simulation, val_samples),
            "test": (held_out_config(simulation, heldout_dose), test_samples),
        }
        if bridge_fidelity:
            sets["basic"] = (simulation.with_fidelity("basic"), train_samples)
        self._sets = {
            name: (config, length, stable_seed(seed, "set", name))
            for name, (config, length) in sets.items()
        }
        synthetic: Any = self._source("train")
        phases = None
        if bridge_fidelity:
            if real_images:
                msg = "bridge_fidelity and real_images both define the second phase; choose one"
                raise ValueError(msg)
            synthetic = {"basic": self._source("basic"), "full": self._source("train")}
            phases = ["basic", "full"]
        real = None
        if real_images:
            if real_pixel_size is None:
                msg = "real_pixel_size is required with real_images (Angstrom per pixel)"
                raise ValueError(msg)
            real = lambda: SegmentationFolder.from_path(  # noqa: E731
                real_images, real_masks, real_pixel_size, simulation.detector_pixel_size
            )
        super().__init__(
            synthetic,
            real,
            val={"val": self._source("val")},
            test={"heldout": self._source("test")},
            strategy=strategy,
            phases=phases,
            mixing=mixing,
            synthetic_ratio=synthetic_ratio,
            real_fraction=real_fraction,
            synthetic_fraction=synthetic_fraction,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )

    def _cache(self, name: str) -> SampleCache:
        assert self.cache_dir is not None
        config, length, seed = self._sets[name]
        return SampleCache(
            self.cache_dir / name,
            length,
            manifest={"config": dataclasses.asdict(config), "seed": seed},
            make_sample=SimulateIndex(config, seed, device=self.simulation_device),
        )

    def _source(self, name: str) -> Any:
        config, length, seed = self._sets[name]
        if self.cache_dir is None:
            return lambda: SimulatedHRTEMDataset(length, config, seed)
        return lambda: CachedDataset(self._cache(name))

    def prepare_data(self) -> None:
        """Render every cache that is not complete (only with ``cache_dir``)."""
        if self.cache_dir is None:
            return
        for name in self._sets:
            self._cache(name).render(workers=self.render_workers)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise every image; augment training batches with the square's symmetries."""
        if isinstance(batch, dict) and "image" in batch:
            image = min_max_normalize(batch["image"].float())
            trainer = self.trainer
            if trainer is not None and trainer.training and "mask" in batch:
                image, batch["mask"] = _dihedral(image, batch["mask"], None)
            batch["image"] = image
        return batch
