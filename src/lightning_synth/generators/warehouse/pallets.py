"""Pallets and their loads as cuboids.

The EUR pallet (EPAL, EN 13698-1) is 1200 x 800 x 144 mm: five top deck boards running
along its length (145, 100, 145, 100 and 145 mm wide, 22 mm thick), three cross boards under
them (145 mm wide, 22 mm), nine blocks (145 mm along the length, 100 or 145 mm across,
78 mm high) and three bottom boards (100, 145 and 100 mm wide, 22 mm). From the 800 mm side
one sees the three blocks between two fork openings; from the 1200 mm side, three blocks
and two wider openings.

Other kinds (:data:`PALLET_KINDS`), in outline: ``industrial``, a block pallet of 1200 x
1000 mm (EPAL 3's footprint) with seven top boards; ``half``, a block pallet of 800 x 600
mm (EPAL 6's) with five; ``stringer``, the North American 48 x 40 inch pallet (1219 x 1016 x
121 mm): three 38 x 89 mm stringers along its length, each notched twice from below for
forks from the side, under seven deck boards of 16 mm and over three bottom boards;
``plastic``, a solid 35 mm deck on nine feet (1200 x 800 x 150 mm).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np

from lightning_synth.generators.warehouse.geometry import BoxList, yaw_matrix

PALLET_LENGTH, PALLET_WIDTH, PALLET_HEIGHT = 1.2, 0.8, 0.144
_BOARD = 0.022
_BLOCK_HEIGHT = 0.078
_BLOCK_X = (-0.5275, 0.0, 0.5275)  # block columns along the length (centres)
_BLOCK_Y = (-0.35, 0.0, 0.35)  # block rows across the width (centres)


def _parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local centres (20, 3), full sizes (20, 3) and block flags (20,) of a EUR pallet."""
    centers, sizes, block = [], [], []
    z = 0.0
    for y, w in zip(_BLOCK_Y, (0.1, 0.145, 0.1), strict=True):  # bottom boards
        centers.append((0.0, y, z + _BOARD / 2))
        sizes.append((1.2, w, _BOARD))
        block.append(False)
    z += _BOARD
    for x in _BLOCK_X:
        for y in _BLOCK_Y:
            centers.append((x, y, z + _BLOCK_HEIGHT / 2))
            sizes.append((0.145, 0.145 if y == 0.0 else 0.1, _BLOCK_HEIGHT))
            block.append(True)
    z += _BLOCK_HEIGHT
    for x in _BLOCK_X:  # cross boards over the block columns
        centers.append((x, 0.0, z + _BOARD / 2))
        sizes.append((0.145, 0.8, _BOARD))
        block.append(False)
    z += _BOARD
    for y, w in ((-0.3275, 0.145), (-0.1625, 0.1), (0.0, 0.145), (0.1625, 0.1), (0.3275, 0.145)):
        centers.append((0.0, y, z + _BOARD / 2))  # top deck boards
        sizes.append((1.2, w, _BOARD))
        block.append(False)
    return np.array(centers), np.array(sizes), np.array(block)


_PARTS = _parts()

PalletKind: TypeAlias = Literal["eur", "industrial", "half", "stringer", "plastic"]
PALLET_KINDS: tuple[str, ...] = ("eur", "industrial", "half", "stringer", "plastic")
#: Length, width and height of each kind [m].
PALLET_SIZES: dict[str, tuple[float, float, float]] = {
    "eur": (PALLET_LENGTH, PALLET_WIDTH, PALLET_HEIGHT),
    "industrial": (1.2, 1.0, 0.144),
    "half": (0.8, 0.6, 0.144),
    "stringer": (1.219, 1.016, 0.121),
    "plastic": (1.2, 0.8, 0.15),
}


def _spread(span: float, widths: Sequence[float]) -> list[float]:
    """Centres of boards of ``widths`` laid across ``span`` with equal gaps, edge to edge."""
    gap = (span - sum(widths)) / (len(widths) - 1)
    centres, edge = [], -span / 2
    for width in widths:
        centres.append(edge + width / 2)
        edge += width + gap
    return centres


