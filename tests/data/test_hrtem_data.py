"""Simulated HRTEM datasets and the HRTEM DataModule, at tiny sizes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_synth.data.generated import GeneratedDataset
from lightning_synth.data.hrtem import HRTEMDataModule, held_out_config, min_max_normalize
from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig

TINY = SimulationConfig(
    detector_pixels=96,
    particle_diameter=(14.0, 16.0),
    carbon_thickness=(6.0, 8.0),
    frozen_phonons=1,
)


def simulated(seed: int) -> GeneratedDataset:
    return GeneratedDataset(HRTEMSimulator(TINY, device="cpu"), 3, seed)


def test_on_the_fly_samples_are_deterministic_per_seed_and_index() -> None:
    data, again = simulated(5), simulated(5)
    assert torch.equal(data[1]["image"], again[1]["image"])
    assert not torch.equal(data[1]["image"], data[2]["image"])
    assert not torch.equal(data[1]["image"], simulated(6)[1]["image"])
    assert sorted(data[1]) == ["image", "mask", "meta"]


def test_held_out_domain_is_shifted_at_full_fidelity_and_its_own_dose() -> None:
    basic = held_out_config(TINY.with_fidelity("basic"))
    assert basic.fidelity == "full" and basic == held_out_config(TINY)
    shifted = held_out_config(TINY)
    assert shifted.defocus[1] > TINY.defocus[1]
    assert shifted.particle_diameter[1] > TINY.particle_diameter[1]
    assert shifted.dose is not None and TINY.dose is not None and shifted.dose[0] < TINY.dose[0]
    # The training dose does not move the test set: a noise ablation tests on the same images.
    assert held_out_config(dataclasses.replace(TINY, dose=None)) == shifted
    assert held_out_config(dataclasses.replace(TINY, dose_distribution="log_uniform")) == shifted
    assert held_out_config(TINY, dose=None).dose is None


def test_a_later_setting_at_its_default_keeps_earlier_caches_valid() -> None:
    from lightning_synth.generators.base import generator_manifest

    default = generator_manifest(HRTEMSimulator(TINY, device="cpu"))["config"]
    assert "dose_distribution" not in default  # as in a manifest written before it existed
    changed = dataclasses.replace(TINY, dose_distribution="log_uniform")
    assert generator_manifest(HRTEMSimulator(changed, device="cpu"))["config"] == {
        **default,
        "dose_distribution": "log_uniform",
    }


def test_datamodule_renders_caches_and_serves_normalised_batches(tmp_path: Path) -> None:
    dm = HRTEMDataModule(
        TINY, train_samples=4, val_samples=2, test_samples=2, cache_dir=str(tmp_path), batch_size=2
    )
    dm.prepare_data()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic", "test-heldout", "val-val"]
    dm.setup("fit")
    assert dm.strategy == "synthetic_only"  # chosen by what is given: no real data
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["image"].shape == (2, 1, 96, 96) and batch["mask"].shape == (2, 96, 96)
    # The percentile normalisation: every image spans [0, 1], the outer 0.5% clipped.
    for image in batch["image"]:
        assert float(image.min()) == 0.0 and float(image.max()) == 1.0
        assert 0.002 < float((image == 1.0).float().mean()) < 0.02
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


def test_training_augmentation_is_d4_and_keeps_image_and_mask_aligned() -> None:
    dm = HRTEMDataModule(TINY, train_samples=1, val_samples=1, test_samples=1)
    assert dm.train_transform is not None and repr(dm.train_transform) == "Augmentation([D4])"
    image = torch.arange(16.0).view(1, 4, 4)
    sample = {"image": image, "mask": image[0].long()}
    seen = set()
    for _ in range(40):
        out = dm.train_transform(sample)
        assert torch.equal(out["image"][0].long(), out["mask"])
        seen.add(tuple(out["image"].flatten().tolist()))
    assert len(seen) == 8  # every symmetry of the square, and nothing else
    assert HRTEMDataModule(TINY, train_transforms=[]).train_transform is None


def test_training_crops_follow_the_symmetries_and_real_tiles_match_them(tmp_path: Path) -> None:
    dm = HRTEMDataModule(TINY, train_samples=1, val_samples=1, test_samples=1, train_crop=64)
    assert repr(dm.train_transform) == "Augmentation([D4, RandomCrop])"
    image = torch.arange(96.0 * 96).view(1, 96, 96)
    out = dm.train_transform({"image": image, "mask": (image[0] % 7 == 0).long()})
    assert out["image"].shape == (1, 64, 64)
    assert torch.equal((out["image"][0] % 7 == 0).long(), out["mask"])
    custom = HRTEMDataModule(TINY, train_crop=32, train_transforms=[{"VerticalFlip": {"p": 1}}])
    assert repr(custom.train_transform) == "Augmentation([VerticalFlip, RandomCrop])"
    images = tmp_path / "real"
    images.mkdir()
    np.save(images / "a.npy", np.random.default_rng(0).random((200, 150)).astype(np.float32))
    real = HRTEMDataModule(TINY, train_crop=64, real_images=str(images), real_pixel_size=0.2)
    _, factory = real._pool_sources["real"]
    tiles = factory()  # the real pool, read now
    assert {tuple(tiles[i]["image"].shape) for i in range(len(tiles))} == {(1, 64, 64)}
    assert len(tiles) == 4 * 3  # 200 x 150 pixels in tiles of 64 that cover it whole


@pytest.mark.parametrize("crop", [0, 48, 128, True])
def test_bad_training_crops_are_refused(crop: object) -> None:
    with pytest.raises(ValueError, match=r"train_crop must be None or a multiple of 32 .* \(96\)"):
        HRTEMDataModule(TINY, train_crop=crop)  # type: ignore[arg-type]


def test_normalisation_is_chosen_and_checked() -> None:
    batch = {"image": torch.rand(2, 1, 64, 64)}
    batch["image"][0, 0, 0, 0] = 100.0
    robust = HRTEMDataModule(TINY).on_after_batch_transfer(dict(batch), 0)["image"]
    study = HRTEMDataModule(TINY, normalization="min_max").on_after_batch_transfer(dict(batch), 0)
    assert float(robust[0].median()) > 0.3 > float(study["image"][0].median())
    with pytest.raises(ValueError, match="normalization must be one of"):
        HRTEMDataModule(TINY, normalization="zscore")  # type: ignore[arg-type]


def test_coarsen_integrates_coarser_pixels_and_keeps_the_geometry() -> None:
    from lightning_synth.data.images import coarsen

    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2
    images = torch.stack([checker, checker]).float()[:, None]
    out = coarsen(images, [1.0, 2.0])
    assert torch.equal(out[0], images[0])  # a factor of 1 leaves it as it is
    assert torch.allclose(out[1], torch.full_like(out[1], 0.5))  # 2x2 boxes of a checkerboard
    square = torch.zeros(1, 1, 64, 64)
    square[..., 20:40, 20:40] = 1.0
    coarse = coarsen(square, [1.6])[0, 0]
    assert coarse.sum() == pytest.approx(400.0, rel=0.02)  # counts stay where they were
    assert torch.allclose(coarse, coarse.flip(0).flip(1).roll((-4, -4), (0, 1)), atol=0.1)
    noise = torch.poisson(torch.full((1, 1, 96, 96), 20.0))
    assert coarsen(noise, [1.25]).std() < 0.6 * noise.std()
    with pytest.raises(ValueError, match="factors must be finite and >= 1"):
        coarsen(images, [1.0, 0.5])
    with pytest.raises(ValueError, match="one value per image"):
        coarsen(images, [1.0])


def test_coarser_pixels_apply_to_training_batches_only() -> None:
    from types import SimpleNamespace

    module = HRTEMDataModule(TINY, coarser_pixels=(2.0, 2.0), coarser_share=1.0)
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float()
    batch = {"image": torch.stack([checker, checker])[:, None] * 10.0 + 5.0}
    module.trainer = SimpleNamespace(training=False)  # type: ignore[assignment]
    assert module.on_after_batch_transfer(dict(batch), 0)["image"].std() > 0.4
    module.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    assert module.on_after_batch_transfer(dict(batch), 0)["image"].std() < 1e-3
    for bad in ((0.5, 1.0), (2.0, 1.5), (1.0, float("nan"))):
        with pytest.raises(ValueError, match="coarser_pixels must be None or"):
            HRTEMDataModule(TINY, coarser_pixels=bad)
    with pytest.raises(ValueError, match="coarser_share must be in"):
        HRTEMDataModule(TINY, coarser_pixels=(1.0, 2.0), coarser_share=1.5)


def test_fields_are_coarsened_and_normalised_whole_before_the_crop() -> None:
    from types import SimpleNamespace

    module = HRTEMDataModule(
        TINY,
        train_crop=32,
        coarser_pixels=(2.0, 2.0),
        coarser_share=1.0,
        normalize_fields=True,
        train_transforms=[],
    )
    assert repr(module.train_transform) == (
        "Augmentation([CoarserPixels, NormalizeIntensity, RandomCrop])"
    )
    assert module.hparams["train_transforms"] == [{"RandomCrop": {"height": 32, "width": 32}}]
    # A field whose left half is ten times brighter: a crop of the dim half keeps the dim
    # values the whole field's normalisation gives it, instead of being stretched to 0-1.
    field = torch.full((1, 96, 96), 10.0)
    field[..., :48] = 100.0
    field += torch.rand(field.shape)
    dims = []
    for _ in range(20):
        crop = module.train_transform({"image": field, "mask": torch.zeros(96, 96).long()})
        assert crop["image"].shape == (1, 32, 32)
        assert float(crop["image"].min()) >= 0.0 and float(crop["image"].max()) <= 1.0
        dims.append(float(crop["image"].max()))
    assert min(dims) < 0.2  # a crop from the dim half, normalised with the bright one
    # The checkerboard of the coarsening test comes out flat: coarsened before the crop.
    checker = ((torch.arange(96)[:, None] + torch.arange(96)[None, :]) % 2).float()[None]
    flat = module.train_transform({"image": checker * 10.0 + 5.0, "mask": checker[0].long()})
    assert float(flat["image"].std()) < 0.05
    # Training batches arrive normalised; validation batches are still normalised here.
    batch = {"image": torch.rand(2, 1, 32, 32) * 50.0}
    module.trainer = SimpleNamespace(training=True)  # type: ignore[assignment]
    assert torch.equal(module.on_after_batch_transfer(dict(batch), 0)["image"], batch["image"])
    module.trainer = SimpleNamespace(training=False)  # type: ignore[assignment]
    assert float(module.on_after_batch_transfer(dict(batch), 0)["image"].max()) <= 1.0
    with pytest.raises(ValueError, match="bounds must be"):
        from lightning_synth.data.field_transforms import CoarserPixels

        CoarserPixels((0.5, 1.0))
