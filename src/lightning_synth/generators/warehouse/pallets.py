"""Pallets and their loads as cuboids.

The EUR pallet (EPAL, EN 13698-1) is 1200 x 800 x 144 mm: five top deck boards running
along its length (145, 100, 145, 100 and 145 mm wide, 22 mm thick), three cross boards under
them (145 mm wide, 22 mm), nine blocks (145 mm along the length, 100 or 145 mm across,
78 mm high) and three bottom boards (100, 145 and 100 mm wide, 22 mm). From the 800 mm side
one sees the three blocks between two fork openings; from the 1200 mm side, three blocks
and two wider openings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def add_pallet(
    boxes: BoxList,
    position: Sequence[float] | np.ndarray,
    yaw: float,
    wood: int,
    blocks: int,
    instance: int,
) -> np.ndarray:
    """Add a EUR pallet standing at ``position`` (the centre of its bottom) to ``boxes``.

    Args:
        boxes: Where the pallet's 20 cuboids go.
        position: Centre of the pallet's bottom face [m].
        yaw: Rotation about the vertical [rad]; 0 puts the length along x.
        wood: Material of the boards.
        blocks: Material of the blocks.
        instance: Instance id of every part (the pallet's annotation).

    Returns:
        The pallet's outline: centre (3,) and full size (3,) as one row of 6, for the
        caller's outline cuboids.

    Example:
        >>> parts = BoxList()
        >>> outline = add_pallet(parts, (0, 0, 0), 0.0, wood=1, blocks=2, instance=7)
        >>> len(parts), outline[5].round(3), set(parts.build().instances.tolist())
        (20, np.float64(0.144), {7})
    """
    origin = np.asarray(position, dtype=np.float64)
    rotation = yaw_matrix(yaw)
    local, sizes, block = _PARTS
    boxes.add_many(
        origin + local @ rotation.T, sizes, rotation, np.where(block, blocks, wood), instance
    )
    center = origin + np.array([0.0, 0.0, PALLET_HEIGHT / 2])
    return np.concatenate([center, [PALLET_LENGTH, PALLET_WIDTH, PALLET_HEIGHT]])


def add_carton_load(
    boxes: BoxList,
    position: Sequence[float] | np.ndarray,
    yaw: float,
    rng: np.random.Generator,
    materials: Sequence[int],
    layers: int,
) -> float:
    """Stack cartons on a pallet's deck at ``position`` (deck centre); returns the height.

    Cartons of one size per layer fill the deck in a grid, with a few millimetres of play and
    now and then a missing one on the top layer.
    """
    origin = np.asarray(position, dtype=np.float64)
    rotation = yaw_matrix(yaw)
    height = 0.0
    for layer in range(layers):
        across_x = int(rng.integers(2, 4))
        across_y = int(rng.integers(1, 3))
        carton_h = float(rng.uniform(0.25, 0.5))
        size_x, size_y = PALLET_LENGTH / across_x, PALLET_WIDTH / across_y
        grid_i, grid_j = np.meshgrid(np.arange(across_x), np.arange(across_y), indexing="ij")
        i, j = grid_i.ravel(), grid_j.ravel()
        if layer == layers - 1:  # now and then a carton missing on top
            keep = rng.random(len(i)) >= 0.15
            i, j = i[keep], j[keep]
        play = rng.uniform(-0.01, 0.01, (len(i), 2))
        local = np.stack(
            [
                -PALLET_LENGTH / 2 + (i + 0.5) * size_x + play[:, 0],
                -PALLET_WIDTH / 2 + (j + 0.5) * size_y + play[:, 1],
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
    boxes: BoxList, position: Sequence[float] | np.ndarray, yaw: float, height: float, material: int
) -> float:
    """A load wrapped in stretch film: one cuboid over the deck; returns its height."""
    center = np.asarray(position, dtype=np.float64) + np.array([0.0, 0.0, height / 2])
    size = (PALLET_LENGTH - 0.02, PALLET_WIDTH - 0.02, height)
    boxes.add(center, size, yaw=yaw, material=material)
    return height


def front_yaw(facing: float, rng: np.random.Generator, jitter: float) -> float:
    """A yaw that shows the pallet's short (0) or long side towards ``facing`` [rad], jittered."""
    side = 0.0 if rng.random() < 0.5 else math.pi / 2
    return facing + side + float(rng.normal(0.0, jitter))
