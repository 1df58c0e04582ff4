"""An HRTEM test set that our simulator did not make, and the scores of a checkpoint on it.

The images are rendered by abTEM (the ``oracle`` extra; GPL, so only this script and the tests
import it): Lobato potentials, 0.05 A sampling, 4 frozen phonons, the exit waves imaged through
abTEM's CTF with the residual aberrations of a corrected microscope, then a detector written
here (a Gaussian point-spread, pixel binning, Poisson noise). The specimens are written apart
from :mod:`lightning_synth.generators.hrtem` too: Au particles from ASE's cluster builders
(Wulff shapes, Ino decahedra, Mackay icosahedra) of 2-5 nm, one to three per field, some cut
by the image edge, on 2-8 nm of amorphous carbon relaxed from a uniform random start. Several
particles rest side by side (they may touch, never overlap; a field of several is large
enough to hold them, and one that still finds no place is left out and recorded so). Every
condition is drawn from a generator seeded by this set's own seed and the image's index.

**Masks** follow the project's documented rule (``docs/hrtem.md``), computed from abTEM's own
potential of the particle atoms alone: the projected phase (interaction constant times the
projected potential), smoothed by a 1 A Gaussian, above pi/12, holes filled, then binned to
detector pixels (a pixel is particle when at least half of it is). Instance masks record which
particle each pixel belongs to, for per-size scores.

Where a particle is cut by the image edge, the simulated cell is the field plus a 12 A margin
on every side (abTEM's cell is periodic), so the particle continues outside the image instead
of wrapping around to the other side.

The Au set is committed (``benchmarks/data/hrtem_cross_simulator/Au``, 36 images, 6 MB);
``render`` rebuilds a set in place (resumable: finished images are kept; ``--workers``
processes in parallel). Score any checkpoint of the segmentation recipe::

    python benchmarks/hrtem_cross_simulator.py render [--material CdSe] [--workers 2]
    python benchmarks/hrtem_cross_simulator.py score CHECKPOINT [CHECKPOINT ...] [--json FILE]
    python benchmarks/hrtem_cross_simulator.py compare INDEX [INDEX ...] [--sampling 0.1]

Scores are pixel counts pooled over the set (F1, IoU, precision, recall), overall and per bin
of particle size (each image's largest particle) and of dose; the mean of per-image F1 is
given too. ``score --corrupt`` first adds what a real camera records and abTEM does not (a
gain pattern, read-out noise, hot pixels, a bright edge), seeded per image.

``compare INDEX [INDEX ...] [--sampling 0.1]`` renders images of the set again with this
project's simulator (the same specimen, optics and dose) and prints each particle's contrast
in both and the correlation of the two images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

#: Each material's set: its own seed (never used by the training recipes), size, mask rule.
SETS: dict[str, dict[str, Any]] = {
    "Au": {"seed": 7_340_021, "size": 36, "threshold": math.pi / 12},
    "CdSe": {"seed": 7_340_022, "size": 24, "threshold": math.pi / 30},
}
#: Simulation sampling [A], detector pixel sizes [A] (whole multiples of it), field margin [A].
SAMPLING = 0.05
PIXEL_SIZES = (0.15, 0.2, 0.25)
MARGIN = 12.0
ENERGY = 300e3
PHONONS = 4
#: Room-temperature rms displacements [A] (from Debye-Waller factors).
RMS = {"Au": 0.0886, "Cd": 0.115, "Se": 0.10, "C": 0.08}
AU_LATTICE = 4.078
#: Wurtzite CdSe: a, c [A], u; volume per atom [A^3].
CDSE = {"a": 4.30, "c": 7.01, "u": 0.376}
CDSE_VOLUME = math.sqrt(3) / 2 * CDSE["a"] ** 2 * CDSE["c"] / 4
#: The goal's ranges.
DIAMETER = (20.0, 50.0)
CARBON = (20.0, 80.0)
DOSE = (100.0, 1200.0)
FIELD = (40.0, 64.0)
#: Fields of several particles hold them side by side: at least sqrt(PACKING * sum(diameter^2)).
PACKING = 2.5
#: Particles rest side by side on the film: in projection no atom of one is closer than this
#: [A] to another's (Au-Au bonds are 2.9 A); one that finds no such place in PLACEMENT_TRIES
#: is left out.
CONTACT = 2.5
PLACEMENT_TRIES = 1000
#: The set's version, in its manifest: scores of another version are not comparable. 2: several
#: particles side by side (in version 1 they could overlap, their atoms interpenetrating).
SET_VERSION = 2
#: Where the sets live: committed (6 MB for the Au set), rebuilt in place by ``render``.
SET_FOLDER = Path(__file__).parent / "data" / "hrtem_cross_simulator"
#: Seed of the camera defects that ``score --corrupt`` adds.
CORRUPTION_SEED = 7_340_023
#: Bins of the score tables.
SIZE_BINS = ((20.0, 30.0), (30.0, 40.0), (40.0, 50.0))
DOSE_BINS = ((100.0, 400.0), (400.0, 800.0), (800.0, 1200.0))
#: The mask rule's smoothing [A] (its threshold is the set's).
MASK_SMOOTHING = 1.0


# ---------------------------------------------------------------------------- conditions
def _smooth(number: int) -> bool:
    for factor in (2, 3, 5):
        while number % factor == 0:
            number //= factor
    return number == 1


def conditions(index: int, material: str = "Au") -> dict[str, Any]:
    """Every drawn setting of image ``index`` (a pure function of the set seed and index)."""
    rng = np.random.default_rng([SETS[material]["seed"], index])
    pixel_size = float(rng.choice(PIXEL_SIZES))
    field = float(rng.uniform(*FIELD))
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    particles = []
    for number in range(count):
        diameter = float(rng.uniform(*DIAMETER))
        if material == "CdSe":
            shape = "faceted"
        else:
            shape = str(rng.choice(["wulff", "decahedron", "icosahedron"], p=[0.6, 0.2, 0.2]))
        edge_cut = number == 0 and rng.random() < 0.3
        particles.append(
            {
                "diameter": diameter,
                "shape": shape,
                "edge_cut": bool(edge_cut),
                "zone_axis": bool(rng.random() < 0.6),
                "seed": int(rng.integers(2**31)),
            }
        )
    # Room for the largest particle with its surroundings, and for all of them side by side;
    # a margin only where one is cut.
    diameters = [p["diameter"] for p in particles]
    field = max(field, 1.25 * max(diameters))
    if len(diameters) > 1:
        field = max(field, math.sqrt(PACKING * sum(d**2 for d in diameters)))
    margin = MARGIN if any(p["edge_cut"] for p in particles) else 0.0
    side = round(field / pixel_size)
    # The simulation grid's side a product of 2, 3 and 5, for fast FFTs.
    while not _smooth(round((side * pixel_size + 2 * margin) / SAMPLING)):
        side += 1
    return {
        "index": index,
        "material": material,
        "pixel_size": pixel_size,
        "side": side,
        "extent": side * pixel_size,
        "margin": margin,
        "carbon_thickness": float(rng.uniform(*CARBON)),
        "particles": particles,
        "dose": float(rng.uniform(*DOSE)),
        "psf_sigma_pixels": float(rng.uniform(0.3, 0.8)),
        "optics": {
            "defocus": float(rng.uniform(-200.0, 200.0)),
            "Cs": float(rng.uniform(-3.0e5, 3.0e5)),
            "C12": float(rng.uniform(0.0, 50.0)),
            "phi12": float(rng.uniform(0.0, math.pi)),
            "C21": float(rng.uniform(0.0, 500.0)),
            "phi21": float(rng.uniform(0.0, 2 * math.pi)),
            "C23": float(rng.uniform(0.0, 500.0)),
            "phi23": float(rng.uniform(0.0, 2 * math.pi / 3)),
            "focal_spread": float(rng.uniform(20.0, 40.0)),
            "angular_spread": float(rng.uniform(0.05, 0.3)),
            "semiangle_cutoff": float(rng.choice([30.0, 40.0, math.inf])),
        },
        "seed": int(rng.integers(2**31)),
    }


# ---------------------------------------------------------------------------- specimen
def cdse_crystal(diameter: float, rng: np.random.Generator) -> Any:
    """A faceted wurtzite CdSe crystal: a hexagonal prism with its edges and corners cut."""
    from ase.build import bulk

    unit = bulk("CdSe", "wurtzite", a=CDSE["a"], c=CDSE["c"], u=CDSE["u"])
    radius = diameter / 2
    repeats = [2 * math.ceil(radius * 1.6 / length) + 1 for length in unit.cell.lengths()]
    block = unit.repeat(repeats)
    block.positions -= block.positions.mean(0)
    # Planes: six {10-10} sides, two (0001) caps and twelve {10-11}-like corner cuts, each
    # at a drawn distance; then scaled until the volume matches the wanted diameter.
    normals, spread = [], []
    for k in range(6):
        angle = math.pi / 3 * k + math.pi / 6
        normals.append([math.cos(angle), math.sin(angle), 0.0])
        spread.append(rng.uniform(0.9, 1.1))
        for sign in (1, -1):
            normals.append([0.7 * math.cos(angle), 0.7 * math.sin(angle), sign * 0.7])
            spread.append(rng.uniform(1.0, 1.25))
    normals += [[0, 0, 1.0], [0, 0, -1.0]]
    spread += [rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)]
    normals_array = np.array(normals) / np.linalg.norm(normals, axis=1, keepdims=True)
    distances = np.array(spread)
    wanted = math.pi / 6 * diameter**3 / CDSE_VOLUME
    low, high = 0.3 * radius, 2.0 * radius
    for _ in range(40):  # bisection on the scale of the planes
        scale = (low + high) / 2
        inside = (block.positions @ normals_array.T <= scale * distances).all(axis=1)
        low, high = (scale, high) if inside.sum() < wanted else (low, scale)
    return block[inside]


def make_particle(diameter: float, shape: str, zone_axis: bool, seed: int) -> Any:
    """A particle of about ``diameter`` (volume-equivalent), centred, oriented.

    Au: a Wulff shape, Ino decahedron or Mackay icosahedron; ``"faceted"``: wurtzite CdSe.
    """
    from ase.cluster import Decahedron, Icosahedron, wulff_construction
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    atoms_wanted = round(math.pi / 6 * diameter**3 * 4 / AU_LATTICE**3)
    if shape == "faceted":
        atoms = cdse_crystal(diameter, rng)
    elif shape == "wulff":
        energies = [1.0 + rng.uniform(-0.05, 0.1), 0.9 + rng.uniform(-0.05, 0.05), 1.1]
        surfaces = [(1, 0, 0), (1, 1, 1), (1, 1, 0)]
        atoms = wulff_construction(
            "Au", surfaces, energies, atoms_wanted, "fcc", rounding="closest"
        )
    elif shape == "decahedron":
        # An Ino decahedron of p shells along the edge; the count grows as about p^3.
        best = min(
            ((p, 1 + p // 4) for p in range(3, 20)),
            key=lambda pq: abs(len(Decahedron("Au", pq[0], pq[1], 0)) - atoms_wanted),
        )
        atoms = Decahedron("Au", best[0], best[1], 0)
    else:
        # A Mackay icosahedron of n shells holds (10 n^3 - 15 n^2 + 11 n - 3) / 3 atoms.
        shells = min(
            range(2, 20), key=lambda n: abs((10 * n**3 - 15 * n**2 + 11 * n - 3) / 3 - atoms_wanted)
        )
        atoms = Icosahedron("Au", shells)
    atoms.positions -= atoms.positions.mean(0)
    if zone_axis:  # a low-index axis near the beam: fringes show
        axes = (
            [[0, 0, 1], [1, 0, 0], [0, 1, 0]]  # wurtzite: [0001], [2-1-10], [01-10] (Cartesian)
            if shape == "faceted"
            else [[0, 0, 1], [1, 1, 0], [1, 1, 1]]
        )
        axis = np.array(axes[int(rng.integers(3))], dtype=float)
        onto, _ = Rotation.align_vectors([[0, 0, 1]], [axis / np.linalg.norm(axis)])
        spin = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
        tilt = Rotation.from_rotvec(np.radians(rng.uniform(0, 1.5)) * np.array([1.0, 0, 0]))
        rotation = spin * tilt * onto
    else:
        rotation = Rotation.random(random_state=int(rng.integers(2**31)))
    atoms.positions = rotation.apply(atoms.positions)
    return atoms


def carbon_film(size: tuple[float, float], thickness: float, seed: int) -> Any:
    """Amorphous carbon: uniform random atoms pushed apart until no pair is under 1.3 A."""
    from ase import Atoms
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    count = round(0.10 * size[0] * size[1] * thickness)
    positions = rng.uniform([0, 0, 0], [size[0], size[1], thickness], size=(count, 3))
    box = np.array([size[0], size[1], thickness * 4 + 20])  # periodic in x, y only
    for _ in range(30):
        positions[:, :2] %= size
        positions[:, 2] = np.clip(positions[:, 2], 0, thickness)
        pairs = cKDTree(positions, boxsize=box).query_pairs(1.3, output_type="ndarray")
        if not len(pairs):
            break
        delta = positions[pairs[:, 0]] - positions[pairs[:, 1]]
        delta[:, :2] -= np.round(delta[:, :2] / size) * size
        distance = np.linalg.norm(delta, axis=1, keepdims=True).clip(1e-3)
        push = 0.5 * (1.3 - distance) * delta / distance
        np.add.at(positions, pairs[:, 0], push)
        np.add.at(positions, pairs[:, 1], -push)
    return Atoms("C" * count, positions=positions, cell=[size[0], size[1], thickness])


def specimen(case: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The carbon film and the placed particles, in a cell of the field plus its margin.

    Particles rest side by side on the film: they may touch but not interpenetrate (no atom
    within ``CONTACT`` of another particle's). One that finds no place is left out; its record
    says ``"placed": false`` and it is in neither the image nor the masks.
    """
    from scipy.spatial import cKDTree

    extent, thickness, margin = case["extent"], case["carbon_thickness"], case["margin"]
    cell = extent + 2 * margin
    rng = np.random.default_rng(case["seed"])
    film = carbon_film((cell, cell), thickness, int(rng.integers(2**31)))
    placed: list[tuple[np.ndarray, float, Any]] = []
    particles = []
    for record in case["particles"]:
        atoms = make_particle(
            record["diameter"], record["shape"], record["zone_axis"], record["seed"]
        )
        radius = float(np.linalg.norm(atoms.positions[:, :2], axis=1).max()) + 1.0
        record["radius_projected"] = radius - 1.0
        record["placed"] = False
        for _ in range(PLACEMENT_TRIES):
            if record["edge_cut"]:  # centre near an edge: cut by up to the margin
                depth = rng.uniform(0.3, 0.9) * min(radius, margin)
                along = rng.uniform(radius, extent - radius)
                side = int(rng.integers(4))
                inside = radius - depth
                centre = [
                    (inside, along),
                    (extent - inside, along),
                    (along, inside),
                    (along, extent - inside),
                ][side]
            else:
                low, high = min(radius, extent / 2), max(extent - radius, extent / 2)
                centre = tuple(rng.uniform(low, high, size=2))
            centre_xy = np.array(centre)
            # Only particles whose outlines meet can be too close; then ask their atoms.
            near = [
                tree
                for c, r, tree in placed
                if np.linalg.norm(centre_xy - c) < radius + r + CONTACT
            ]
            moved = atoms.positions[:, :2] + centre_xy
            if all(tree.query(moved)[0].min() >= CONTACT for tree in near):
                record["placed"] = True
                break
        if not record["placed"]:
            continue
        placed.append((centre_xy, radius, cKDTree(moved)))
        height = thickness + 1.5 - atoms.positions[:, 2].min()
        atoms.positions += [centre_xy[0] + margin, centre_xy[1] + margin, height]
        record["centre"] = [float(centre_xy[0]), float(centre_xy[1])]
        particles.append(atoms)
    return film, particles


