"""Atomic structures for HRTEM fields: nanoparticles, amorphous support, orientations.

Everything is an :class:`ase.Atoms`, so users can bring structures from any file ASE reads.
Randomness comes from the ``numpy.random.Generator`` passed in. Lengths in Angstrom; the beam
runs along +z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, reference_states
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

#: Low-index zone axes of cubic crystals, as directions in the crystal frame.
CUBIC_ZONE_AXES: tuple[tuple[int, int, int], ...] = ((0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2))
#: Low-index zone axes of hexagonal crystals (Cartesian, c along z): [0001], [2-1-10], [01-10].
HEXAGONAL_ZONE_AXES: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0),
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
)
#: Wurtzite CdSe at room temperature: lattice constants a, c [A] and the internal parameter u.
WURTZITE_CDSE: dict[str, float] = {"a": 4.30, "c": 7.01, "u": 0.376}
_FAMILY_100 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
_FAMILY_111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=float) / math.sqrt(3)


def fcc_lattice_constant(element: str) -> float:
    """ASE's reference lattice constant [A] of an fcc metal (e.g. 4.08 for Au)."""
    number = atomic_numbers.get(element)
    state = reference_states[number] if number is not None else None
    if not state or state.get("symmetry") != "fcc":
        msg = f"element must be an fcc metal (Au, Ag, Pt, Pd, Cu, Ni, Al, ...), got {element!r}"
        raise ValueError(msg)
    return float(state["a"])  # type: ignore[arg-type]


def _block(unit: Atoms, radius: float) -> Atoms:
    """A block of ``unit`` cells centred on the origin that holds a sphere of ``radius``."""
    lengths = unit.cell.lengths()
    repeats = [2 * math.ceil((radius + 2.0) / length) + 1 for length in lengths]
    block = unit.repeat(repeats)
    block.positions -= block.cell.sum(axis=0) / 2
    # Centre on the atom nearest the middle, so that a twin plane can pass through a layer.
    block.positions -= block.positions[np.argmin(np.linalg.norm(block.positions, axis=1))]
    block.cell = np.zeros((3, 3))
    block.pbc = False
    return block


#: Rows: the {111}-layer frame's axes in the cubic frame (x along [1-10], z along [111]).
_LAYER_FRAME = np.array([[1, -1, 0], [1, 1, -2], [1, 1, 1]], dtype=float) / np.array(
    [[math.sqrt(2)], [math.sqrt(6)], [math.sqrt(3)]]
)


def _stacked_fcc(a: float, radius: float, twins: set[int], faults: set[int]) -> np.ndarray:
    """Fcc positions (cubic frame) within ``radius`` of the origin, built as {111} layers.

    Close-packed layers sit at A, B or C; perfect fcc stacks them ABCABC. After a twin layer
    the stacking runs backwards (ABC|BA...), a coherent twin boundary; at an (intrinsic)
    stacking fault one layer position is skipped (ABC|BCA... -> ABCBC...).
    """
    spacing, layer = a / math.sqrt(2), a / math.sqrt(3)
    count = math.ceil(radius / spacing) + 2
    i, j = np.meshgrid(np.arange(-2 * count, 2 * count + 1), np.arange(-2 * count, 2 * count + 1))
    e1, e2 = np.array([spacing, 0.0]), np.array([spacing / 2, spacing * math.sqrt(3) / 2])
    plane = i.reshape(-1, 1) * e1 + j.reshape(-1, 1) * e2
    plane = plane[np.linalg.norm(plane, axis=1) <= radius + 2 * spacing]
    # This order makes the stack fcc in the cubic frame of _LAYER_FRAME (the other order is
    # its twin).
    shifts = [np.zeros(2), 2 * (e1 + e2) / 3, (e1 + e2) / 3]
    layers = math.ceil(radius / layer) + 1
    position, direction, rows = 0, 1, []
    for k in range(-layers, layers + 1):
        xy = plane + shifts[position % 3]
        rows.append(np.column_stack([xy, np.full(len(xy), k * layer)]))
        if k in twins:
            direction = -direction
        position += direction * (2 if k in faults else 1)
    return np.vstack(rows) @ _LAYER_FRAME


