"""Speed of the HRTEM simulator: images/s per fidelity tier, where the time goes, and abTEM.

    python benchmarks/bench_hrtem.py [--sides 256 512] [--samples 3] [--no-abtem]
                                     [--abtem-only | --methods-only]

1. Images/s per fidelity tier for the default field (Au particle on amorphous carbon, 0.1 A
   simulation sampling, 8 frozen phonons from the ``thermal`` tier on), at 256 and 512
   detector pixels of 0.2 A; warm runs, on the CPU (and on CUDA when present).
2. Where the time goes for one ``full``-tier image: carbon potential, particle potentials,
   multislice, lens and detector.
3. The same specimen, sampling, slices, phonon count and optics simulated by abTEM on the same
   machine (abTEM's first call compiles; it is run once before timing). abTEM uses numpy's
   FFT and dask's synchronous scheduler, the set-up its oracle test uses. The ratio is
   abTEM's time over ours; the NCC of the two static images checks that they agree.
4. The two structure-factor methods of the potential, per slice, by atoms per slice and grid
   size (where ``method="auto"`` switches, ``GRID_MIN_ATOMS``), with their difference.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from lightning_synth.generators.hrtem import (
    HRTEMSimulator,
    Optics,
    SimulationConfig,
    contrast_transfer,
    image_intensity,
    multislice,
    projected_potential_slices,
)


def timed(function, *args, repeats: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    """Median wall time of ``repeats`` calls (CUDA synchronised), and the last result."""
    times, result = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def config_for(side: int, tier: str) -> SimulationConfig:
    diameter = (20.0, 40.0) if side <= 256 else (30.0, 80.0)
    return SimulationConfig(detector_pixels=side, particle_diameter=diameter, fidelity=tier)  # type: ignore[arg-type]


def tiers(sides: list[int], samples: int, device: str) -> None:
    print(f"\n1. images/s per tier ({device}, {samples} warm samples each)")
    print(
        f"{'side':>5} "
        + " ".join(f"{t:>12}" for t in ("basic", "thermal", "aberrations", "plasmon", "full"))
    )
    for side in sides:
        rates = []
        for tier in ("basic", "thermal", "aberrations", "plasmon", "full"):
            simulator = HRTEMSimulator(config_for(side, tier), device=device)
            simulator.simulate(0)  # warm-up
            seconds, _ = timed(
                lambda s=simulator: [s.simulate(seed) for seed in range(1, samples + 1)]
            )
            rates.append(samples / seconds)
        print(f"{side:>5} " + " ".join(f"{r:>12.2f}" for r in rates))


def breakdown(side: int, device: str) -> None:
    config = config_for(side, "full")
    simulator = HRTEMSimulator(config, device=device)
    rng = np.random.default_rng(3)
    t_specimen, (particles, carbon, _) = timed(simulator.draw_specimen, rng)
    optics = simulator.draw_optics(rng)
    t_mask, _ = timed(simulator.mask_from_particles, particles, repeats=3)
    everything = carbon.copy()
    for particle in particles:
        everything += particle
    slices = int(everything.positions[:, 2].max() // config.slice_thickness) + 2
    t_carbon, background = timed(simulator._potential, carbon, slices, True, repeats=3)
    t_particle, particle_potential = timed(
        simulator._potential, particles[0], slices, False, repeats=3
    )
    potential = background + particle_potential
    sampling = (config.sampling, config.sampling)
    # As the simulator does: the film below the particle is propagated once per image.
    lowest = float(particles[0].positions[:, 2].min()) - 6 * 0.0886
    split = max(0, int(lowest // config.slice_thickness))
    t_film, incident = timed(
        multislice, background[:split], config.energy, sampling, config.slice_thickness, repeats=3
    )
    t_multislice, wave = timed(
        multislice,
        potential[split:],
        config.energy,
        sampling,
        config.slice_thickness,
        wave=incident,
        repeats=3,
    )
    gpts = (config.gpts, config.gpts)
    t_transfer, transfer = timed(contrast_transfer, optics, gpts, sampling, repeats=3)
    t_lens, intensity = timed(image_intensity, wave, None, sampling, transfer, repeats=3)
    t_detector, _ = timed(simulator.detect, intensity, rng, torch.Generator().manual_seed(0))
    phonons = config.frozen_phonons
    total = (
        t_specimen
        + t_mask
        + t_carbon
        + t_film
        + 2 * t_transfer
        + phonons * (t_particle + t_multislice + 2 * t_lens)
        + t_detector
    )
    print(f"\n2. where the time goes, one full-tier {side}px image ({device}): {total:.2f} s")
    print(
        f"   grid {config.gpts}^2, {slices} slices, "
        f"{len(carbon)} carbon + {len(particles[0])} Au atoms"
    )
    for name, seconds, count in (
        ("specimen: film and particle atoms (once)", t_specimen, 1),
        ("carbon potential (once)", t_carbon, 1),
        (f"multislice, film slices 0-{split - 1} (once)", t_film, 1),
        ("particle potential (per phonon)", t_particle, phonons),
        ("multislice, particle slices (per phonon)", t_multislice, phonons),
        ("lens transfer functions (once)", 2 * t_transfer, 1),
        ("lens, elastic + plasmon (per phonon)", 2 * t_lens, phonons),
        ("detector (once)", t_detector, 1),
        ("masks (once)", t_mask, 1),
    ):
        share = 100 * seconds * count / total
        print(f"   {name:<42} {seconds * count:>7.2f} s  {share:>5.1f}%")


def against_abtem(phonons: int, repeats: int) -> None:
    import abtem
    import dask
    from ase.cluster import Octahedron

    from lightning_synth.generators.hrtem.structures import amorphous_carbon

    abtem.config.set({"fft": "numpy"})
    dask.config.set(scheduler="synchronous")
    extent, thickness, sampling, dz, energy = 51.2, 40.0, 0.1, 2.0, 300e3
    rng = np.random.default_rng(0)
    carbon = amorphous_carbon((extent, extent), thickness, rng)
    particle = Octahedron("Au", 9, cutoff=3)
    particle.positions += np.array(
        [extent / 2, extent / 2, thickness + 16.0]
    ) - particle.positions.mean(0)
    atoms = carbon + particle
    atoms.cell = [extent, extent, dz * (int(atoms.positions[:, 2].max() // dz) + 2)]
    atoms.pbc = True
    gpts = (round(extent / sampling), round(extent / sampling))
    optics = Optics(defocus=150.0, cs=-1.5e5, focal_spread=30.0)
    ctf = abtem.CTF(energy=energy, defocus=150.0, Cs=-1.5e5, focal_spread=np.sqrt(2) * 30.0)
    sigmas = {"Au": 0.0886, "C": 0.08}
    slices = round(atoms.cell[2, 2] / dz)

    def ours_static() -> torch.Tensor:
        v = projected_potential_slices(
            torch.tensor(atoms.positions),
            torch.tensor(atoms.numbers),
            (extent, extent),
            gpts,
            dz,
            num_slices=slices,
        )
        return image_intensity(
            multislice(v, energy, (sampling, sampling), dz), optics, (sampling, sampling)
        )

    def abtem_static() -> np.ndarray:
        potential = abtem.Potential(
            atoms, gpts=gpts, slice_thickness=dz, parametrization="kirkland", projection="infinite"
        )
        return (
            abtem.PlaneWave(energy=energy)
            .multislice(potential)
            .apply_ctf(ctf)
            .intensity()
            .compute()
            .array
        )

    def ours_phonons() -> torch.Tensor:
        total = torch.zeros(gpts)
        generator = np.random.default_rng(1)
        rms = np.array([sigmas[s] for s in atoms.get_chemical_symbols()])[:, None]
        for _ in range(phonons):
            moved = atoms.positions + generator.normal(size=atoms.positions.shape) * rms
            moved[:, 2] = np.clip(moved[:, 2], 0.0, None)
            v = projected_potential_slices(
                torch.tensor(moved),
                torch.tensor(atoms.numbers),
                (extent, extent),
                gpts,
                dz,
                num_slices=slices,
            )
            total += image_intensity(
                multislice(v, energy, (sampling, sampling), dz), optics, (sampling, sampling)
            )
        return total / phonons

    def abtem_phonons() -> np.ndarray:
        frozen = abtem.FrozenPhonons(atoms, num_configs=phonons, sigmas=sigmas, seed=1)
        potential = abtem.Potential(
            frozen, gpts=gpts, slice_thickness=dz, parametrization="kirkland", projection="infinite"
        )
        images = abtem.PlaneWave(energy=energy).multislice(potential).apply_ctf(ctf).intensity()
        return images.mean(0).compute().array

    abtem_static()  # compile
    t_ours, ours = timed(ours_static, repeats=repeats)
    t_ab, theirs = timed(abtem_static, repeats=repeats)
    a, b = ours.numpy() - ours.numpy().mean(), theirs - theirs.mean()
    ncc = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    print(
        f"\n3. against abTEM (CPU, {torch.get_num_threads()} threads): {len(atoms)} atoms, "
        f"grid {gpts[0]}^2, {slices} slices"
    )
    print(
        f"   static image:        ours {t_ours:.2f} s, abTEM {t_ab:.2f} s, "
        f"ratio {t_ab / t_ours:.2f}x, image NCC {ncc:.4f}"
    )
    t_ours, _ = timed(ours_phonons, repeats=1)
    t_ab, _ = timed(abtem_phonons, repeats=1)
    print(
        f"   {phonons} frozen phonons: ours {t_ours:.2f} s, abTEM {t_ab:.2f} s, "
        f"ratio {t_ab / t_ours:.2f}x"
    )


def structure_factor_methods(sides: list[int], device: str) -> None:
    print(f"\n4. potential per slice, exact sums vs gridded ({device}), ms; relative L2 difference")
    generator = torch.Generator().manual_seed(0)
    counts = (16, 32, 64, 128, 256, 512)
    print(f"{'grid':>6} " + " ".join(f"{n:>13}" for n in counts))
    for gpts in sides:
        extent = gpts * 0.1
        cells = []
        for count in counts:
            positions = torch.rand(10 * count, 3, generator=generator, dtype=torch.float64)
            positions[:, :2] *= extent
            positions[:, 2] += 2.0 * torch.arange(10, dtype=torch.float64).repeat_interleave(count)
            numbers = torch.full((10 * count,), 79)
            arguments = (positions.to(device), numbers.to(device), (extent, extent), (gpts, gpts))
            results = {}
            for method in ("exact", "gridded"):
                projected_potential_slices(*arguments, method=method)  # warm-up
                seconds, results[method] = timed(
                    projected_potential_slices, *arguments, method=method, repeats=3
                )
                results[method + "_ms"] = seconds / 10 * 1e3
            difference = float(
                (results["gridded"] - results["exact"]).norm() / results["exact"].norm()
            )
            cells.append(f"{results['exact_ms']:5.1f}/{results['gridded_ms']:5.1f}")
        print(f"{gpts:>6} " + " ".join(f"{c:>13}" for c in cells) + f"   (diff {difference:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--phonons", type=int, default=4)
    parser.add_argument("--no-abtem", action="store_true")
    parser.add_argument("--abtem-only", action="store_true", help="only part 3")
    parser.add_argument("--methods-only", action="store_true", help="only part 4")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CUDA {torch.cuda.is_available()}"
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.methods_only:
        for device in devices:
            structure_factor_methods([256, 512, 1024], device)
        return
    for device in [] if args.abtem_only else devices:
        tiers(args.sides, args.samples, device)
        breakdown(args.sides[0], device)
    if not args.no_abtem:
        against_abtem(args.phonons, repeats=2)
    for device in [] if args.abtem_only else devices:
        structure_factor_methods([256, 512, 1024], device)


if __name__ == "__main__":
    main()