# ---------------------------------------------------------------------------- rendering
def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    h, w = array.shape
    return (
        array[: h // factor * factor, : w // factor * factor]
        .reshape(h // factor, factor, w // factor, factor)
        .mean(axis=(1, 3))
    )


def render_one(index: int, out: Path, material: str = "Au") -> dict[str, Any]:
    """Render image ``index`` into ``out`` (skipped when already there); its record."""
    path = out / f"{index:03d}.npz"
    if path.exists():
        record: dict[str, Any] = json.loads(str(np.load(path)["record"]))
        if record.get("version", 1) != SET_VERSION:
            msg = (
                f"{path} is of version {record.get('version', 1)} of the set, not "
                f"{SET_VERSION}: remove the folder's images to render this version"
            )
            raise ValueError(msg)
        return record
    import abtem
    import dask
    from abtem.core.energy import energy2sigma
    from scipy import ndimage

    abtem.config.set({"fft": "numpy"})
    dask.config.set(scheduler="synchronous")
    start = time.perf_counter()
    case = {**conditions(index, material), "version": SET_VERSION}
    film, particles = specimen(case)
    cell = case["extent"] + 2 * case["margin"]
    gpts = round(cell / SAMPLING)
    atoms = film.copy()
    for particle in particles:
        atoms += particle
    height = 2.0 * (math.floor(atoms.positions[:, 2].max() / 2.0) + 2)
    atoms.cell = [cell, cell, height]
    atoms.pbc = True
    sigmas = {symbol: RMS[symbol] for symbol in set(atoms.get_chemical_symbols())}
    frozen = abtem.FrozenPhonons(atoms, num_configs=PHONONS, sigmas=sigmas, seed=case["seed"])
    potential = abtem.Potential(
        frozen,
        gpts=(gpts, gpts),
        slice_thickness=2.0,
        parametrization="lobato",
        projection="infinite",
    )
    optics = dict(case["optics"])
    ctf = abtem.CTF(
        energy=ENERGY,
        semiangle_cutoff=optics.pop("semiangle_cutoff"),
        # abTEM's spreads are sqrt(2) times the standard deviations drawn here.
        focal_spread=math.sqrt(2) * optics.pop("focal_spread"),
        angular_spread=math.sqrt(2) * optics.pop("angular_spread"),
        aberration_coefficients={"C10": -optics.pop("defocus"), "C30": optics.pop("Cs"), **optics},
    )
    waves = abtem.PlaneWave(energy=ENERGY).multislice(potential)
    intensity = waves.apply_ctf(ctf).intensity().mean(0).compute().array
    pixel = case["pixel_size"]
    binning = round(pixel / SAMPLING)
    margin = round(case["margin"] / SAMPLING)
    crop = slice(margin, margin + case["side"] * binning)
    # Detector: a Gaussian point spread of the pixel scale, binning, Poisson noise.
    blurred = ndimage.gaussian_filter(intensity, case["psf_sigma_pixels"] * binning, mode="wrap")
    expected = block_mean(blurred[crop, crop], binning) * case["dose"] * pixel**2
    noisy = np.random.default_rng(case["seed"]).poisson(np.clip(expected, 0, None))
    # Masks: abTEM's projected potential of each particle alone.
    sigma = energy2sigma(ENERGY)
    instances = np.zeros((case["side"], case["side"]), dtype=np.int16)
    for number, particle in enumerate(particles, start=1):
        alone = particle.copy()
        alone.cell = [cell, cell, height]
        alone_potential = abtem.Potential(
            alone,
            gpts=(gpts, gpts),
            slice_thickness=height,
            parametrization="lobato",
            projection="infinite",
        )
        projected = alone_potential.build().compute().array.sum(0)
        phase = ndimage.gaussian_filter(sigma * projected, MASK_SMOOTHING / SAMPLING, mode="wrap")
        inside = ndimage.binary_fill_holes(phase > SETS[material]["threshold"])
        binned = block_mean(inside[crop, crop].astype(np.float32), binning) >= 0.5
        instances[binned & (instances == 0)] = number
    case["atoms"] = {"carbon": len(film), "gold": [len(p) for p in particles]}
    case["seconds"] = time.perf_counter() - start
    np.savez_compressed(
        path,
        image=noisy.astype(np.float32),
        instances=instances,
        record=json.dumps(case),
    )
    return case


def render(out: Path, count: int, workers: int, material: str = "Au") -> None:
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not (out / f"{i:03d}.npz").exists()]
    print(f"{count - len(todo)} of {count} images already rendered in {out}", flush=True)
    records: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(render_one, i, out, material): i for i in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            record = future.result()
            records[record["index"]] = record
            print(
                f"[{done}/{len(todo)}] image {record['index']}: {record['side']} px at "
                f"{record['pixel_size']} A, {len(record['particles'])} particle(s), "
                f"{record['seconds']:.0f} s",
                flush=True,
            )
    manifest = {
        "material": material,
        "seed": SETS[material]["seed"],
        "version": SET_VERSION,
        "images": [json.loads(str(np.load(out / f"{i:03d}.npz")["record"])) for i in range(count)],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {out / 'manifest.json'}")


# ---------------------------------------------------------------------------- scoring
def load_set(folder: Path) -> list[dict[str, Any]]:
    files = sorted(folder.glob("[0-9][0-9][0-9].npz"))
    if not files:
        msg = f"{folder} holds no rendered images; run the render command first"
        raise FileNotFoundError(msg)
    items = []
    for path in files:
        content = np.load(path)
        items.append(
            {
                "image": content["image"],
                "truth": content["instances"] > 0,
                "instances": content["instances"],
                "record": json.loads(str(content["record"])),
            }
        )
    return items


def largest_particle(record: dict[str, Any]) -> float:
    """The diameter [A] of the largest particle an image holds (left-out ones do not count)."""
    return max(p["diameter"] for p in record["particles"] if p.get("placed", True))


def particle_recall(
    items: Sequence[dict[str, Any]], masks: Sequence[np.ndarray]
) -> dict[str, dict[str, float]]:
    """Recall per kind of particle (shape, on or off a zone axis), from each one's own mask.

    Pixels pooled over the particles of a kind; ``missed`` counts those found at under 30%
    of their area.
    """
    table: dict[str, list[float]] = {}
    for mask, item in zip(masks, items, strict=True):
        placed = [p for p in item["record"]["particles"] if p.get("placed", True)]
        for number, particle in enumerate(placed, start=1):
            own = item["instances"] == number
            area = int(own.sum())
            if area == 0:  # cut away by the image's edge
                continue
            found = int((mask.astype(bool) & own).sum())
            axis = "zone axis" if particle["zone_axis"] else "off axis"
            row = table.setdefault(f"{particle['shape']}, {axis}", [0, 0, 0, 0])
            row[0] += found
            row[1] += area
            row[2] += 1
            row[3] += found < 0.3 * area
    return {
        kind: {"recall": found / area, "particles": count, "missed": missed}
        for kind, (found, area, count, missed) in sorted(table.items())
    }


def score_masks(items: Sequence[dict[str, Any]], masks: Sequence[np.ndarray]) -> dict[str, Any]:
    """Pooled scores of predicted ``masks``: overall, per size, dose and pixel-size bin.

    With the items' instance masks also the recall per kind of particle
    (:func:`particle_recall`).
    """
    from lightning_synth.predict import mask_scores as scores

    def counts(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return np.array([(mask & truth).sum(), mask.sum(), truth.sum()], dtype=np.float64)

    pairs = zip(masks, items, strict=True)
    per_image = [counts(mask.astype(bool), item["truth"]) for mask, item in pairs]
    result: dict[str, Any] = {"images": len(items), "overall": scores(sum(per_image))}
    result["mean_image_f1"] = float(np.mean([scores(c)["f1"] for c in per_image]))
    for name, bins, key in (
        ("size", SIZE_BINS, largest_particle),
        ("dose", DOSE_BINS, lambda r: r["dose"]),
        ("pixel", tuple((size, size) for size in PIXEL_SIZES), lambda r: r["pixel_size"]),
    ):
        table = {}
        for low, high in bins:
            last = high == bins[-1][1]
            chosen = [
                c
                for c, item in zip(per_image, items, strict=True)
                if low <= key(item["record"]) < high
                or ((last or low == high) and math.isclose(key(item["record"]), high))
            ]
            if chosen:
                label = f"{low:g}" if low == high else f"{low:g}-{high:g}"
                table[label] = {"images": len(chosen), **scores(sum(chosen))}
        result[name] = table
    if all("instances" in item for item in items):
        result["particles"] = particle_recall(items, masks)
    return result


def corrupt(image: np.ndarray, index: int) -> np.ndarray:
    """``image`` as a real camera would record it, which abTEM does not model.

    A 5% gain pattern, 3 electrons of read-out noise, 0.05% hot pixels (10-30 times the
    mean) and a bright 4-pixel strip along one edge.
    """
    from scipy import ndimage

    rng = np.random.default_rng([CORRUPTION_SEED, index])
    gain = ndimage.gaussian_filter(rng.normal(size=image.shape), 0.2 * min(image.shape))
    gain = 1 + 0.05 * (gain - gain.mean()) / gain.std()
    out = image * gain + rng.normal(0.0, 3.0, image.shape)
    hot = rng.random(image.shape) < 5e-4
    out[hot] = rng.uniform(10, 30, int(hot.sum())) * image.mean()
    out[:, :4] += 3 * image.mean()  # a bright strip along one edge
    return out.astype(np.float32)


def evaluate(
    checkpoint: Path, items: Sequence[dict[str, Any]], normalize_windows: bool = False
) -> dict[str, Any]:
    """The scores of a segmentation checkpoint on ``items`` (see :func:`score_masks`).

    ``normalize_windows`` normalises each window of ``segment`` on its own.
    """
    from lightning_synth.predict import load_task, segment, segmentation_settings
    from lightning_synth.tasks import SegmentationTask

    task = load_task(SegmentationTask, checkpoint)
    settings = segmentation_settings(checkpoint)  # its pixel size and normalisation
    start = time.perf_counter()
    masks = [
        segment(
            task,
            item["image"],
            item["record"]["pixel_size"],
            normalize_windows=normalize_windows,
            **settings,
        ).numpy()
        for item in items
    ]
    result = score_masks(items, masks)
    result["seconds"] = time.perf_counter() - start
    return result


def corrupted(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with :func:`corrupt` images."""
    return [{**item, "image": corrupt(item["image"], n)} for n, item in enumerate(items)]


def describe(name: str, result: dict[str, Any]) -> str:
    """A few lines of a checkpoint's scores."""
    overall = result["overall"]
    lines = [
        f"{name}: F1 {overall['f1']:.3f}, IoU {overall['iou']:.3f}, precision "
        f"{overall['precision']:.3f}, recall {overall['recall']:.3f}, mean image F1 "
        f"{result['mean_image_f1']:.3f} ({result['images']} images, {result['seconds']:.0f} s)"
    ]
    for table in ("size", "dose", "pixel"):
        for label, row in result.get(table, {}).items():
            lines.append(
                f"  {table} {label}: F1 {row['f1']:.3f}, IoU {row['iou']:.3f}, "
                f"P {row['precision']:.3f}, R {row['recall']:.3f} ({row['images']} images)"
            )
    for kind, row in result.get("particles", {}).items():
        lines.append(
            f"  {kind}: recall {row['recall']:.3f} ({row['particles']} particles, "
            f"{row['missed']} found at under 30%)"
        )
    return "\n".join(lines)


def score(
    checkpoints: Sequence[Path],
    folder: Path,
    json_out: Path | None,
    with_defects: bool = False,
    normalize_windows: bool = False,
) -> None:
    items = load_set(folder)
    if with_defects:
        items = corrupted(items)
    results = {}
    for checkpoint in checkpoints:
        results[str(checkpoint)] = evaluate(checkpoint, items, normalize_windows)
        print(describe(str(checkpoint), results[str(checkpoint)]))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=1))


def compare(folder: Path, index: int, sampling: float = SAMPLING) -> dict[str, Any]:
    """Image ``index`` of a set as abTEM made it and as the project's simulator makes it.

    The same specimen (atoms, film, placement: rebuilt from the set's seed), the same
    optics, pixel size and dose, and abTEM's sampling unless ``sampling`` [A] says otherwise
    (e.g. the recipe's 0.1; the image's pixel size must be a whole multiple of it); each
    code its own thermal displacements, detector blur and noise. Returns each particle's
    contrast in both images (mean intensity inside its mask over the mean of a ring of film
    3-8 A around it, minus one) and the normalised cross-correlation of the two images after
    a 1 A Gaussian (which averages the noise).
    """
    import torch
    from scipy import ndimage

    from lightning_synth.generators.hrtem.ctf import Optics
    from lightning_synth.generators.hrtem.simulator import HRTEMSimulator, SimulationConfig

    content = np.load(folder / f"{index:03d}.npz")
    record = json.loads(str(content["record"]))
    case = conditions(index, record["material"])
    film, particles = specimen(case)
    pixel, margin = case["pixel_size"], round(case["margin"] / case["pixel_size"])
    film.cell = [case["extent"] + 2 * case["margin"]] * 2 + [case["carbon_thickness"]]
    film.positions[:, 2] = np.clip(film.positions[:, 2], 0.0, None)
    optics = case["optics"]
    ours = HRTEMSimulator(
        SimulationConfig(
            detector_pixels=case["side"] + 2 * margin,
            detector_pixel_size=pixel,
            sampling=sampling,
            frozen_phonons=PHONONS,
            element="CdSe" if record["material"] == "CdSe" else "Au",
            dose=(record["dose"], record["dose"]),
        ),
        device="cpu",
    ).simulate_specimen(
        particles,
        film,
        Optics(
            energy=ENERGY,
            defocus=optics["defocus"],
            cs=optics["Cs"],
            astigmatism=optics["C12"],
            astigmatism_angle=optics["phi12"],
            coma=optics["C21"],
            coma_angle=optics["phi21"],
            three_fold_astigmatism=optics["C23"],
            three_fold_angle=optics["phi23"],
            aperture=None if math.isinf(optics["semiangle_cutoff"]) else optics["semiangle_cutoff"],
            focal_spread=optics["focal_spread"],
            illumination_spread=optics["angular_spread"],
        ),
        np.random.default_rng(case["seed"]),
        torch.Generator().manual_seed(case["seed"]),
    )
    inside = slice(margin, margin + case["side"])
    images = {
        "abtem": content["image"].astype(np.float64),
        "ours": ours["image"][0, inside, inside].numpy().astype(np.float64),
    }
    images = {name: image / image.mean() for name, image in images.items()}
    smooth = {name: ndimage.gaussian_filter(image, 1.0 / pixel) for name, image in images.items()}
    a, b = (smooth[name] - smooth[name].mean() for name in ("abtem", "ours"))
    instances = content["instances"]
    rows = []
    for number in range(1, int(instances.max()) + 1):
        mask = instances == number
        near = ndimage.binary_dilation(mask, iterations=round(3.0 / pixel))
        ring = ndimage.binary_dilation(mask, iterations=round(8.0 / pixel)) & ~near
        ring &= instances == 0
        rows.append(
            {
                name: float(image[mask].mean() / image[ring].mean() - 1)
                for name, image in images.items()
            }
        )
    placed = [p for p in record["particles"] if p.get("placed", True)]
    return {
        "index": index,
        "ncc": float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum())),
        "particles": [
            {"diameter": p["diameter"], "zone_axis": p["zone_axis"], "contrast": row}
            for p, row in zip(placed, rows, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rendering = commands.add_parser("render", help="render the set (resumable)")
    rendering.add_argument("--material", choices=sorted(SETS), default="Au")
    rendering.add_argument("--out", type=Path, help="default: the committed set's folder")
    rendering.add_argument("--count", type=int, help="default: the set's size (Au 36, CdSe 24)")
    rendering.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    scoring = commands.add_parser("score", help="score checkpoints of the segmentation recipe")
    scoring.add_argument("checkpoints", type=Path, nargs="+")
    scoring.add_argument("--set", type=Path, default=SET_FOLDER / "Au", help="the set's folder")
    scoring.add_argument("--json", type=Path, help="write the scores here")
    scoring.add_argument(
        "--corrupt",
        action="store_true",
        help="add a camera's gain pattern, read-out noise, hot pixels and a bright edge first",
    )
    scoring.add_argument(
        "--normalize-windows",
        action="store_true",
        help="normalise each window of segment on its own, not each image whole",
    )
    comparing = commands.add_parser(
        "compare", help="render images of the set again with the project's simulator"
    )
    comparing.add_argument("indices", type=int, nargs="+")
    comparing.add_argument("--set", type=Path, default=SET_FOLDER / "Au", help="the set's folder")
    comparing.add_argument(
        "--sampling", type=float, default=SAMPLING, help="our simulation's sampling [A]"
    )
    args = parser.parse_args(argv)
    if args.command == "compare":
        for index in args.indices:
            result = compare(args.set, index, args.sampling)
            print(f"image {index}: NCC of the 1 A-smoothed images {result['ncc']:.3f}")
            for number, particle in enumerate(result["particles"], start=1):
                contrast = particle["contrast"]
                print(
                    f"  particle {number} ({particle['diameter'] / 10:.1f} nm, "
                    f"{'zone axis' if particle['zone_axis'] else 'random orientation'}): "
                    f"contrast abTEM {contrast['abtem']:+.3f}, ours {contrast['ours']:+.3f}"
                )
    elif args.command == "render":
        if (args.count is not None and args.count < 1) or args.workers < 1:
            parser.error(f"--count and --workers must be >= 1, got {args.count}, {args.workers}")
        out = args.out or SET_FOLDER / args.material
        render(out, args.count or SETS[args.material]["size"], args.workers, args.material)
    else:
        score(args.checkpoints, args.set, args.json, args.corrupt, args.normalize_windows)


if __name__ == "__main__":
    sys.exit(main())
