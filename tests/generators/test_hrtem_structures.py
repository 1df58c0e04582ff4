"""Nanoparticles, twins, orientations and amorphous carbon."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from lightning_synth.generators.hrtem.structures import (
    DECAHEDRON_ZONE_AXES,
    ICOSAHEDRON_ZONE_AXES,
    amorphous_carbon,
    decahedral_particle,
    fcc_lattice_constant,
    fcc_particle,
    icosahedral_particle,
    orient,
    wurtzite_particle,
)


def _nearest(positions: np.ndarray) -> np.ndarray:
    distance, _ = cKDTree(positions).query(positions, k=2)
    return distance[:, 1]


def test_fcc_sphere_has_bulk_spacing_and_density() -> None:
    a = fcc_lattice_constant("Au")
    particle = fcc_particle(15.0, "Au")
    assert set(particle.get_chemical_symbols()) == {"Au"}
    assert np.linalg.norm(particle.positions, axis=1).max() <= 15.0
    assert _nearest(particle.positions).min() == pytest.approx(a / math.sqrt(2), rel=1e-6)
    expected = 4 / a**3 * 4 / 3 * math.pi * 15.0**3
    assert len(particle) == pytest.approx(expected, rel=0.08)


def test_wulff_shape_is_bounded_by_111_and_100_facets() -> None:
    particle = fcc_particle(12.0, "Pt", shape="wulff", facet_ratio=1.1)
    normals = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]]) / math.sqrt(3)
    assert np.abs(particle.positions @ normals.T).max() <= 12.0 + 1e-6
    assert np.abs(particle.positions).max() <= 1.1 * 12.0 + 1e-6
    sphere = fcc_particle(12.0, "Pt")
    assert len(particle) != len(sphere)


@pytest.mark.parametrize("twins", [1, 2, 3])
def test_twins_keep_atoms_apart_and_change_the_stacking(twins: int) -> None:
    a = fcc_lattice_constant("Au")
    rng = np.random.default_rng(3)
    twinned = fcc_particle(14.0, "Au", twins=twins, rng=rng)
    plain = fcc_particle(14.0, "Au")
    assert _nearest(twinned.positions).min() == pytest.approx(a / math.sqrt(2), rel=1e-6)
    difference = cKDTree(plain.positions).query(twinned.positions)[0]
    assert (difference > 0.5).sum() > 0.1 * len(twinned)


def test_wurtzite_particle_composition_and_bond_length() -> None:
    particle = wurtzite_particle(14.0)
    symbols = np.array(particle.get_chemical_symbols())
    assert abs((symbols == "Cd").sum() - (symbols == "Se").sum()) <= 0.1 * len(particle)
    cd, se = particle.positions[symbols == "Cd"], particle.positions[symbols == "Se"]
    bond = cKDTree(se).query(cd)[0]
    assert np.median(bond) == pytest.approx(2.63, abs=0.05)  # Cd-Se bond in wurtzite CdSe


def test_orientation_onto_a_zone_axis_and_at_random() -> None:
    particle = fcc_particle(10.0, "Au")
    rng = np.random.default_rng(0)
    rotated, record = orient(
        particle, rng, zone_axis_share=1.0, zone_axes=[(1, 1, 0)], max_tilt=0.0
    )
    assert record["zone_axis"] == [1.0, 1.0, 0.0]
    # Rotations keep every distance.
    assert np.allclose(_nearest(rotated.positions), _nearest(particle.positions))
    # Along [110] atoms stack in columns: many share the same (x, y).
    columns = np.unique(np.round(rotated.positions[:, :2], 3), axis=0)
    assert len(columns) < 0.3 * len(rotated)
    random, record = orient(particle, np.random.default_rng(1), zone_axis_share=0.0)
    assert record["zone_axis"] is None
    assert len(np.unique(np.round(random.positions[:, :2], 3), axis=0)) > 0.9 * len(random)


def test_amorphous_carbon_density_spacing_and_periodicity() -> None:
    extent, thickness = (30.0, 25.0), 20.0
    carbon = amorphous_carbon(extent, thickness, np.random.default_rng(5))
    assert len(carbon) / (extent[0] * extent[1] * thickness) == pytest.approx(0.110, rel=0.01)
    box = [extent[0], extent[1], 1000.0]
    distance, _ = cKDTree(carbon.positions, boxsize=box).query(carbon.positions, k=2)
    assert distance[:, 1].min() >= 1.4
    assert carbon.positions[:, 2].min() >= 0 and carbon.positions[:, 2].max() < thickness


def test_structures_are_deterministic_for_a_seed() -> None:
    first = amorphous_carbon((15.0, 15.0), 8.0, np.random.default_rng(9))
    second = amorphous_carbon((15.0, 15.0), 8.0, np.random.default_rng(9))
    assert np.array_equal(first.positions, second.positions)
    a = orient(fcc_particle(8.0, twins=1, rng=np.random.default_rng(2)), np.random.default_rng(4))[
        0
    ]
    b = orient(fcc_particle(8.0, twins=1, rng=np.random.default_rng(2)), np.random.default_rng(4))[
        0
    ]
    assert np.array_equal(a.positions, b.positions)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fcc_particle(-1.0), "radius must be positive"),
        (lambda: fcc_particle(5.0, "Fe"), "element must be an fcc metal"),
        (lambda: fcc_particle(5.0, shape="cube"), "shape must be 'sphere' or 'wulff'"),
        (lambda: fcc_particle(5.0, twins=9), "twins must be between 0 and 5"),
        (lambda: icosahedral_particle(0.0), "radius must be positive"),
        (lambda: decahedral_particle(5.0, truncation=1.5), "truncation must be in"),
        (
            lambda: orient(fcc_particle(5.0), np.random.default_rng(0), zone_axis_share=2.0),
            "zone_axis_share",
        ),
        (
            lambda: amorphous_carbon((10.0, 10.0), 5.0, np.random.default_rng(0), density=0.5),
            "density must be in",
        ),
        (
            lambda: amorphous_carbon((0.0, 10.0), 5.0, np.random.default_rng(0)),
            "extent and thickness",
        ),
    ],
)
def test_bad_structure_arguments(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


def _twin_like_atoms(positions: np.ndarray, a: float) -> int:
    """Atoms with a nearest-neighbour vector that is not <110>/2 of the cubic frame."""
    tree = cKDTree(positions)
    pairs = np.array(sorted(tree.query_pairs(a / math.sqrt(2) * 1.01)))
    vectors = (positions[pairs[:, 1]] - positions[pairs[:, 0]]) / (a / 2)
    off_lattice = np.abs(vectors - np.round(vectors)).max(axis=1) > 0.2
    return len(np.unique(pairs[off_lattice]))


def test_twin_and_stacking_fault_change_the_stacking_across_a_plane() -> None:
    a = fcc_lattice_constant("Au")
    assert _twin_like_atoms(fcc_particle(12.0, "Au").positions, a) == 0
    twinned = fcc_particle(12.0, "Au", twins=1, rng=np.random.default_rng(1))
    faulted = fcc_particle(12.0, "Au", stacking_faults=1, rng=np.random.default_rng(1))
    for particle in (twinned, faulted):
        assert _nearest(particle.positions).min() == pytest.approx(a / math.sqrt(2), rel=1e-6)
        assert _twin_like_atoms(particle.positions, a) > 0.1 * len(particle)


def _same_set(first: np.ndarray, second: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Whether two point sets coincide (each point of one within ``tolerance`` of the other)."""
    distance, _ = cKDTree(first).query(second)
    return len(first) == len(second) and bool(distance.max() < tolerance)


