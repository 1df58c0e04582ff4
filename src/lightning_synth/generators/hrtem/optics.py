"""Electron-optical basics: wavelength, interaction constant, grids, propagator, aperture.

Units: energies in eV, lengths in Angstrom, spatial frequencies in 1/Angstrom, potentials in
volts (projected potentials in V*Angstrom). Constants are CODATA 2018.
"""

from __future__ import annotations

import math

import torch

#: Electron rest energy m0 c^2 [eV].
ELECTRON_REST_ENERGY = 510998.95
#: Planck constant times speed of light [eV * Angstrom].
HC = 12398.419843320026
#: 2 pi a0 e = h^2 / (2 pi m0 e): converts f_e(q) [Angstrom] to potential [V * Angstrom^2].
#: a0 = 0.529177210903 Angstrom, e / (4 pi eps0) = 14.399645 V * Angstrom.
POTENTIAL_PREFACTOR = 2 * math.pi * 0.529177210903 * 14.399645478425668


def _check_energy(energy: float) -> float:
    if not math.isfinite(energy) or energy <= 0:
        msg = f"energy must be a positive number of eV, got {energy!r}"
        raise ValueError(msg)
    return float(energy)


def relativistic_wavelength(energy: float) -> float:
    """Relativistic de Broglie wavelength [Angstrom] of electrons of kinetic ``energy`` [eV].

    ``lambda = h c / sqrt(E (2 m0 c^2 + E))``.

    Example:
        >>> round(relativistic_wavelength(300e3), 6)
        0.019687
    """
    energy = _check_energy(energy)
    return HC / math.sqrt(energy * (2 * ELECTRON_REST_ENERGY + energy))


def interaction_constant(energy: float) -> float:
    """Interaction constant sigma [rad / (V * Angstrom)] (Kirkland 2010, eq. 5.6).

    ``sigma = 2 pi / (lambda V) * (m0 c^2 + eV) / (2 m0 c^2 + eV)``, so that a projected
    potential ``v`` shifts the phase of the wave by ``sigma * v``.

    Example:
        >>> round(interaction_constant(300e3), 8)
        0.00065262
    """
    energy = _check_energy(energy)
    wavelength = relativistic_wavelength(energy)
    return (
        2
        * math.pi
        / (wavelength * energy)
        * (ELECTRON_REST_ENERGY + energy)
        / (2 * ELECTRON_REST_ENERGY + energy)
    )


def spatial_frequencies(
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies [1/Angstrom] of a grid's FFT, as columns ``kx`` (Nx, 1) and rows ``ky`` (1, Ny).

    Example:
        >>> kx, ky = spatial_frequencies((4, 2), (0.5, 0.5))
        >>> kx.flatten().tolist(), ky.flatten().tolist()
        ([0.0, 0.5, -1.0, -0.5], [0.0, -1.0])
    """
    kx = torch.fft.fftfreq(gpts[0], d=sampling[0], device=device, dtype=dtype)
    ky = torch.fft.fftfreq(gpts[1], d=sampling[1], device=device, dtype=dtype)
    return kx[:, None], ky[None, :]


def antialias_aperture(
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    cutoff: float = 2.0 / 3.0,
    taper: float = 0.01,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Band limit at ``cutoff`` of the Nyquist frequency, with a cosine edge.

    Products of band-limited arrays (transmission times wave) then alias nothing into the
    kept disc (Kirkland 2010, sec. 6.8). The edge falls from 1 to 0 over ``taper / sampling``
    just inside the cutoff.

    Returns:
        Real array of shape ``gpts``.
    """
    kx, ky = spatial_frequencies(gpts, sampling, device=device, dtype=torch.float64)
    radius = torch.sqrt(kx**2 + ky**2)
    edge = cutoff / max(sampling) / 2
    width = taper / max(sampling)
    if width <= 0:
        return (radius < edge).to(torch.float32)
    ramp = 0.5 * (1 + torch.cos(math.pi * (radius - edge + width) / width))
    aperture = torch.where(radius > edge - width, ramp, torch.ones_like(radius))
    aperture = torch.where(radius > edge, torch.zeros_like(radius), aperture)
    return aperture.to(torch.float32)


def fresnel_propagator(
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    thickness: float,
    energy: float,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fourier-space Fresnel propagator over ``thickness`` [Angstrom]: ``exp(-i pi lambda dz k^2)``.

    Returns:
        complex64 array of shape ``gpts``.
    """
    wavelength = relativistic_wavelength(energy)
    kx, ky = spatial_frequencies(gpts, sampling, device=device, dtype=torch.float64)
    phase = -math.pi * wavelength * thickness * (kx**2 + ky**2)
    return torch.polar(torch.ones_like(phase), phase).to(torch.complex64)