def fcc_particle(
    radius: float,
    element: str = "Au",
    lattice_constant: float | None = None,
    shape: Literal["sphere", "wulff"] = "sphere",
    twins: int = 0,
    stacking_faults: int = 0,
    rng: np.random.Generator | None = None,
    facet_ratio: float | None = None,
) -> Atoms:
    """An fcc metal nanoparticle centred on the origin, in its crystal frame.

    Args:
        radius: Particle radius [A] (the sphere radius, or the {111} facet distance).
        element: Chemical symbol of an fcc metal.
        lattice_constant: Lattice constant [A]; ASE's reference value by default.
        shape: ``"sphere"``, or ``"wulff"``: a truncated octahedron bounded by {111} facets at
            ``radius`` and {100} facets at ``facet_ratio * radius``.
        twins: Number of parallel {111} twin planes (coherent twin boundaries).
        stacking_faults: Number of intrinsic stacking faults on the same {111} planes (the
            study used 0 to 3 twins or stacking faults).
        rng: Random generator (defect layers, facet ratio).
        facet_ratio: {100}/{111} facet distance ratio; drawn from [1.05, 1.25] if None.

    Returns:
        The particle's atoms (no cell, not periodic).

    Example:
        >>> particle = fcc_particle(10.0, "Au")
        >>> particle.get_chemical_formula(), bool(abs(particle.positions).max() <= 10.0)
        ('Au249', True)
    """
    if not radius > 0:
        msg = f"radius must be positive (Angstrom), got {radius!r}"
        raise ValueError(msg)
    if shape not in ("sphere", "wulff"):
        msg = f"shape must be 'sphere' or 'wulff', got {shape!r}"
        raise ValueError(msg)
    if not 0 <= twins <= 5:
        msg = f"twins must be between 0 and 5, got {twins!r}"
        raise ValueError(msg)
    if not 0 <= stacking_faults <= 5:
        msg = f"stacking_faults must be between 0 and 5, got {stacking_faults!r}"
        raise ValueError(msg)
    rng = rng or np.random.default_rng(0)
    a = lattice_constant if lattice_constant is not None else fcc_lattice_constant(element)
    if not a > 0:
        msg = f"lattice_constant must be positive, got {a!r}"
        raise ValueError(msg)
    # Defect layers, distinct, within the inner 80% of the particle.
    inner = max(1, int(0.8 * radius / (a / math.sqrt(3))))
    defects = rng.choice(np.arange(-inner, inner + 1), size=twins + stacking_faults, replace=False)
    positions = _stacked_fcc(
        a, radius * 1.3, set(defects[:twins].tolist()), set(defects[twins:].tolist())
    )
    if shape == "sphere":
        keep = np.linalg.norm(positions, axis=1) <= radius
    else:
        ratio = facet_ratio if facet_ratio is not None else float(rng.uniform(1.05, 1.25))
        keep = (np.abs(positions @ _FAMILY_111.T) <= radius + 1e-6).all(axis=1)
        keep &= (np.abs(positions @ _FAMILY_100.T) <= ratio * radius + 1e-6).all(axis=1)
    return Atoms([element] * int(keep.sum()), positions=positions[keep])


#: The golden ratio, which places an icosahedron's vertices at (0, +-1, +-phi) and cyclically.
_PHI = (1 + math.sqrt(5)) / 2
#: A bond between shells of a Mackay icosahedron is this much shorter than one within a shell
#: (the circumradius of a unit-edge icosahedron, sin(2 pi / 5)).
_MACKAY_RADIAL = math.sin(2 * math.pi / 5)
_ICOSAHEDRON_VERTICES = np.array(
    [v for a in (-1.0, 1.0) for b in (-_PHI, _PHI) for v in ((0.0, a, b), (a, b, 0.0), (b, 0.0, a))]
) / math.hypot(1.0, _PHI)
#: Characteristic zone axes of a decahedron built by :func:`decahedral_particle`: its
#: five-fold axis, and a two-fold axis across it (through an equatorial vertex).
DECAHEDRON_ZONE_AXES: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0))
#: Characteristic zone axes of an icosahedron built by :func:`icosahedral_particle`: five-fold
#: (through a vertex), three-fold (through a face's centre) and two-fold (through an edge's
#: middle).
ICOSAHEDRON_ZONE_AXES: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, _PHI),  # the vertex (0, 1, phi)
    (1.0, 0.0, _PHI**2),  # the face (0, 1, phi), (0, -1, phi), (phi, 0, 1)
    (0.0, 0.0, 1.0),  # the edge (0, 1, phi) - (0, -1, phi)
)


