"""The simulator: determinism, masks on the particle, what each fidelity tier changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig

SMALL = SimulationConfig(
    detector_pixels=64,
    particle_diameter=(9.0, 10.0),
    carbon_thickness=(8.0, 10.0),
    frozen_phonons=2,
    dose=None,
    zone_axis_share=1.0,
)


def _simulate(seed: int = 0, **changes: object) -> dict:
    config = dataclasses.replace(SMALL, **changes)  # type: ignore[arg-type]
    return HRTEMSimulator(config, device="cpu").simulate(seed)


def test_same_seed_same_sample_and_seeds_differ() -> None:
    first, second, other = _simulate(4), _simulate(4), _simulate(5)
    assert torch.equal(first["image"], second["image"])
    assert torch.equal(first["mask"], second["mask"])
    assert first["meta"] == second["meta"]
    assert not torch.equal(first["image"], other["image"])


def test_mask_covers_the_particles_and_nothing_else() -> None:
    sample = _simulate(2, particles=(2, 2), particle_diameter=(18.0, 18.0), detector_pixels=200)
    mask, instances = sample["mask"], sample["instance_masks"]
    assert instances.shape == (2, 200, 200) and mask.dtype == torch.int64
    assert torch.equal(mask.bool(), instances.any(0))
    for record, instance in zip(sample["meta"]["particles"], instances, strict=True):
        centre = np.array(record["centre"]) / SMALL.detector_pixel_size
        rows, cols = np.nonzero(instance.numpy())
        radius = record["diameter"] / 2 / SMALL.detector_pixel_size
        assert np.hypot(rows + 0.5 - centre[0], cols + 0.5 - centre[1]).max() <= radius + 2
        assert np.hypot(rows.mean() + 0.5 - centre[0], cols.mean() + 0.5 - centre[1]) < 5
        # pi/12 of phase needs ~13 A of gold: the mask is the particle less a thin rim.
        assert 0.3 * np.pi * radius**2 < instance.sum() < 1.1 * np.pi * radius**2


def test_mask_ignores_the_carbon_film() -> None:
    sample = _simulate(
        1, carbon_thickness=(30.0, 30.0), particle_diameter=(18.0, 18.0), detector_pixels=128
    )
    # The film covers the whole field, the mask only part of the particle's disc.
    assert 0.05 < float(sample["mask"].float().mean()) < 0.4


def test_small_particles_stay_below_the_phase_threshold() -> None:
    # A 1 nm gold particle shifts the phase by less than pi/12: no mask, as the rule says.
    assert int(_simulate(0, particle_diameter=(9.0, 9.0))["mask"].sum()) == 0


def _contrast(image: torch.Tensor) -> float:
    return float(image.std() / image.mean())


def _high_frequency_power(image: torch.Tensor) -> float:
    spectrum = torch.fft.fft2(image[0] - image.mean()).abs() ** 2
    f = torch.fft.fftfreq(image.shape[-1])
    high = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2) > 0.3
    return float(spectrum[high].sum() / spectrum.sum())


def test_each_tier_adds_its_ingredient() -> None:
    samples = {
        tier: _simulate(7, fidelity=tier)
        for tier in ("basic", "thermal", "aberrations", "plasmon", "full")
    }
    assert samples["basic"]["meta"]["thermal"] == "static"
    assert samples["thermal"]["meta"]["thermal"] == "frozen_phonon"
    assert not torch.equal(samples["basic"]["image"], samples["thermal"]["image"])
    assert samples["thermal"]["meta"]["optics"]["cs"] == 0.0
    optics = samples["aberrations"]["meta"]["optics"]
    assert optics["cs"] != 0.0 and optics["focal_spread"] > 0 and optics["coma"] > 0
    # The plasmon background lowers the contrast of the same field.
    assert _contrast(samples["plasmon"]["image"]) < _contrast(samples["aberrations"]["image"])
    # The detector MTF removes high spatial frequencies.
    assert _high_frequency_power(samples["full"]["image"]) < 0.8 * _high_frequency_power(
        samples["plasmon"]["image"]
    )
    # The specimen is the same in every tier: so is the mask.
    for tier in ("thermal", "aberrations", "plasmon", "full"):
        assert torch.equal(samples[tier]["mask"], samples["basic"]["mask"])


def test_dose_noise_and_its_level() -> None:
    noiseless = _simulate(3, fidelity="basic")
    noisy = _simulate(3, fidelity="basic", dose=(200.0, 200.0))
    residual = (noisy["image"] - noiseless["image"]).std()
    # Poisson noise on 0.2 A pixels at 200 e/A^2: 8 electrons per pixel, relative noise ~ 0.35.
    assert float(residual) == pytest.approx(1 / np.sqrt(200 * 0.04), rel=0.25)
    assert noisy["meta"]["detector"]["dose"] == 200.0


def test_log_uniform_dose_is_the_same_draw_on_a_log_scale() -> None:
    low, high = 100.0, 1200.0
    linear = _simulate(6, fidelity="basic", dose=(low, high))
    logarithmic = _simulate(6, fidelity="basic", dose=(low, high), dose_distribution="log_uniform")
    share = (linear["meta"]["detector"]["dose"] - low) / (high - low)
    # One uniform draw either way, so everything else about the field stays the same.
    assert logarithmic["meta"]["detector"]["dose"] == pytest.approx(low * (high / low) ** share)
    assert torch.equal(linear["mask"], logarithmic["mask"])
    assert linear["meta"]["optics"] == logarithmic["meta"]["optics"]


def test_individual_ingredients_can_be_switched() -> None:
    config = dataclasses.replace(SMALL, fidelity="basic", plasmon=True, thermal="debye_waller")
    assert (
        config.uses_plasmon
        and config.thermal_model == "debye_waller"
        and not config.uses_aberrations
    )
    assert config.with_fidelity("full").uses_mtf and config.with_fidelity("full").plasmon is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fidelity": "ultra"}, "fidelity must be one of"),
        ({"sampling": 0.15}, "must be a whole multiple of sampling"),
        ({"defocus": (100.0, -100.0)}, "defocus must be a range"),
        ({"particle_diameter": (10.0, 80.0)}, "does not fit the field"),
        ({"frozen_phonons": 0}, "frozen_phonons must be >= 1"),
        ({"particles": (0, 2)}, "particles must be a range"),
        ({"shapes": ("cube",)}, "shapes must be drawn from"),
        ({"shapes": ()}, "shapes must be drawn from"),
        ({"parametrizations": ("peng",)}, "parametrizations must be drawn from"),
        ({"parametrizations": ()}, "parametrizations must be drawn from"),
        ({"readout_noise": (1.0, 2.0)}, "readout_noise needs a dose"),
        ({"hot_pixels": (0.0, 1.0), "dose": (100.0, 200.0)}, "hot_pixels below 1"),
        ({"flat_field": (-0.1, 0.1)}, "must be ranges >= 0"),
        ({"dose_distribution": "gamma"}, "dose_distribution must be 'uniform' or 'log_uniform'"),
    ],
)
def test_bad_config(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **changes)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"sampling": 0.0}, ValueError, "sampling must be a finite number > 0, got 0.0"),
        ({"sampling": "0.1"}, TypeError, "sampling must be a number or a range of numbers"),
        ({"dose": (-100.0, 100.0)}, ValueError, r"dose must be a range of positive doses"),
        (
            {"detector_pixel_size": -0.2},
            ValueError,
            "detector_pixel_size must be a finite number > 0",
        ),
        ({"energy": float("nan")}, ValueError, "energy must be a finite number > 0"),
        ({"lattice_constant": 0.0}, ValueError, "lattice_constant must be positive"),
        ({"zone_axis_share": 1.5}, ValueError, r"zone_axis_share must be in \[0, 1\]"),
    ],
)
def test_bad_settings_are_refused_where_they_enter(
    changes: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SimulationConfig(**changes)


def test_the_plasmon_share_uses_the_particles_own_lattice(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_synth.generators.hrtem.simulator as simulator

    asked: list[str] = []

    def lattice(element: str) -> float:
        asked.append(element)
        return 3.61

    monkeypatch.setattr(simulator, "fcc_lattice_constant", lattice)
    config = SimulationConfig(
        detector_pixels=48,
        element="Cu",
        particle_diameter=(8.0, 8.0),
        carbon_thickness=(4.0, 4.0),
        frozen_phonons=1,
        fidelity="plasmon",
        dose=None,
    )
    HRTEMSimulator(config, device="cpu").simulate(1)
    assert "Cu" in asked


KNOBS = {
    "parametrizations": ("kirkland", "lobato"),
    "readout_noise": (2.0, 4.0),
    "flat_field": (0.05, 0.1),
    "hot_pixels": (0.001, 0.002),
    "dose": (300.0, 300.0),
}


def test_the_robustness_knobs_are_deterministic_per_seed() -> None:
    first, second, other = _simulate(3, **KNOBS), _simulate(3, **KNOBS), _simulate(4, **KNOBS)
    assert torch.equal(first["image"], second["image"])
    assert first["meta"] == second["meta"]
    assert not torch.equal(first["image"], other["image"])
    detector = first["meta"]["detector"]
    assert 2.0 <= detector["readout_noise"] <= 4.0
    assert 0.05 <= detector["flat_field"] <= 0.1
    assert 0.001 <= detector["hot_pixels"] <= 0.002


def test_the_knobs_draw_apart_from_everything_else() -> None:
    # Hot pixels change their own pixels only: the specimen, optics and noise of a seed stay.
    plain = _simulate(5, dose=(300.0, 300.0))
    hot = _simulate(5, dose=(300.0, 300.0), hot_pixels=(0.01, 0.01))
    changed = plain["image"] != hot["image"]
    assert 0.003 < float(changed.float().mean()) < 0.03
    assert float(hot["image"][changed].min()) > 2.5 * float(plain["image"].mean())
    assert torch.equal(plain["mask"], hot["mask"])
    assert plain["meta"]["optics"] == hot["meta"]["optics"]


def test_parametrization_is_drawn_per_image() -> None:
    seen = {_simulate(seed, **KNOBS)["meta"]["parametrization"] for seed in range(6)}
    assert seen == {"kirkland", "lobato"}
    assert _simulate(0)["meta"]["parametrization"] == "kirkland"


GRID_KNOBS = {"sampling": (0.05, 0.1), "slice_thickness": (1.0, 2.5), "frozen_phonons": (1, 3)}


def test_sampling_slices_and_phonons_are_drawn_per_image_and_deterministic() -> None:
    first, second = _simulate(3, **GRID_KNOBS), _simulate(3, **GRID_KNOBS)
    assert torch.equal(first["image"], second["image"]) and first["meta"] == second["meta"]
    metas = [_simulate(seed, **GRID_KNOBS)["meta"] for seed in range(8)]
    assert {meta["sampling"] for meta in metas} == {0.05, 0.1}
    assert all(1.0 <= meta["slice_thickness"] <= 2.5 for meta in metas)
    assert len({meta["slice_thickness"] for meta in metas}) == 8
    assert {meta["frozen_phonons"] for meta in metas} <= {1, 2, 3}
    assert len({meta["frozen_phonons"] for meta in metas}) > 1
    # Whatever the image's grid, the detector and the masks keep their size.
    sample = _simulate(3, **GRID_KNOBS)
    assert sample["image"].shape == (1, 64, 64) and sample["mask"].shape == (64, 64)


def test_the_grid_knobs_draw_apart_from_the_specimen_and_optics() -> None:
    plain, drawn = _simulate(6), _simulate(6, **GRID_KNOBS)
    assert plain["meta"]["particles"] == drawn["meta"]["particles"]
    assert plain["meta"]["optics"] == drawn["meta"]["optics"]
    assert plain["meta"]["sampling"] == 0.1 and plain["meta"]["frozen_phonons"] == 2
    # One image at its drawn settings is that image simulated with them as fixed settings.
    meta = drawn["meta"]
    fixed = _simulate(
        6,
        sampling=meta["sampling"],
        slice_thickness=meta["slice_thickness"],
        frozen_phonons=meta["frozen_phonons"],
    )
    assert torch.equal(fixed["mask"], drawn["mask"])
    assert torch.allclose(fixed["image"], drawn["image"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampling": (0.1, 0.07)}, "whole multiple of sampling"),
        ({"sampling": (0.1, -0.05)}, "sampling must be a finite number > 0"),
        ({"slice_thickness": (2.0, 1.0)}, "slice_thickness must be a range"),
        ({"slice_thickness": (1.0, 2.0, 3.0)}, "slice_thickness must be a number or a range"),
        ({"frozen_phonons": (0, 4)}, "frozen_phonons must be >= 1"),
        ({"frozen_phonons": (4, 2)}, "frozen_phonons must be >= 1"),
    ],
)
def test_bad_grid_knobs_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SMALL, **changes)


def test_a_config_that_draws_its_grid_names_what_to_do_when_asked_for_one() -> None:
    config = dataclasses.replace(SMALL, **GRID_KNOBS)
    with pytest.raises(ValueError, match="sampling is drawn per image"):
        _ = config.gpts
    assert config.for_image(np.random.default_rng(0)).gpts in (128, 256)


def test_read_out_noise_adds_its_variance() -> None:
    vacuum = torch.ones(128, 128)  # the simulation grid: 64 detector pixels of 0.2 A
    config = dataclasses.replace(SMALL, dose=(100.0, 100.0), readout_noise=(5.0, 5.0))
    generator = torch.Generator().manual_seed(0)
    image, _ = HRTEMSimulator(config, device="cpu").detect(
        vacuum, np.random.default_rng(0), generator
    )
    # Poisson: 4 electrons per pixel, a variance of 1/4 in units of vacuum; read-out: (5/4)^2.
    assert float(image.var()) == pytest.approx(0.25 + (5 / 4) ** 2, rel=0.1)


def test_cdse_particles_are_wurtzite_and_masked_by_their_own_threshold() -> None:
    config = dataclasses.replace(
        SMALL, element="CdSe", particle_diameter=(24.0, 24.0), detector_pixels=160
    )
    assert config.phase_threshold == pytest.approx(np.pi / 30)
    assert config.atomic_volume == pytest.approx(28.06, abs=0.01)
    simulator = HRTEMSimulator(config, device="cpu")
    particles, _, records = simulator.draw_specimen(np.random.default_rng(0))
    assert set(particles[0].get_chemical_symbols()) == {"Cd", "Se"}
    assert records[0]["shape"] == "sphere" and records[0]["twins"] == 0
    mask, _ = simulator.mask_from_particles(particles)
    disk = np.pi * (12.0 / 0.2) ** 2
    assert 0.6 < float(mask.sum()) / disk < 1.0
    # The gold rule would leave most of a CdSe particle unlabelled.
    gold_rule = dataclasses.replace(config, mask_phase_threshold=np.pi / 12)
    assert float(HRTEMSimulator(gold_rule).mask_from_particles(particles)[0].sum()) < 0.2 * disk


def test_elements_that_are_neither_fcc_nor_cdse_are_refused() -> None:
    with pytest.raises(ValueError, match="element must be an fcc metal .* got 'Fe'"):
        dataclasses.replace(SMALL, element="Fe")


@pytest.mark.parametrize("shape", ["decahedron", "icosahedron"])
def test_multiply_twinned_particles_stay_in_the_field_on_the_film(shape: str) -> None:
    # Diameters up to the field's width: their corners would reach past it if not rebuilt.
    config = dataclasses.replace(
        SMALL, shapes=(shape,), particle_diameter=(10.0, 12.8), particles=(1, 2)
    )
    simulator = HRTEMSimulator(config, device="cpu")
    for seed in range(4):
        particles, carbon, records = simulator.draw_specimen(np.random.default_rng(seed))
        top = float(carbon.positions[:, 2].max())
        for particle, record in zip(particles, records, strict=True):
            assert record["shape"] == shape and record["twins"] == 0
            xy = particle.positions[:, :2]
            assert xy.min() >= 0 and xy.max() <= config.extent
            assert particle.positions[:, 2].min() > top
    larger = {"shapes": (shape,), "detector_pixels": 128, "particle_diameter": (18.0, 18.0)}
    first, again = _simulate(3, **larger), _simulate(3, **larger)
    assert torch.equal(first["image"], again["image"]) and first["mask"].any()
