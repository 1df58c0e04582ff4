"""Accuracy of the exit wave at a given sampling, ours and abTEM's, against a converged one.

The reference is this project's multislice at 4x finer sampling (checked converged against
2x finer). Both simulations at the coarse sampling are compared with it after a common band
limit (90% of the coarse grid's 2/3-Nyquist aperture), by the NCC of the exit-wave intensity.

    python benchmarks/hrtem_convergence.py [--sampling 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lightning_synth.generators.hrtem import multislice, projected_potential_slices


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def band_limited(wave: np.ndarray, size: int, extent: float, band: float) -> np.ndarray:
    """Crop the spectrum of ``wave`` to a ``size`` grid and keep |k| < ``band``."""
    spectrum = np.fft.fftshift(np.fft.fft2(wave))
    n, half = wave.shape[0], size // 2
    spectrum = spectrum[n // 2 - half : n // 2 - half + size, n // 2 - half : n // 2 - half + size]
    spectrum = np.fft.ifftshift(spectrum) * (size / n) ** 2
    k = np.fft.fftfreq(size, extent / size)
    return np.fft.ifft2(spectrum * (np.hypot(k[:, None], k[None]) < band))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sampling", type=float, default=0.05)
    args = parser.parse_args()
    import abtem
    import dask
    from ase.cluster import Octahedron

    abtem.config.set({"fft": "numpy"})
    dask.config.set(scheduler="synchronous")
    atoms = Octahedron("Au", 5, cutoff=2)
    extent, slices = 16.0, 9
    atoms.cell = [extent, extent, 2.0 * slices]
    atoms.center()
    positions, numbers = torch.tensor(atoms.positions), torch.tensor(atoms.numbers)
    coarse = round(extent / args.sampling)
    band = 0.9 * (2 / 3) / (2 * args.sampling)

    def ours(sampling: float) -> np.ndarray:
        n = round(extent / sampling)
        potential = projected_potential_slices(
            positions, numbers, (extent, extent), (n, n), 2.0, num_slices=slices
        )
        return multislice(potential, 300e3, (sampling, sampling), 2.0).numpy()

    reference = {
        factor: band_limited(ours(args.sampling / factor), coarse, extent, band)
        for factor in (2, 4)
    }
    print(f"sampling {args.sampling} A, {len(atoms)} Au atoms, {slices} slices of 2 A")
    print(
        "reference converged: NCC(2x finer, 4x finer) = "
        f"{ncc(abs(reference[2]) ** 2, abs(reference[4]) ** 2):.5f}"
    )
    potential = abtem.Potential(
        atoms,
        gpts=(coarse, coarse),
        slice_thickness=2.0,
        parametrization="kirkland",
        projection="infinite",
    )
    theirs = abtem.PlaneWave(energy=300e3).multislice(potential).compute().array
    for name, wave in (("lightning_synth", ours(args.sampling)), ("abTEM", theirs)):
        limited = band_limited(wave, coarse, extent, band)
        print(
            f"{name:>16}: NCC with the reference = "
            f"{ncc(abs(limited) ** 2, abs(reference[4]) ** 2):.5f}"
        )


if __name__ == "__main__":
    main()
