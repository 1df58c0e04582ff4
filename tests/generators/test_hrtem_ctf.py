"""The objective-lens transfer function: zeros, envelopes, aperture, arguments."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_synth.generators.hrtem import (
    Optics,
    aberration_function,
    contrast_transfer,
    image_intensity,
    relativistic_wavelength,
)

GPTS, SAMPLING = (256, 256), (0.1, 0.1)


def _frequency(gpts: tuple[int, int], sampling: tuple[float, float]) -> torch.Tensor:
    kx = torch.fft.fftfreq(gpts[0], sampling[0], dtype=torch.float64)
    ky = torch.fft.fftfreq(gpts[1], sampling[1], dtype=torch.float64)
    return torch.sqrt(kx[:, None] ** 2 + ky[None, :] ** 2)


def test_defocus_phase_and_its_zeros() -> None:
    optics = Optics(defocus=500.0)
    wavelength = relativistic_wavelength(300e3)
    chi = aberration_function(optics, GPTS, SAMPLING)
    k = _frequency(GPTS, SAMPLING)
    # chi = -pi lambda defocus k^2 for pure defocus: the weak-phase CTF sin(chi) is zero at
    # k_n = sqrt(n / (lambda defocus)).
    assert torch.allclose(chi, -math.pi * wavelength * 500.0 * k**2)
    for n in (1, 2, 3):
        k_n = math.sqrt(n / (wavelength * 500.0))
        value = -math.pi * wavelength * 500.0 * k_n**2
        assert math.sin(value) == pytest.approx(0.0, abs=1e-9)


def test_scherzer_defocus_gives_a_broad_first_passband() -> None:
    cs = 1.2e7  # 1.2 mm
    wavelength = relativistic_wavelength(300e3)
    scherzer = 1.2 * math.sqrt(cs * wavelength)
    optics = Optics(defocus=scherzer, cs=cs)
    chi = aberration_function(optics, GPTS, SAMPLING)
    k = _frequency(GPTS, SAMPLING)
    passband = (k > 0.15) & (k < 0.45)  # 2.2 A to 6.7 A
    assert float(torch.sin(chi)[passband].abs().min()) > 0.5


def test_envelopes_and_aperture_damp_high_frequencies() -> None:
    k = _frequency(GPTS, SAMPLING)
    coherent = contrast_transfer(Optics(defocus=100.0), GPTS, SAMPLING).abs()
    assert torch.allclose(coherent, torch.ones_like(coherent))
    wavelength = relativistic_wavelength(300e3)
    temporal = contrast_transfer(Optics(focal_spread=30.0), GPTS, SAMPLING).abs().double()
    expected = torch.exp(-0.5 * (math.pi * wavelength * 30.0 * k**2) ** 2)
    assert torch.allclose(temporal, expected, atol=1e-6)
    spatial = (
        contrast_transfer(Optics(defocus=800.0, illumination_spread=0.5), GPTS, SAMPLING)
        .abs()
        .double()
    )
    # For pure defocus |grad chi| = 2 pi defocus k: exp(-2 (pi spread defocus k)^2).
    expected = torch.exp(-2 * (math.pi * 0.5e-3 * 800.0 * k) ** 2)
    assert torch.allclose(spatial, expected, atol=1e-6)
    apertured = contrast_transfer(Optics(aperture=20.0), GPTS, SAMPLING).abs()
    assert float(apertured[k * wavelength > 20.0e-3].max()) == 0.0
    assert float(apertured[k * wavelength < 19.0e-3].min()) == 1.0


def test_a_flat_wave_images_to_a_flat_image() -> None:
    wave = torch.ones(GPTS, dtype=torch.complex64)
    image = image_intensity(wave, Optics(defocus=300.0, cs=1e7, focal_spread=40.0), SAMPLING)
    assert torch.allclose(image, torch.ones_like(image), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"energy": 0.0}, "Optics.energy must be positive"),
        ({"focal_spread": -1.0}, "Optics.focal_spread must be >= 0"),
        ({"illumination_spread": -0.1}, "Optics.illumination_spread must be >= 0"),
        ({"aperture": 0.0}, "Optics.aperture must be positive"),
        ({"defocus": float("nan")}, "Optics.defocus must be finite"),
    ],
)
def test_bad_optics(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Optics(**kwargs)
