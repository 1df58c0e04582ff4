"""Physics of the HRTEM simulator: constants, scattering factors, potentials, propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import k0

from lightning_synth.generators.hrtem import (
    antialias_aperture,
    fresnel_propagator,
    interaction_constant,
    multislice,
    projected_potential_slices,
    relativistic_wavelength,
    scattering_factor,
)
from lightning_synth.generators.hrtem.parametrizations import kirkland_parameters


@pytest.mark.parametrize(
    ("energy", "wavelength"), [(300e3, 0.019687), (200e3, 0.025079), (80e3, 0.041757)]
)
def test_relativistic_wavelength(energy: float, wavelength: float) -> None:
    assert relativistic_wavelength(energy) == pytest.approx(wavelength, abs=5e-7)


@pytest.mark.parametrize(
    ("energy", "sigma"), [(300e3, 6.5262e-4), (200e3, 7.2884e-4), (100e3, 9.2446e-4)]
)
def test_interaction_constant_matches_kirklands_table(energy: float, sigma: float) -> None:
    assert interaction_constant(energy) == pytest.approx(sigma, rel=2e-4)


@pytest.mark.parametrize("energy", [0.0, -1.0, float("nan")])
def test_bad_energy_is_rejected(energy: float) -> None:
    with pytest.raises(ValueError, match="energy must be a positive number of eV"):
        relativistic_wavelength(energy)


def test_kirkland_table_transcription() -> None:
    # Literal values of Kirkland (2010), Appendix C, for carbon and gold.
    carbon = kirkland_parameters(6)
    assert carbon["a"] == pytest.approx([2.12080767e-1, 1.99811865e-1, 1.68254385e-1], rel=1e-8)
    assert carbon["d"] == pytest.approx([1.33311887, 3.80800263, 4.03982620e-2], rel=1e-8)
    gold = kirkland_parameters(79)
    assert gold["b"] == pytest.approx([1.70932277e-1, 1.29335319e1, 6.89997070e-1], rel=1e-8)
    assert gold["c"] == pytest.approx([2.95414176e-1, 3.11475743e-1, 1.43237267e-2], rel=1e-8)
    with pytest.raises(ValueError, match="atomic number must be in 1..103"):
        kirkland_parameters(104)


def test_scattering_factor_is_positive_and_decreasing() -> None:
    q2 = torch.linspace(0, 16, 200, dtype=torch.float64)
    for number in (6, 14, 48, 79):
        f = scattering_factor(number, q2)
        assert bool((f > 0).all()) and bool((f[1:] < f[:-1]).all())
    assert float(scattering_factor(79, q2[:1])) > float(scattering_factor(6, q2[:1]))


def _analytic_projected_potential(number: int, r: np.ndarray) -> np.ndarray:
    """Kirkland (2010) eq. C.19: the real-space projected potential [V A] of one atom."""
    p = kirkland_parameters(number)
    a0e = 0.529177210903 * 14.399645478425668
    v = sum(
        4 * math.pi**2 * a0e * a * k0(2 * math.pi * r * math.sqrt(b))
        for a, b in zip(p["a"], p["b"], strict=True)
    )
    v += sum(
        2 * math.pi**2 * a0e * c / d * np.exp(-(math.pi**2) * r**2 / d)
        for c, d in zip(p["c"], p["d"], strict=True)
    )
    return v


def _band_limited(array: np.ndarray, size: int) -> np.ndarray:
    """Keep the Fourier coefficients |k| < size / 2 of ``array`` on a ``size`` x ``size`` grid."""
    n = array.shape[0]
    index = np.fft.fftfreq(n, 1 / n)
    keep = np.abs(index) < size / 2
    spectrum = np.zeros((size, size), dtype=complex)
    target = np.fft.fftfreq(size, 1 / size)
    rows = np.searchsorted(np.sort(target), index[keep])
    order = np.argsort(target)
    spectrum[np.ix_(order[rows], order[rows])] = np.fft.fft2(array)[np.ix_(keep, keep)]
    return np.fft.ifft2(spectrum).real * (size / n) ** 2


@pytest.mark.parametrize("method", ["exact", "gridded"])
@pytest.mark.parametrize("number", [6, 79])
def test_potential_matches_the_real_space_formula_within_the_band(number: int, method: str) -> None:
    # The Fourier-space potential holds the exact Fourier coefficients up to the Nyquist
    # frequency. Sample the independent real-space formula on a 4x finer grid, keep the same
    # band, and compare.
    extent, coarse, fine = 8.0, 80, 320
    position = np.array([4.03, 3.96])
    ours = (
        projected_potential_slices(
            torch.tensor([[*position, 0.5]]),
            torch.tensor([number]),
            (extent, extent),
            (coarse, coarse),
            method=method,  # type: ignore[arg-type]
        )[0]
        .double()
        .numpy()
    )
    axis = np.arange(fine) * extent / fine
    x, y = np.meshgrid(axis, axis, indexing="ij")
    reference = np.zeros_like(x)
    for shift_x in (-1, 0, 1):  # the nearest periodic images
        for shift_y in (-1, 0, 1):
            r = np.hypot(x - position[0] - shift_x * extent, y - position[1] - shift_y * extent)
            reference += _analytic_projected_potential(number, r)
    reference = _band_limited(reference, coarse)
    ours = _band_limited(ours, coarse)
    reference -= reference.mean()
    ours -= ours.mean()
    error = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    assert error < 0.01, error


@pytest.mark.parametrize("method", ["exact", "gridded"])
def test_potential_mean_is_the_forward_scattering_factor(method: str) -> None:
    extent, gpts = (10.0, 12.0), (50, 60)
    slices = projected_potential_slices(
        torch.tensor([[3.0, 4.0, 1.0], [7.0, 2.0, 1.5]]),
        torch.tensor([79, 6]),
        extent,
        gpts,
        method=method,  # type: ignore[arg-type]
    )
    expected = 2 * math.pi * 0.529177210903 * 14.399645478425668 / (extent[0] * extent[1])
    expected *= float(
        scattering_factor(79, torch.zeros(1, dtype=torch.float64))
        + scattering_factor(6, torch.zeros(1, dtype=torch.float64))
    )
    assert float(slices.double().mean()) == pytest.approx(expected, rel=1e-5)


def _reference_potential(
    positions: torch.Tensor,
    numbers: torch.Tensor,
    extent: tuple[float, float],
    gpts: tuple[int, int],
    num_slices: int,
    rms: dict[int, float],
) -> torch.Tensor:
    """The definition, in float64 on the full grid: real part of the inverse FFT of f_e S."""
    kx = torch.fft.fftfreq(gpts[0], extent[0] / gpts[0], dtype=torch.float64)[:, None]
    ky = torch.fft.fftfreq(gpts[1], extent[1] / gpts[1], dtype=torch.float64)[None, :]
    q2 = kx**2 + ky**2
    slice_index = torch.floor(positions[:, 2] / 2.0).long()
    out = torch.zeros((num_slices, *gpts), dtype=torch.float64)
    for index in range(num_slices):
        spectrum = torch.zeros(gpts, dtype=torch.complex128)
        for number in torch.unique(numbers).tolist():
            chosen = (slice_index == index) & (numbers == number)
            x, y = positions[chosen, 0], positions[chosen, 1]
            structure = torch.exp(-2j * math.pi * (kx[None] * x[:, None, None])) * torch.exp(
                -2j * math.pi * (ky[None] * y[:, None, None])
            )
            factor = scattering_factor(number, q2) * torch.exp(
                -2 * math.pi**2 * rms.get(number, 0.0) ** 2 * q2
            )
            spectrum += factor * structure.sum(0)
        out[index] = torch.fft.ifft2(spectrum).real
    return (
        out
        * 2
        * math.pi
        * 0.529177210903
        * 14.399645478425668
        * math.prod(gpts)
        / math.prod(extent)
    )


@pytest.mark.parametrize(
    ("extent", "gpts"),
    [
        ((12.0, 12.0), (96, 96)),  # even: Nyquist row, column and corner
        ((12.0, 10.3), (97, 83)),  # odd: no Nyquist frequency
        ((12.0, 10.3), (96, 83)),
        ((12.0, 10.3), (97, 82)),
        ((6.0, 4.0), (12, 5)),  # coarser than the Gaussian's stencil: it wraps around
    ],
)
@pytest.mark.parametrize("method", ["exact", "gridded"])
def test_structure_factor_methods_agree_with_the_definition(
    extent: tuple[float, float], gpts: tuple[int, int], method: str
) -> None:
    generator = torch.Generator().manual_seed(7)
    count = 150
    positions = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    # x and y also outside the cell (the cell is periodic), z over three slices.
    positions *= torch.tensor([1.4 * extent[0], extent[1], 5.9], dtype=torch.float64)
    positions[:, 0] -= 0.2 * extent[0]
    numbers = torch.tensor([6, 79, 48])[torch.randint(3, (count,), generator=generator)]
    rms = {6: 0.08, 79: 0.09}
    ours = projected_potential_slices(
        positions,
        numbers,
        extent,
        gpts,
        2.0,
        rms_displacements=rms,
        method=method,  # type: ignore[arg-type]
    )
    reference = _reference_potential(positions, numbers, extent, gpts, 3, rms)
    error = float((ours.double() - reference).norm() / reference.norm())
    assert error < (1e-6 if method == "exact" else 1e-5), error


def test_auto_method_grids_dense_slices_and_sums_sparse_ones() -> None:
    from lightning_synth.generators.hrtem.potentials import GRID_MIN_ATOMS

    generator = torch.Generator().manual_seed(3)
    dense = torch.rand(GRID_MIN_ATOMS, 3, generator=generator, dtype=torch.float64) * 8
    sparse = torch.rand(5, 3, generator=generator, dtype=torch.float64) * 8
    dense[:, 2], sparse[:, 2] = 1.0, 3.0  # slice 0 dense, slice 1 sparse
    positions = torch.cat([dense, sparse])
    numbers = torch.full((len(positions),), 6)
    arguments = (positions, numbers, (8.0, 8.0), (64, 64), 2.0)
    auto = projected_potential_slices(*arguments)
    assert torch.equal(auto[0], projected_potential_slices(*arguments, method="gridded")[0])
    assert torch.equal(auto[1], projected_potential_slices(*arguments, method="exact")[1])


def test_propagation_without_aperture_conserves_flux() -> None:
    generator = torch.Generator().manual_seed(0)
    potential = torch.rand(6, 64, 64, generator=generator) * 40
    wave = multislice(potential, 300e3, (0.1, 0.1), 2.0, antialias=False)
    assert float((wave.abs() ** 2).sum()) == pytest.approx(64 * 64, rel=1e-5)
    limited = multislice(potential, 300e3, (0.1, 0.1), 2.0)
    assert float((limited.abs() ** 2).sum()) < 64 * 64


def test_propagator_and_aperture_shapes_and_values() -> None:
    propagator = fresnel_propagator((32, 32), (0.1, 0.1), 2.0, 300e3)
    assert torch.allclose(propagator.abs(), torch.ones(32, 32))
    aperture = antialias_aperture((32, 32), (0.1, 0.1))
    assert float(aperture[0, 0]) == 1.0 and float(aperture[16, 16]) == 0.0
    # Nothing beyond 2/3 of the Nyquist frequency (5 / A at 0.1 A sampling) survives.
    k = torch.fft.fftfreq(32, 0.1)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    assert float(aperture[radius > 2 / 3 * 5].abs().max()) == 0.0


def test_multislice_is_deterministic_and_batched() -> None:
    generator = torch.Generator().manual_seed(1)
    potential = torch.rand(2, 3, 32, 32, generator=generator) * 30
    batched = multislice(potential, 300e3, (0.1, 0.1), 2.0)
    single = multislice(potential[1], 300e3, (0.1, 0.1), 2.0)
    assert batched.shape == (2, 32, 32)
    assert torch.allclose(batched[1], single, atol=1e-5)
    assert torch.equal(multislice(potential, 300e3, (0.1, 0.1), 2.0), batched)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positions": torch.zeros(2, 2)}, r"positions must have shape \(N, 3\)"),
        ({"numbers": torch.tensor([79, 79])}, r"numbers must have shape \(1,\)"),
        ({"numbers": torch.tensor([200])}, "atomic number must be in 1..103 .*got 200"),
        ({"positions": torch.tensor([[1.0, 1.0, -0.5]])}, "atoms must have z >= 0"),
        ({"extent": (0.0, 4.0)}, "extent must be two positive lengths"),
        ({"gpts": (1, 8)}, "gpts must be two grid sizes >= 2"),
        ({"slice_thickness": 0.0}, "slice_thickness must be positive"),
        ({"method": "nufft"}, "method must be 'auto', 'gridded' or 'exact', got 'nufft'"),
        (
            {"positions": torch.tensor([[1.0, 1.0, 9.0]]), "num_slices": 2},
            "num_slices=2 cannot hold atoms",
        ),
    ],
)
def test_bad_potential_arguments(kwargs: dict, message: str) -> None:
    arguments = {
        "positions": torch.tensor([[1.0, 1.0, 1.0]]),
        "numbers": torch.tensor([79]),
        "extent": (4.0, 4.0),
        "gpts": (8, 8),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        projected_potential_slices(**arguments)


def test_median_filter_matches_scipys_with_mirrored_edges() -> None:
    from scipy import ndimage

    from lightning_synth.generators.hrtem.detector import median_filter

    image = torch.rand(2, 17, 23, generator=torch.Generator().manual_seed(0))
    for size in (3, 5):
        expected = np.stack(
            [ndimage.median_filter(x, size=size, mode="mirror") for x in image.numpy()]
        )
        assert np.array_equal(median_filter(image, size).numpy(), expected)
    assert torch.equal(median_filter(image, 1), image)
    with pytest.raises(ValueError, match="size must be an odd integer >= 1, got 4"):
        median_filter(image, 4)
