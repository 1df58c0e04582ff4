"""Objective-lens transfer: aberrations, aperture and partial-coherence envelopes.

Aberrations use Krivanek's polar notation (magnitudes in Angstrom, angles in radians) with
the aberration function

    chi(a, p) = 2 pi / lambda * ( a^2 / 2 * (C10 + C12 cos 2(p - p12))
                                + a^3 / 3 * (C21 cos(p - p21) + C23 cos 3(p - p23))
                                + a^4 / 4 * C30 )

at scattering angle ``a = lambda k`` and azimuth ``p``; ``defocus = -C10`` (positive is
underfocus), and the wave is multiplied by ``exp(-i chi)``, as in abTEM. Partial coherence is
the quasi-coherent product of envelopes (Kirkland 2010, sec. 3.3):

- temporal, from a Gaussian defocus spread of standard deviation ``focal_spread`` [A]:
  ``exp(-1/2 (pi lambda focal_spread k^2)^2)``;
- spatial, from Gaussian illumination angles of standard deviation ``illumination_spread``
  [mrad] per direction: ``exp(-1/2 spread^2 |grad_a chi|^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from lightning_synth.generators.hrtem.optics import relativistic_wavelength, spatial_frequencies


@dataclass(frozen=True)
class Optics:
    """Microscope optics for one image.

    Args:
        energy: Electron energy [eV].
        defocus: Defocus [A], positive = underfocus (``C10 = -defocus``).
        cs: Spherical aberration C30 [A] (1 mm = 1e7 A).
        astigmatism: Two-fold astigmatism C12 [A].
        astigmatism_angle: Its azimuth phi12 [rad].
        coma: Axial coma C21 [A].
        coma_angle: Its azimuth phi21 [rad].
        three_fold_astigmatism: Three-fold astigmatism C23 [A].
        three_fold_angle: Its azimuth phi23 [rad].
        aperture: Objective aperture semi-angle [mrad]; None for no aperture.
        focal_spread: Standard deviation of the defocus spread [A] (temporal coherence).
        illumination_spread: Standard deviation of the illumination angle [mrad] (spatial
            coherence).
    """

    energy: float = 300e3
    defocus: float = 0.0
    cs: float = 0.0
    astigmatism: float = 0.0
    astigmatism_angle: float = 0.0
    coma: float = 0.0
    coma_angle: float = 0.0
    three_fold_astigmatism: float = 0.0
    three_fold_angle: float = 0.0
    aperture: float | None = None
    focal_spread: float = 0.0
    illumination_spread: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and not math.isfinite(value):
                msg = f"Optics.{field.name} must be finite, got {value!r}"
                raise ValueError(msg)
        if self.energy <= 0:
            msg = f"Optics.energy must be positive (eV), got {self.energy!r}"
            raise ValueError(msg)
        for name in ("focal_spread", "illumination_spread"):
            if getattr(self, name) < 0:
                msg = f"Optics.{name} must be >= 0, got {getattr(self, name)!r}"
                raise ValueError(msg)
        if self.aperture is not None and self.aperture <= 0:
            msg = f"Optics.aperture must be positive (mrad) or None, got {self.aperture!r}"
            raise ValueError(msg)

    @property
    def wavelength(self) -> float:
        """Relativistic wavelength [A]."""
        return relativistic_wavelength(self.energy)


def _angles(
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    wavelength: float,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    kx, ky = spatial_frequencies(gpts, sampling, device=device, dtype=torch.float64)
    alpha = torch.sqrt(kx**2 + ky**2) * wavelength
    phi = torch.atan2(ky.expand(gpts), kx.expand(gpts))
    return alpha, phi


def aberration_function(
    optics: Optics,
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The aberration phase chi [rad] on the grid's FFT frequencies (float64)."""
    return _chi(optics, *_angles(gpts, sampling, optics.wavelength, device))


def _chi(optics: Optics, alpha: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Chi at scattering angles ``alpha`` [rad] and azimuths ``phi``."""
    c10 = -optics.defocus
    chi = (
        0.5
        * alpha**2
        * (c10 + optics.astigmatism * torch.cos(2 * (phi - optics.astigmatism_angle)))
    )
    chi = chi + alpha**3 / 3 * (
        optics.coma * torch.cos(phi - optics.coma_angle)
        + optics.three_fold_astigmatism * torch.cos(3 * (phi - optics.three_fold_angle))
    )
    chi = chi + 0.25 * optics.cs * alpha**4
    return 2 * math.pi / optics.wavelength * chi


def _aberration_gradient_squared(
    optics: Optics, alpha: torch.Tensor, phi: torch.Tensor
) -> torch.Tensor:
    """|grad_alpha chi|^2 for the spatial-coherence envelope."""
    c10 = -optics.defocus
    radial = (
        alpha * (c10 + optics.astigmatism * torch.cos(2 * (phi - optics.astigmatism_angle)))
        + alpha**2
        * (
            optics.coma * torch.cos(phi - optics.coma_angle)
            + optics.three_fold_astigmatism * torch.cos(3 * (phi - optics.three_fold_angle))
        )
        + optics.cs * alpha**3
    )
    azimuthal = -alpha * optics.astigmatism * torch.sin(
        2 * (phi - optics.astigmatism_angle)
    ) - alpha**2 * (
        optics.coma / 3 * torch.sin(phi - optics.coma_angle)
        + optics.three_fold_astigmatism * torch.sin(3 * (phi - optics.three_fold_angle))
    )
    scale = 2 * math.pi / optics.wavelength
    return scale**2 * (radial**2 + azimuthal**2)


def contrast_transfer(
    optics: Optics,
    gpts: tuple[int, int],
    sampling: tuple[float, float],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Transfer function ``aperture * envelopes * exp(-i chi)`` (complex64, shape ``gpts``)."""
    alpha, phi = _angles(gpts, sampling, optics.wavelength, device)
    chi = _chi(optics, alpha, phi)
    amplitude = torch.ones_like(alpha)
    if optics.aperture is not None:
        amplitude = amplitude * (alpha <= optics.aperture / 1e3)
    if optics.focal_spread:
        k2 = (alpha / optics.wavelength) ** 2
        amplitude = amplitude * torch.exp(
            -0.5 * (math.pi * optics.wavelength * optics.focal_spread * k2) ** 2
        )
    if optics.illumination_spread:
        spread = optics.illumination_spread / 1e3
        amplitude = amplitude * torch.exp(
            -0.5 * spread**2 * _aberration_gradient_squared(optics, alpha, phi)
        )
    return torch.polar(amplitude, -chi).to(torch.complex64)


def image_wave(
    exit_wave: torch.Tensor,
    optics: Optics | None,
    sampling: tuple[float, float],
    transfer: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exit wave after the objective lens (complex, same shape as ``exit_wave``).

    Pass ``transfer`` (from :func:`contrast_transfer`) to reuse it across waves.
    """
    if transfer is None:
        if optics is None:
            msg = "image_wave needs optics or a precomputed transfer"
            raise ValueError(msg)
        gpts = (exit_wave.shape[-2], exit_wave.shape[-1])
        transfer = contrast_transfer(optics, gpts, sampling, device=exit_wave.device)
    return torch.fft.ifft2(torch.fft.fft2(exit_wave) * transfer)


def image_intensity(
    exit_wave: torch.Tensor,
    optics: Optics | None,
    sampling: tuple[float, float],
    transfer: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image intensity ``|psi_image|^2`` (float32), in units of the incident intensity."""
    return image_wave(exit_wave, optics, sampling, transfer).abs().square().to(torch.float32)
