"""Simulated HRTEM datasets and the HRTEM DataModule, at tiny sizes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from lightning_synth.data.hrtem import (
    HRTEMDataModule,
    SimulatedHRTEMDataset,
    held_out_config,
    min_max_normalize,
)
from lightning_synth.generators.hrtem.simulator import SimulationConfig

TINY = SimulationConfig(
    detector_pixels=96,
    particle_diameter=(14.0, 16.0),
    carbon_thickness=(6.0, 8.0),
    frozen_phonons=1,
)


def test_on_the_fly_samples_are_deterministic_per_seed_and_index() -> None:
    data = SimulatedHRTEMDataset(3, TINY, seed=5)
    again = SimulatedHRTEMDataset(3, TINY, seed=5)
    assert torch.equal(data[1]["image"], again[1]["image"])
    assert not torch.equal(data[1]["image"], data[2]["image"])
    assert not torch.equal(data[1]["image"], SimulatedHRTEMDataset(3, TINY, seed=6)[1]["image"])


def test_held_out_domain_is_shifted_at_full_fidelity_and_its_own_dose() -> None:
    basic = held_out_config(TINY.with_fidelity("basic"))
    assert basic.fidelity == "full" and basic == held_out_config(TINY)
    shifted = held_out_config(TINY)
    assert shifted.defocus[1] > TINY.defocus[1]
    assert shifted.particle_diameter[1] > TINY.particle_diameter[1]
    assert shifted.dose is not None and TINY.dose is not None and shifted.dose[0] < TINY.dose[0]
    # The training dose does not move the test set: a noise ablation tests on the same images.
    assert held_out_config(dataclasses.replace(TINY, dose=None)) == shifted
    assert held_out_config(TINY, dose=None).dose is None


def test_datamodule_renders_caches_and_serves_normalised_batches(tmp_path: Path) -> None:
    dm = HRTEMDataModule(
        TINY, train_samples=4, val_samples=2, test_samples=2, cache_dir=str(tmp_path), batch_size=2
    )
    dm.prepare_data()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test", "train", "val"]
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["image"].shape == (2, 1, 96, 96) and batch["mask"].shape == (2, 96, 96)
    assert float(batch["image"].min()) == 0.0 and float(batch["image"].max()) == 1.0
    assert batch["source"] == ["synthetic", "synthetic"]


def test_bridged_fidelity_phases(tmp_path: Path) -> None:
    dm = HRTEMDataModule(
        TINY,
        train_samples=2,
        val_samples=1,
        test_samples=1,
        strategy="bridged",
        bridge_fidelity=True,
        batch_size=2,
    )
    assert dm.phases == ("basic", "full")
    dm.setup("fit")
    assert [batch["pool"] for batch in dm.train_dataloader()] == [["basic", "basic"]]


def test_min_max_normalisation_is_per_image() -> None:
    images = torch.stack([torch.full((1, 2, 2), 3.0), torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])])
    images[0, 0, 0, 0] = 1.0
    normalised = min_max_normalize(images)
    assert normalised[0].min() == 0 and normalised[0].max() == 1
    assert normalised[1, 0, 1, 1] == 1 and normalised[1, 0, 0, 0] == 0


def test_training_augmentation_keeps_image_and_mask_aligned() -> None:
    from lightning_synth.data.hrtem import _dihedral

    image = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    mask = image[:, 0].long()
    augmented, augmented_mask = _dihedral(image, mask, torch.Generator().manual_seed(0))
    assert torch.equal(augmented[:, 0].long(), augmented_mask)
    assert len({tuple(a.flatten().tolist()) for a in augmented}) > 1
