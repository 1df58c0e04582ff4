"""Simulate one structure file (any format ASE reads) to an HRTEM image and its mask.

    python -m lightning_synth.generators.hrtem particle.xyz --defocus 200 --cs=-1.5e5
        --frozen-phonons 8 --dose 500 --carbon-thickness 40 --out results/particle

writes ``<out>.npy`` (image, float32, 1 = vacuum), ``<out>_mask.npy`` (int64), PNG previews of
both, and ``<out>.json`` (what was simulated). Lengths in Angstrom, angles in mrad or rad as
named, energy in eV. Write negative values as ``--cs=-1.5e5`` (with ``=``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from ase import Atoms, io

from lightning_synth.generators.hrtem.ctf import Optics
from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig
from lightning_synth.generators.hrtem.structures import amorphous_carbon


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_synth.generators.hrtem",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("structure", type=Path, help="structure file (xyz, cif, POSCAR, ...)")
    parser.add_argument("--out", type=Path, required=True, help="output path prefix")
    parser.add_argument(
        "--extent", type=float, help="field of view [A]; default: fits the structure"
    )
    parser.add_argument("--sampling", type=float, default=0.05, help="simulation sampling [A]")
    parser.add_argument("--detector-pixel", type=float, default=0.2, help="detector pixel [A]")
    parser.add_argument("--slice-thickness", type=float, default=2.0)
    parser.add_argument("--energy", type=float, default=300e3)
    parser.add_argument("--defocus", type=float, default=0.0, help="[A], positive = underfocus")
    parser.add_argument("--cs", type=float, default=0.0, help="C30 [A]")
    parser.add_argument("--astigmatism", type=float, default=0.0, help="C12 [A]")
    parser.add_argument("--astigmatism-angle", type=float, default=0.0, help="[rad]")
    parser.add_argument("--coma", type=float, default=0.0, help="C21 [A]")
    parser.add_argument("--coma-angle", type=float, default=0.0, help="[rad]")
    parser.add_argument("--three-fold", type=float, default=0.0, help="C23 [A]")
    parser.add_argument("--three-fold-angle", type=float, default=0.0, help="[rad]")
    parser.add_argument("--aperture", type=float, help="objective aperture [mrad]")
    parser.add_argument("--focal-spread", type=float, default=0.0, help="defocus spread, std [A]")
    parser.add_argument("--illumination-spread", type=float, default=0.0, help="std [mrad]")
    parser.add_argument("--frozen-phonons", type=int, default=0, help="0 for static atoms")
    parser.add_argument("--plasmon", action="store_true", help="add the plasmon background")
    parser.add_argument("--mtf", type=float, help="detector MTF half frequency [cycles/pixel]")
    parser.add_argument("--dose", type=float, help="electron dose [e/A^2]; noiseless if omitted")
    parser.add_argument("--carbon-thickness", type=float, default=0.0, help="carbon support [A]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="torch device; CUDA when available")
    return parser


def _preview(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    Image.fromarray((scaled * 255).astype(np.uint8)).save(path)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """Run the command; returns what it wrote to ``<out>.json``."""
    args = _parser().parse_args(argv)
    if not args.structure.is_file():
        msg = f"structure file not found: {args.structure}"
        raise SystemExit(msg)
    try:
        atoms = cast(Atoms, io.read(args.structure, index=-1))
    except Exception as error:  # ASE raises many kinds for unreadable files
        msg = f"cannot read {args.structure} as a structure: {error}"
        raise SystemExit(msg) from error
    if len(atoms) == 0:
        msg = f"{args.structure} holds no atoms"
        raise SystemExit(msg)
    atoms.positions -= atoms.positions.min(axis=0)
    size = atoms.positions.max(axis=0)
    extent = args.extent or float(max(size[0], size[1]) + 8.0)
    pixels = math.ceil(extent / args.detector_pixel)
    extent = pixels * args.detector_pixel
    atoms.positions[:, :2] += (extent - size[:2]) / 2
    atoms.positions[:, 2] += args.carbon_thickness + 1.0

    config = SimulationConfig(
        detector_pixels=pixels,
        detector_pixel_size=args.detector_pixel,
        sampling=args.sampling,
        slice_thickness=args.slice_thickness,
        energy=args.energy,
        particle_diameter=(1.0, 1.0),  # unused: the specimen comes from the file
        thermal="frozen_phonon" if args.frozen_phonons > 0 else "static",
        frozen_phonons=max(1, args.frozen_phonons),
        plasmon=args.plasmon,
        mtf=args.mtf is not None,
        mtf_half_frequency=(args.mtf or 0.5, args.mtf or 0.5),
        dose=(args.dose, args.dose) if args.dose else None,
    )
    optics = Optics(
        energy=args.energy,
        defocus=args.defocus,
        cs=args.cs,
        astigmatism=args.astigmatism,
        astigmatism_angle=args.astigmatism_angle,
        coma=args.coma,
        coma_angle=args.coma_angle,
        three_fold_astigmatism=args.three_fold,
        three_fold_angle=args.three_fold_angle,
        aperture=args.aperture,
        focal_spread=args.focal_spread,
        illumination_spread=args.illumination_spread,
    )
    rng = np.random.default_rng(args.seed)
    carbon = (
        amorphous_carbon((extent, extent), args.carbon_thickness, rng)
        if args.carbon_thickness > 0
        else atoms[:0]
    )
    simulator = HRTEMSimulator(config, device=args.device)
    generator = torch.Generator().manual_seed(args.seed)
    sample = simulator.simulate_specimen([atoms], carbon, optics, rng, generator, seed=args.seed)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    image = sample["image"][0].numpy()
    mask = sample["mask"].numpy()
    np.save(args.out.with_suffix(".npy"), image)
    np.save(args.out.with_name(args.out.name + "_mask.npy"), mask)
    _preview(image, args.out.with_suffix(".png"))
    _preview(mask.astype(np.float32), args.out.with_name(args.out.name + "_mask.png"))
    record = {
        "structure": str(args.structure),
        "atoms": len(atoms),
        "extent": round(extent, 6),
        "detector_pixel": args.detector_pixel,
        "sampling": args.sampling,
        **{k: v for k, v in sample["meta"].items() if k != "particles"},
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}.npy ({image.shape[0]}x{image.shape[1]}), mask, previews and metadata")
    return record