def _icosahedron_faces() -> list[tuple[int, int, int]]:
    """The 20 faces of the unit icosahedron, as triples of vertex indices."""
    vertices = _ICOSAHEDRON_VERTICES
    distance = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    edge = distance[distance > 1e-9].min()
    near = np.abs(distance - edge) < 1e-6
    count = len(vertices)
    return [
        (i, j, k)
        for i in range(count)
        for j in range(i + 1, count)
        for k in range(j + 1, count)
        if near[i, j] and near[j, k] and near[i, k]
    ]


def _unique(points: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """``points`` with coincident rows (within ``tolerance``) kept once."""
    keys = np.round(points / tolerance).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return points[np.sort(first)]


def _atoms_in_sphere(radius: float, a: float) -> float:
    """How many atoms of an fcc crystal of lattice constant ``a`` a sphere of ``radius`` holds."""
    return 4 / 3 * math.pi * radius**3 * 4 / a**3


def icosahedral_particle(
    radius: float, element: str = "Au", lattice_constant: float | None = None
) -> Atoms:
    """A Mackay icosahedron of about as many atoms as an fcc sphere of ``radius``, centred.

    Twenty fcc tetrahedra that share the centre, twinned on every face they share; built
    shell by shell (shell ``i`` holds the ``10 i^2 + 2`` points of a triangular grid of
    ``i`` bonds per edge on the icosahedron's faces). Bonds within a shell are 2% longer than
    the bulk's nearest-neighbour distance and bonds between shells 5% shorter than those
    (Mackay's geometry), so the particle keeps the bulk's density. Its five-fold axes run
    through its vertices, e.g. along ``ICOSAHEDRON_ZONE_AXES[0]``.

    Example:
        >>> len(icosahedral_particle(7.0))  # 3 shells: 1 + 12 + 42
        55
    """
    if not radius > 0:
        msg = f"radius must be positive (Angstrom), got {radius!r}"
        raise ValueError(msg)
    a = lattice_constant if lattice_constant is not None else fcc_lattice_constant(element)
    wanted = _atoms_in_sphere(radius, a)
    # Shells, the centre being the first: (10 n^3 - 15 n^2 + 11 n - 3) / 3 atoms.
    shells = min(
        range(1, 200), key=lambda n: abs((10 * n**3 - 15 * n**2 + 11 * n - 3) / 3 - wanted)
    )
    bond = 1.02 * a / math.sqrt(2)
    step = _MACKAY_RADIAL * bond  # the circumradius of one shell more
    rows = [np.zeros((1, 3))]
    faces = _icosahedron_faces()
    for shell in range(1, shells):
        corners = _ICOSAHEDRON_VERTICES * shell * step
        grid = (
            np.array([(p, q) for p in range(shell + 1) for q in range(shell + 1 - p)], dtype=float)
            / shell
        )
        for i, j, k in faces:
            rows.append(
                corners[i]
                + grid[:, :1] * (corners[j] - corners[i])
                + grid[:, 1:] * (corners[k] - corners[i])
            )
    positions = _unique(np.vstack(rows))
    return Atoms([element] * len(positions), positions=positions)


def decahedral_particle(
    radius: float,
    element: str = "Au",
    lattice_constant: float | None = None,
    truncation: float | None = None,
    rng: np.random.Generator | None = None,
) -> Atoms:
    """An Ino decahedron of about as many atoms as an fcc sphere of ``radius``, centred.

    Five fcc tetrahedra share an edge along z (the five-fold axis), each twinned with its
    neighbours on the faces they share: the points of each tetrahedron are the integer
    barycentric combinations of its corners (a tetrahedron of fcc with ``n`` bonds per
    edge), the 7.4 degree gap that five perfect tetrahedra would leave closed by a slight
    strain of the equatorial bonds. Ino's {100} facets, parallel to the axis, cut the five
    outer edges at ``truncation`` times their distance from the axis; without them the
    particle would thin out to nothing at its rim.

    Args:
        radius: Radius [A] of the fcc sphere whose atom count the particle matches.
        element: Chemical symbol of an fcc metal.
        lattice_constant: Lattice constant [A]; ASE's reference value by default.
        truncation: Where the {100} facets cut the outer edges, as a share of the edges'
            distance from the axis (1: not at all); drawn from [0.65, 0.9] if None.
        rng: Random generator (the truncation).

    Example:
        >>> particle = decahedral_particle(10.0, truncation=1.0)
        >>> round(float(abs(particle.positions[:, 2]).max()), 2)  # half the axis: 3 bonds
        8.65
    """
    if not radius > 0:
        msg = f"radius must be positive (Angstrom), got {radius!r}"
        raise ValueError(msg)
    rng = rng or np.random.default_rng(0)
    cut = truncation if truncation is not None else float(rng.uniform(0.65, 0.9))
    if not 0 < cut <= 1:
        msg = f"truncation must be in (0, 1], got {truncation!r}"
        raise ValueError(msg)
    a = lattice_constant if lattice_constant is not None else fcc_lattice_constant(element)
    wanted = _atoms_in_sphere(radius, a)
    bond = a / math.sqrt(2)
    angles = 2 * math.pi * np.arange(5) / 5
    directions = np.column_stack([np.cos(angles), np.sin(angles), np.zeros(5)])
    normals = np.column_stack(
        [np.cos(angles + math.pi / 5), np.sin(angles + math.pi / 5), 0 * angles]
    )

    def build(bonds: int) -> np.ndarray:
        edge = bonds * bond
        top, bottom = np.array([0, 0, edge / 2]), np.array([0, 0, -edge / 2])
        corners = directions * edge / (2 * math.sin(math.pi / 5))  # pentagon of side ``edge``
        weights = np.array(
            [
                (i, j, k, bonds - i - j - k)
                for i in range(bonds + 1)
                for j in range(bonds + 1 - i)
                for k in range(bonds + 1 - i - j)
            ],
            dtype=float,
        ) / max(bonds, 1)
        rows = [
            weights @ np.stack([top, bottom, corners[n], corners[(n + 1) % 5]]) for n in range(5)
        ]
        points = _unique(np.vstack(rows))
        apothem = edge / (2 * math.tan(math.pi / 5))  # the outer edges' distance from the axis
        keep = (points @ normals.T <= cut * apothem + 1e-6).all(axis=1)
        return points[keep]

    # The atom count grows with the edge's bonds: stop at the first build past ``wanted``.
    previous, bonds = build(1), 2
    while True:
        current = build(bonds)
        if len(current) >= wanted:
            break
        previous, bonds = current, bonds + 1
    best = min((previous, current), key=lambda points: abs(len(points) - wanted))
    return Atoms([element] * len(best), positions=best)


def wurtzite_particle(
    radius: float,
    cation: str = "Cd",
    anion: str = "Se",
    a: float = WURTZITE_CDSE["a"],
    c: float = WURTZITE_CDSE["c"],
    u: float = WURTZITE_CDSE["u"],
) -> Atoms:
    """A spherical wurtzite nanoparticle (CdSe by default) centred on the origin, c along z.

    Example:
        >>> particle = wurtzite_particle(12.0)
        >>> sorted(set(particle.get_chemical_symbols()))
        ['Cd', 'Se']
    """
    if not radius > 0:
        msg = f"radius must be positive (Angstrom), got {radius!r}"
        raise ValueError(msg)
    cell = [[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]]
    scaled = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u], [2 / 3, 1 / 3, 0.5 + u]]
    unit = Atoms([cation, cation, anion, anion], scaled_positions=scaled, cell=cell, pbc=True)
    crystal = _block(unit, radius)
    return crystal[np.linalg.norm(crystal.positions, axis=1) <= radius]


