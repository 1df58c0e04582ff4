"""From image intensity to a recorded micrograph: binning, MTF, dose noise, median filter."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812


def bin_pixels(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor`` x ``factor`` blocks of the last two dimensions (pixel integration)."""
    if factor == 1:
        return image
    if image.shape[-1] % factor or image.shape[-2] % factor:
        msg = f"image size {tuple(image.shape[-2:])} is not a multiple of the binning {factor}"
        raise ValueError(msg)
    shape = image.shape
    flat = image.reshape(-1, 1, shape[-2], shape[-1])
    binned = F.avg_pool2d(flat, factor)
    return binned.reshape(*shape[:-2], shape[-2] // factor, shape[-1] // factor)


def detector_mtf(
    gpts: tuple[int, int], half_frequency: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """A detector modulation transfer function on the pixel grid.

    ``MTF(f) = 1 / (1 + (f / f_half)^2)`` in cycles per pixel: a smooth roll-off that halves
    the contrast at ``f_half`` (typical of scintillator-coupled cameras; a direct detector
    has a larger ``f_half``). Pixel integration itself is modelled by :func:`bin_pixels`.
    """
    if not half_frequency > 0:
        msg = f"half_frequency must be positive (cycles per pixel), got {half_frequency!r}"
        raise ValueError(msg)
    fx = torch.fft.fftfreq(gpts[0], device=device)[:, None]
    fy = torch.fft.fftfreq(gpts[1], device=device)[None, :]
    return 1.0 / (1.0 + (fx**2 + fy**2) / half_frequency**2)


def apply_mtf(image: torch.Tensor, half_frequency: float) -> torch.Tensor:
    """Blur ``image`` (..., H, W) by :func:`detector_mtf`."""
    mtf = detector_mtf((image.shape[-2], image.shape[-1]), half_frequency, device=image.device)
    return torch.fft.ifft2(torch.fft.fft2(image) * mtf).real


def dose_noise(
    image: torch.Tensor, dose: float, pixel_size: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Poisson counting noise for ``dose`` [electrons / A^2] on pixels of ``pixel_size`` [A].

    ``image`` is in units of the incident intensity (1 = vacuum); the result is too, so its
    mean stays about 1 and its noise falls as ``1 / sqrt(dose * pixel_size^2)``.
    """
    if not dose > 0:
        msg = f"dose must be positive (electrons per square Angstrom), got {dose!r}"
        raise ValueError(msg)
    electrons = dose * pixel_size**2
    counts = torch.poisson(image.clamp_min(0) * electrons, generator=generator)
    return counts / electrons


def median_filter(image: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Median over ``size`` x ``size`` neighbourhoods of the last two dimensions.

    kornia's ``median_blur``, on the image reflect-padded first (kornia pads with zeros,
    which would darken the border of a bright-field image).
    """
    from kornia.filters import median_blur

    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        msg = f"size must be an odd integer >= 1, got {size!r}"
        raise ValueError(msg)
    if size == 1:
        return image
    shape, half = image.shape, size // 2
    flat = image.reshape(-1, 1, shape[-2], shape[-1])
    padded = F.pad(flat, (half,) * 4, mode="reflect")
    return median_blur(padded, (size, size))[..., half:-half, half:-half].reshape(shape)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` pixels, in Fourier space (periodic)."""
    if sigma <= 0:
        return image
    fx = torch.fft.fftfreq(image.shape[-2], device=image.device)[:, None]
    fy = torch.fft.fftfreq(image.shape[-1], device=image.device)[None, :]
    kernel = torch.exp(-2 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    return torch.fft.ifft2(torch.fft.fft2(image) * kernel).real


def flat_field(
    shape: tuple[int, int],
    amplitude: float,
    correlation: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A smooth gain pattern of mean 1 and standard deviation ``amplitude``.

    White noise low-passed by a Gaussian of ``correlation`` pixels and rescaled: the uneven
    illumination and gain a flat-field correction leaves behind.
    """
    if amplitude < 0 or not correlation > 0:
        msg = f"amplitude must be >= 0 and correlation > 0, got {amplitude!r}, {correlation!r}"
        raise ValueError(msg)
    field = gaussian_blur(torch.randn(shape, generator=generator), correlation)
    field = (field - field.mean()) / field.std().clamp_min(1e-12)
    return 1.0 + amplitude * field


def readout_noise(
    image: torch.Tensor,
    electrons: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian read-out noise of ``electrons`` rms per pixel, on an image whose mean is 1.

    ``image`` is in units of the incident intensity: one electron is ``1 / (dose *
    pixel_size^2)`` there, so pass ``electrons`` already divided by that (see
    :meth:`~lightning_synth.generators.hrtem.HRTEMSimulator.detect`).
    """
    return image + electrons * torch.randn(image.shape, generator=generator)


def hot_pixels(
    image: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
    brightness: tuple[float, float] = (3.0, 30.0),
) -> torch.Tensor:
    """Set a ``fraction`` of the pixels to ``brightness`` times the image's mean (outliers)."""
    if not 0 <= fraction < 1:
        msg = f"fraction must be in [0, 1), got {fraction!r}"
        raise ValueError(msg)
    chosen = torch.rand(image.shape, generator=generator) < fraction
    low, high = brightness
    level = low + (high - low) * torch.rand(image.shape, generator=generator)
    return torch.where(chosen, level * image.mean(), image)
