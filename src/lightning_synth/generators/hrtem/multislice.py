"""Multislice propagation of a plane wave through potential slices (Kirkland 2010, ch. 6)."""

from __future__ import annotations

import torch

from lightning_synth.generators.hrtem.optics import (
    antialias_aperture,
    fresnel_propagator,
    interaction_constant,
)


def transmission_functions(potential: torch.Tensor, energy: float) -> torch.Tensor:
    """``t = exp(i sigma v)`` of projected potentials ``v`` [V * Angstrom] (any shape)."""
    phase = interaction_constant(energy) * potential.to(torch.float32)
    return torch.polar(torch.ones_like(phase), phase)


def multislice(
    potential: torch.Tensor,
    energy: float,
    sampling: tuple[float, float],
    slice_thickness: float,
    wave: torch.Tensor | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Exit wave of a plane wave (or ``wave``) after every slice of ``potential``.

    Each step transmits through a slice and then propagates over ``slice_thickness``:
    ``psi <- P * (t * psi)`` with the products band-limited to 2/3 of the Nyquist frequency
    (the transmission function and the propagator carry the antialias aperture), as in
    Kirkland's and abTEM's conventional multislice.

    Args:
        potential: Slices, shape (..., S, Nx, Ny) [V * Angstrom]; leading dimensions are a batch.
        energy: Electron energy [eV].
        sampling: Grid sampling in x and y [Angstrom].
        slice_thickness: Slice thickness [Angstrom].
        wave: Incident wave, shape (..., Nx, Ny); a unit plane wave by default.
        antialias: Band-limit as above; without it, propagation conserves the flux exactly.

    Returns:
        complex64 exit wave of shape (..., Nx, Ny).
    """
    if potential.ndim < 3:
        msg = f"potential must have shape (..., slices, Nx, Ny), got {tuple(potential.shape)}"
        raise ValueError(msg)
    gpts = (potential.shape[-2], potential.shape[-1])
    device = potential.device
    propagator = fresnel_propagator(gpts, sampling, slice_thickness, energy, device=device)
    aperture = None
    if antialias:
        aperture = antialias_aperture(gpts, sampling, device=device)
        propagator = propagator * aperture
    if wave is None:
        wave = torch.ones(potential.shape[:-3] + gpts, dtype=torch.complex64, device=device)
    for index in range(potential.shape[-3]):
        transmission = transmission_functions(potential[..., index, :, :], energy)
        if aperture is not None:
            transmission = torch.fft.ifft2(torch.fft.fft2(transmission) * aperture)
        wave = torch.fft.ifft2(torch.fft.fft2(wave * transmission) * propagator)
    return wave