def orient(
    atoms: Atoms,
    rng: np.random.Generator,
    zone_axis_share: float = 0.5,
    zone_axes: Sequence[Sequence[float]] = CUBIC_ZONE_AXES,
    max_tilt: float = 1.0,
) -> tuple[Atoms, dict[str, object]]:
    """Rotate ``atoms`` about the origin: onto a zone axis, or at random.

    With probability ``zone_axis_share`` one of ``zone_axes`` (crystal-frame directions) is
    turned onto the beam (z), tilted off by at most ``max_tilt`` degrees and spun by a random
    angle about the beam, so lattice fringes show; otherwise the rotation is uniformly random.

    Returns:
        The rotated copy, and a record of what was done (for the sample's metadata).
    """
    if not 0 <= zone_axis_share <= 1:
        msg = f"zone_axis_share must be in [0, 1], got {zone_axis_share!r}"
        raise ValueError(msg)
    if rng.random() < zone_axis_share:
        axis = np.array(zone_axes[int(rng.integers(len(zone_axes)))], dtype=np.float64)
        onto_beam, _ = Rotation.align_vectors([[0, 0, 1]], [axis / np.linalg.norm(axis)])
        tilt_direction = rng.uniform(0, 2 * math.pi)
        tilt = Rotation.from_rotvec(
            math.radians(rng.uniform(0, max_tilt))
            * np.array([math.cos(tilt_direction), math.sin(tilt_direction), 0])
        )
        spin = Rotation.from_rotvec([0, 0, rng.uniform(0, 2 * math.pi)])
        rotation = spin * tilt * onto_beam
        record: dict[str, object] = {"zone_axis": [float(v) for v in axis]}
    else:
        rotation = Rotation.random(random_state=rng)
        record = {"zone_axis": None}
    rotated = atoms.copy()
    rotated.positions = rotation.apply(atoms.positions)
    record["rotation"] = [float(v) for v in rotation.as_quat()]
    return rotated, record