def _block_parts(
    length: float, width: float, top_widths: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block pallet like the EUR one on another footprint: (centres, sizes, block flags)."""
    columns = (-(length / 2 - 0.0725), 0.0, length / 2 - 0.0725)
    rows = (-(width / 2 - 0.05), 0.0, width / 2 - 0.05)
    centers, sizes, block = [], [], []
    for y, w in zip(rows, (0.1, 0.145, 0.1), strict=True):  # bottom boards
        centers.append((0.0, y, _BOARD / 2))
        sizes.append((length, w, _BOARD))
        block.append(False)
    for x in columns:
        for y in rows:
            centers.append((x, y, _BOARD + _BLOCK_HEIGHT / 2))
            sizes.append((0.145, 0.145 if y == 0.0 else 0.1, _BLOCK_HEIGHT))
            block.append(True)
    z = _BOARD + _BLOCK_HEIGHT
    for x in columns:  # cross boards
        centers.append((x, 0.0, z + _BOARD / 2))
        sizes.append((0.145, width, _BOARD))
        block.append(False)
    for y, w in zip(_spread(width, top_widths), top_widths, strict=True):  # top deck
        centers.append((0.0, y, z + _BOARD + _BOARD / 2))
        sizes.append((length, w, _BOARD))
        block.append(False)
    return np.array(centers), np.array(sizes), np.array(block)


def _stringer_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 48 x 40 inch stringer pallet: (centres, sizes, stringer flags)."""
    length, width, _ = PALLET_SIZES["stringer"]
    deck, stringer_w, stringer_h, notch_h, notch_l = 0.016, 0.038, 0.089, 0.038, 0.229
    centers, sizes, block = [], [], []
    for x, w in zip(_spread(length, (0.14, 0.089, 0.14)), (0.14, 0.089, 0.14), strict=True):
        centers.append((x, 0.0, deck / 2))  # bottom boards across the stringers
        sizes.append((w, width, deck))
        block.append(False)
    # Each stringer in five pieces: full height, a notch (open below), full, notch, full.
    notches = (-0.305, 0.305)
    edges = [-length / 2, notches[0] - notch_l / 2, notches[0] + notch_l / 2]
    edges += [notches[1] - notch_l / 2, notches[1] + notch_l / 2, length / 2]
    for y in (-(width / 2 - stringer_w / 2), 0.0, width / 2 - stringer_w / 2):
        for piece, (low, high) in enumerate(itertools.pairwise(edges)):
            bottom = deck + (notch_h if piece % 2 else 0.0)
            height = deck + stringer_h - bottom
            centers.append(((low + high) / 2, y, bottom + height / 2))
            sizes.append((high - low, stringer_w, height))
            block.append(True)
    top = (0.14, 0.089, 0.089, 0.089, 0.089, 0.089, 0.14)
    for x, w in zip(_spread(length, top), top, strict=True):  # deck boards across
        centers.append((x, 0.0, deck + stringer_h + deck / 2))
        sizes.append((w, width, deck))
        block.append(False)
    return np.array(centers), np.array(sizes), np.array(block)


def _plastic_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plastic pallet: a solid deck on nine feet (all one material; feet flagged)."""
    length, width, height = PALLET_SIZES["plastic"]
    deck, foot = 0.035, 0.16
    centers = [(0.0, 0.0, height - deck / 2)]
    sizes = [(length, width, deck)]
    for x in (-(length / 2 - foot / 2), 0.0, length / 2 - foot / 2):
        for y in (-(width / 2 - foot / 2), 0.0, width / 2 - foot / 2):
            centers.append((x, y, (height - deck) / 2))
            sizes.append((foot, foot, height - deck))
    return np.array(centers), np.array(sizes), np.array([False] + [True] * 9)


_KIND_PARTS = {
    "eur": _PARTS,
    "industrial": _block_parts(1.2, 1.0, (0.145, 0.1, 0.145, 0.1, 0.145, 0.1, 0.145)),
    "half": _block_parts(0.8, 0.6, (0.1,) * 5),
    "stringer": _stringer_parts(),
    "plastic": _plastic_parts(),
}


def add_pallet(
    boxes: BoxList,
    position: Sequence[float] | np.ndarray,
    yaw: float,
    wood: int,
    blocks: int,
    instance: int,
    kind: str = "eur",
) -> np.ndarray:
    """Add a pallet standing at ``position`` (the centre of its bottom) to ``boxes``.

    Args:
        boxes: Where the pallet's cuboids go (20 for a EUR pallet).
        position: Centre of the pallet's bottom face [m].
        yaw: Rotation about the vertical [rad]; 0 puts the length along x.
        wood: Material of the boards (of a plastic pallet's deck).
        blocks: Material of the blocks (stringers, a plastic pallet's feet).
        instance: Instance id of every part (the pallet's annotation).
        kind: One of :data:`PALLET_KINDS`.

    Returns:
        The pallet's outline: centre (3,) and full size (3,) as one row of 6, for the
        caller's outline cuboids.

    Example:
        >>> parts = BoxList()
        >>> outline = add_pallet(parts, (0, 0, 0), 0.0, wood=1, blocks=2, instance=7)
        >>> len(parts), outline[5].round(3), set(parts.build().instances.tolist())
        (20, np.float64(0.144), {7})
    """
    if kind not in _KIND_PARTS:
        msg = f"kind must be one of {PALLET_KINDS}, got {kind!r}"
        raise ValueError(msg)
    origin = np.asarray(position, dtype=np.float64)
    rotation = yaw_matrix(yaw)
    local, sizes, block = _KIND_PARTS[kind]
    boxes.add_many(
        origin + local @ rotation.T, sizes, rotation, np.where(block, blocks, wood), instance
    )
    length, width, height = PALLET_SIZES[kind]
    center = origin + np.array([0.0, 0.0, height / 2])
    return np.concatenate([center, [length, width, height]])


def add_carton_load(
    boxes: BoxList,
    position: Sequence[float] | np.ndarray,
    yaw: float,
    rng: np.random.Generator,
    materials: Sequence[int],
    layers: int,
    deck: tuple[float, float] = (PALLET_LENGTH, PALLET_WIDTH),
) -> float:
    """Stack cartons on a pallet's deck at ``position`` (deck centre); returns the height.

    Cartons of one size per layer fill the ``deck`` (length, width) in a grid, with a few
    millimetres of play and now and then a missing one on the top layer.
    """
    deck_length, deck_width = deck
    origin = np.asarray(position, dtype=np.float64)
    rotation = yaw_matrix(yaw)
    height = 0.0
    for layer in range(layers):
        across_x = int(rng.integers(2, 4))
        across_y = int(rng.integers(1, 3))
        carton_h = float(rng.uniform(0.25, 0.5))
        size_x, size_y = deck_length / across_x, deck_width / across_y
        grid_i, grid_j = np.meshgrid(np.arange(across_x), np.arange(across_y), indexing="ij")
        i, j = grid_i.ravel(), grid_j.ravel()
        if layer == layers - 1:  # now and then a carton missing on top
            keep = rng.random(len(i)) >= 0.15
            i, j = i[keep], j[keep]
        play = rng.uniform(-0.01, 0.01, (len(i), 2))
        local = np.stack(
            [
                -deck_length / 2 + (i + 0.5) * size_x + play[:, 0],
                -deck_width / 2 + (j + 0.5) * size_y + play[:, 1],
                np.full(len(i), height + carton_h / 2),
            ],
            axis=1,
        )
        chosen = np.asarray(materials)[rng.integers(len(materials), size=len(i))]
        size = np.array([size_x - 0.012, size_y - 0.012, carton_h - 0.004])
        boxes.add_many(
            origin + local @ rotation.T, np.broadcast_to(size, (len(i), 3)), rotation, chosen, -1
        )
        height += carton_h
    return height


def add_wrapped_load(
    boxes: BoxList,
    position: Sequence[float] | np.ndarray,
    yaw: float,
    height: float,
    material: int,
    deck: tuple[float, float] = (PALLET_LENGTH, PALLET_WIDTH),
) -> float:
    """A load wrapped in stretch film: one cuboid over the ``deck``; returns its height."""
    center = np.asarray(position, dtype=np.float64) + np.array([0.0, 0.0, height / 2])
    size = (deck[0] - 0.02, deck[1] - 0.02, height)
    boxes.add(center, size, yaw=yaw, material=material)
    return height


def front_yaw(facing: float, rng: np.random.Generator, jitter: float) -> float:
    """A yaw that shows the pallet's short (0) or long side towards ``facing`` [rad], jittered."""
    side = 0.0 if rng.random() < 0.5 else math.pi / 2
    return facing + side + float(rng.normal(0.0, jitter))