def _turned(positions: np.ndarray, axis: tuple[float, ...], angle: float) -> np.ndarray:
    direction = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    return Rotation.from_rotvec(angle * direction).apply(positions)


@pytest.mark.parametrize(("radius", "shells", "atoms"), [(4.0, 2, 13), (7.0, 3, 55), (9.0, 4, 147)])
def test_icosahedron_is_mackay_shells_with_its_symmetry(
    radius: float, shells: int, atoms: int
) -> None:
    particle = icosahedral_particle(radius)
    positions = particle.positions
    # Mackay's magic numbers, the nearest atoms about the bulk's distance apart.
    assert len(particle) == atoms
    bulk = fcc_lattice_constant("Au") / math.sqrt(2)
    assert 0.95 * bulk < _nearest(positions).min() and _nearest(positions).max() < 1.05 * bulk
    # Five-, three- and two-fold axes map the particle onto itself.
    five, three, two = ICOSAHEDRON_ZONE_AXES
    for axis, order in ((five, 5), (three, 3), (two, 2)):
        assert _same_set(positions, _turned(positions, axis, 2 * math.pi / order))
    assert not _same_set(positions, _turned(positions, five, 2 * math.pi / 4))


def test_decahedron_is_five_twinned_tetrahedra_with_ino_facets() -> None:
    a = fcc_lattice_constant("Au")
    particle = decahedral_particle(12.0, truncation=0.8)
    positions = particle.positions
    bulk = a / math.sqrt(2)
    assert 0.97 * bulk < _nearest(positions).min() and _nearest(positions).max() < 1.01 * bulk
    assert abs(positions.mean(0)).max() < 1e-6
    five, two = DECAHEDRON_ZONE_AXES
    assert _same_set(positions, _turned(positions, five, 2 * math.pi / 5))
    assert _same_set(positions, _turned(positions, two, math.pi))
    # About as many atoms as the sphere of the same radius (the closest edge length).
    assert len(particle) == pytest.approx(4 / 3 * math.pi * 12.0**3 * 4 / a**3, rel=0.3)
    # The {100} facets cut the rim: a deeper cut leaves fewer atoms far from the axis.
    untruncated = decahedral_particle(12.0, truncation=1.0)
    reach = np.linalg.norm(untruncated.positions[:, :2], axis=1).max()
    assert np.linalg.norm(positions[:, :2], axis=1).max() < reach