def amorphous_carbon(
    extent: tuple[float, float],
    thickness: float,
    rng: np.random.Generator,
    density: float = 0.110,
    min_distance: float = 1.4,
) -> Atoms:
    """Amorphous carbon: random packing at ``density`` [atoms/A^3], atoms >= ``min_distance`` apart.

    Random sequential addition in batches, periodic in x and y (the field wraps), not in z.
    The slab spans ``0 <= z < thickness``.

    Example:
        >>> carbon = amorphous_carbon((20.0, 20.0), 10.0, np.random.default_rng(0))
        >>> len(carbon), round(len(carbon) / (20 * 20 * 10), 3)
        (440, 0.11)
    """
    if min(extent) <= 0 or thickness <= 0:
        msg = (
            f"extent and thickness must be positive, got extent={extent!r}, thickness={thickness!r}"
        )
        raise ValueError(msg)
    if not 0 < density <= 0.2:
        msg = f"density must be in (0, 0.2] atoms/A^3, got {density!r}"
        raise ValueError(msg)
    target = round(density * extent[0] * extent[1] * thickness)
    box = np.array([extent[0], extent[1], thickness + 10 * min_distance])  # no wrap in z
    accepted = np.empty((0, 3))
    attempts = 0
    while len(accepted) < target:
        attempts += 1
        if attempts > 200:
            msg = (
                f"could not pack {target} atoms at min_distance={min_distance} "
                f"(got {len(accepted)})"
            )
            raise RuntimeError(msg)
        batch = rng.uniform(
            [0, 0, 0], [extent[0], extent[1], thickness], size=(max(64, target // 4), 3)
        )
        if len(accepted):
            distance, _ = cKDTree(accepted, boxsize=box).query(batch, k=1)
            batch = batch[distance >= min_distance]
        # Greedy pass within the batch: keep a candidate unless an earlier kept one is too close.
        tree = cKDTree(batch, boxsize=box)
        keep = np.ones(len(batch), dtype=bool)
        for first, second in sorted(tree.query_pairs(min_distance)):
            if keep[first]:
                keep[second] = False
        accepted = np.vstack([accepted, batch[keep]])[:target]
    return Atoms(
        "C" * len(accepted),
        positions=accepted,
        cell=[extent[0], extent[1], thickness],
        pbc=[True, True, False],
    )
