"""Agreement with abTEM (the oracle) on a small gold cluster: potential, exit wave, image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_synth.generators.hrtem import (
    Optics,
    image_intensity,
    multislice,
    projected_potential_slices,
)

abtem = pytest.importorskip(
    "abtem", reason="abTEM is the test extra 'oracle' (make test installs it)"
)
dask = pytest.importorskip("dask")
cluster = pytest.importorskip("ase.cluster")

SAMPLING, SLICE, ENERGY = 0.025, 2.0, 300e3


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation; for complex arrays the magnitude of the complex one."""
    a, b = a - a.mean(), b - b.mean()
    return float(abs(np.vdot(b, a)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real))


def _cluster() -> tuple:
    atoms = cluster.Octahedron("Au", 5, cutoff=2)
    atoms.cell = [16.0, 16.0, 18.0]  # a whole number of 2 A slices
    atoms.center()
    return atoms, (640, 640)


@pytest.fixture(scope="module")
def case() -> dict:
    # abTEM's FFTW backend and threaded scheduler returned all-zero arrays on some machines:
    # use numpy's FFT and the synchronous scheduler.
    abtem.config.set({"fft": "numpy"})
    dask.config.set(scheduler="synchronous")
    atoms, gpts = _cluster()
    potential = abtem.Potential(
        atoms, gpts=gpts, slice_thickness=SLICE, parametrization="kirkland", projection="infinite"
    )
    arguments = (torch.tensor(atoms.positions), torch.tensor(atoms.numbers), (16.0, 16.0), gpts)
    ours = projected_potential_slices(*arguments, SLICE, num_slices=9)
    return {
        "abtem_potential": potential.build().compute().array,
        "abtem_exit": abtem.PlaneWave(energy=ENERGY).multislice(potential).compute().array,
        "potential": ours.numpy(),
        "exit": multislice(ours, ENERGY, (SAMPLING, SAMPLING), SLICE).numpy(),
    }


@pytest.mark.parametrize("parametrization", ["kirkland", "lobato"])
@pytest.mark.parametrize("method", ["exact", "gridded"])
def test_projected_potential_agrees_with_abtem(
    case: dict, parametrization: str, method: str
) -> None:
    atoms, gpts = _cluster()
    if parametrization == "kirkland":
        reference = case["abtem_potential"]
    else:
        potential = abtem.Potential(
            atoms, gpts=gpts, slice_thickness=SLICE, parametrization="lobato", projection="infinite"
        )
        reference = potential.build().compute().array
    ours = projected_potential_slices(
        torch.tensor(atoms.positions),
        torch.tensor(atoms.numbers),
        (16.0, 16.0),
        gpts,
        SLICE,
        num_slices=9,
        method=method,
        parametrization=parametrization,
    ).numpy()
    occupied = [i for i, s in enumerate(reference) if np.ptp(s) > 1.0]
    assert len(occupied) >= 4
    for index in occupied:
        assert _ncc(ours[index], reference[index]) >= 0.999, index
    # Same total projected potential (the forward scattering factor of every atom).
    assert ours.sum() == pytest.approx(reference.sum(), rel=1e-4)


def test_the_two_parametrizations_differ() -> None:
    # The Lobato potential is not Kirkland's under another name: their forward scattering
    # factors differ by 0.2% for gold, and their slices by more than rounding.
    atoms, gpts = _cluster()
    arguments = (torch.tensor(atoms.positions), torch.tensor(atoms.numbers), (16.0, 16.0), gpts)
    kirkland = projected_potential_slices(*arguments, SLICE, num_slices=9)
    lobato = projected_potential_slices(*arguments, SLICE, num_slices=9, parametrization="lobato")
    difference = float((kirkland - lobato).norm() / kirkland.norm())
    assert 1e-3 < difference < 0.05


def test_exit_wave_agrees_with_abtem(case: dict) -> None:
    assert _ncc(case["exit"], case["abtem_exit"]) >= 0.999
    assert _ncc(np.abs(case["exit"]) ** 2, np.abs(case["abtem_exit"]) ** 2) >= 0.998


OPTICS = Optics(
    defocus=120.0,
    cs=-1.5e5,  # -15 um, as in an aberration-corrected microscope
    astigmatism=20.0,
    astigmatism_angle=0.4,
    coma=800.0,
    coma_angle=1.1,
    three_fold_astigmatism=400.0,
    three_fold_angle=0.3,
    focal_spread=30.0,
    illumination_spread=1.0,
)


def test_image_agrees_with_abtem(case: dict) -> None:
    # abTEM's spreads are sqrt(2) times the standard deviations used here (its documented
    # conventions), and its aperture edge is soft: leave the aperture open.
    ctf = abtem.CTF(
        energy=ENERGY,
        focal_spread=np.sqrt(2) * OPTICS.focal_spread,
        angular_spread=np.sqrt(2) * OPTICS.illumination_spread,
        aberration_coefficients={
            "C10": -OPTICS.defocus,
            "C30": OPTICS.cs,
            "C12": OPTICS.astigmatism,
            "phi12": OPTICS.astigmatism_angle,
            "C21": OPTICS.coma,
            "phi21": OPTICS.coma_angle,
            "C23": OPTICS.three_fold_astigmatism,
            "phi23": OPTICS.three_fold_angle,
        },
    )
    waves = abtem.Waves(case["abtem_exit"], energy=ENERGY, sampling=SAMPLING)
    reference = waves.apply_ctf(ctf).intensity().compute().array
    ours = image_intensity(torch.from_numpy(case["exit"]), OPTICS, (SAMPLING, SAMPLING)).numpy()
    assert _ncc(ours, reference) >= 0.999
