"""Projected potentials of atoms, slice by slice, computed in Fourier space.

Each slice holds the atoms whose z lies in it and carries their *infinite projection*: the
potential integrated along z, placed at the slice (Kirkland 2010, sec. 6.4). Per slice and
element, the structure factor ``S(q) = sum_j exp(-2 pi i q . r_j)`` is exact at every grid
frequency (no interpolation of positions): it factorises over x and y, so it is one complex
matrix product per slice and element, which runs well on a GPU. The projected potential is

    v(r) = 2 pi a0 e / A * sum_q f_e(q) exp(-2 pi^2 s^2 q^2) S(q) exp(2 pi i q . r)  [V A]

with ``f_e`` from Kirkland's parametrization, ``A`` the cell area and ``s`` an optional rms
displacement per element (a Debye-Waller smearing, the static thermal tier).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

import torch

from lightning_synth.generators.hrtem.optics import POTENTIAL_PREFACTOR, spatial_frequencies
from lightning_synth.generators.hrtem.parametrizations import element_symbol, scattering_factor


def slice_count(positions: torch.Tensor, slice_thickness: float) -> int:
    """Number of slices of ``slice_thickness`` that hold every atom (z from 0 upwards)."""
    if positions.numel() == 0:
        return 1
    return math.floor(float(positions[:, 2].max()) / slice_thickness) + 1


def projected_potential_slices(
    positions: torch.Tensor,
    numbers: torch.Tensor,
    extent: tuple[float, float],
    gpts: tuple[int, int],
    slice_thickness: float = 2.0,
    num_slices: int | None = None,
    rms_displacements: Mapping[int, float] | None = None,
) -> torch.Tensor:
    """Projected potential of each slice, on a periodic grid.

    Args:
        positions: Atom positions [Angstrom], shape (N, 3); x and y in the cell (positions
            outside wrap around, the cell is periodic), z in ``[0, num_slices * dz)``.
        numbers: Atomic numbers, shape (N,).
        extent: Cell size in x and y [Angstrom].
        gpts: Grid points in x and y.
        slice_thickness: Slice thickness dz [Angstrom].
        num_slices: Number of slices; by default just enough to hold every atom.
        rms_displacements: Per atomic number, an rms displacement per direction [Angstrom]
            that smears the potential (Debye-Waller factor); None for static atoms.

    Returns:
        float32 tensor of shape (num_slices, Nx, Ny) [V * Angstrom], on ``positions``' device.

    Example:
        >>> atoms = torch.tensor([[2.0, 2.0, 0.5]])
        >>> slices = projected_potential_slices(atoms, torch.tensor([79]), (4.0, 4.0), (40, 40))
        >>> slices.shape, int(slices[0].argmax()) == 20 * 40 + 20
        (torch.Size([1, 40, 40]), True)
    """
    positions, numbers = _check_atoms(positions, numbers)
    if len(extent) != 2 or min(extent) <= 0:
        msg = f"extent must be two positive lengths in Angstrom, got {extent!r}"
        raise ValueError(msg)
    if len(gpts) != 2 or min(gpts) < 2:
        msg = f"gpts must be two grid sizes >= 2, got {gpts!r}"
        raise ValueError(msg)
    if not slice_thickness > 0:
        msg = f"slice_thickness must be positive, got {slice_thickness!r}"
        raise ValueError(msg)
    needed = slice_count(positions, slice_thickness)
    if num_slices is None:
        num_slices = needed
    elif num_slices < needed:
        msg = (
            f"num_slices={num_slices} cannot hold atoms up to z={float(positions[:, 2].max()):.3f}"
        )
        raise ValueError(msg)

    device = positions.device
    sampling = (extent[0] / gpts[0], extent[1] / gpts[1])
    kx, ky = spatial_frequencies(gpts, sampling, device=device, dtype=torch.float64)
    rms_of = rms_displacements or {}
    form_factors = {
        number: _form_factor(number, gpts, sampling, float(rms_of.get(number, 0.0)), str(device))
        for number in torch.unique(numbers).tolist()
    }

    slice_index = torch.floor(positions[:, 2] / slice_thickness).long()
    occupied = torch.unique(slice_index).tolist()
    kx_row, ky_row = kx[:, 0], ky[0, :]
    one = torch.ones(1, dtype=torch.float64, device=device)
    # Only occupied slices get a spectrum and an inverse FFT; the others stay zero.
    spectra = torch.zeros((len(occupied), *gpts), dtype=torch.complex64, device=device)
    for row, index in enumerate(occupied):
        in_slice = slice_index == index
        for number, factor in form_factors.items():
            chosen = in_slice & (numbers == number)
            if not bool(chosen.any()):
                continue
            xy = positions[chosen, :2].to(torch.float64)
            # exp(-2 pi i q.r) = exp(-2 pi i kx x) * exp(-2 pi i ky y): one matrix product.
            phase_x = torch.polar(one, -2 * math.pi * xy[:, :1] * kx_row).to(torch.complex64)
            phase_y = torch.polar(one, -2 * math.pi * xy[:, 1:] * ky_row).to(torch.complex64)
            spectra[row] += factor * (phase_x.T @ phase_y)
    scale = POTENTIAL_PREFACTOR / (sampling[0] * sampling[1])
    slices = torch.zeros((num_slices, *gpts), dtype=torch.float32, device=device)
    if occupied:
        slices[occupied] = (torch.fft.ifft2(spectra).real * scale).to(torch.float32)
    return slices


@lru_cache(maxsize=64)
def _form_factor(
    number: int, gpts: tuple[int, int], sampling: tuple[float, float], rms: float, device: str
) -> torch.Tensor:
    """f_e(q) on the grid, Debye-Waller damped by ``rms``; cached (the same grids recur)."""
    kx, ky = spatial_frequencies(gpts, sampling, device=device, dtype=torch.float64)
    q2 = kx**2 + ky**2
    factor = scattering_factor(number, q2)
    if rms:
        factor = factor * torch.exp(-2 * math.pi**2 * rms**2 * q2)
    return factor.to(torch.complex64)


def _check_atoms(
    positions: torch.Tensor, numbers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    positions = torch.as_tensor(positions)
    numbers = torch.as_tensor(numbers, device=positions.device)
    if positions.ndim != 2 or positions.shape[1] != 3:
        msg = f"positions must have shape (N, 3), got {tuple(positions.shape)}"
        raise ValueError(msg)
    if numbers.shape != positions.shape[:1]:
        msg = f"numbers must have shape ({positions.shape[0]},), got {tuple(numbers.shape)}"
        raise ValueError(msg)
    if not bool(torch.isfinite(positions).all()):
        msg = "positions must be finite, got NaN or inf"
        raise ValueError(msg)
    if positions.numel() and float(positions[:, 2].min()) < 0:
        lowest = float(positions[:, 2].min())
        msg = f"atoms must have z >= 0 (slices start at z=0), got z={lowest:.3f}"
        raise ValueError(msg)
    for number in torch.unique(numbers).tolist():
        element_symbol(number)  # raises for an unknown atomic number
    return positions, numbers.long()
