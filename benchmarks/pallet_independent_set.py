"""A pallet test set that our renderer did not make, and the scores of a checkpoint on it.

The images are path-traced by Mitsuba 3 (the ``oracle`` extra; only this script and the tests
import it), from scenes written here apart from :mod:`lightning_synth.generators.warehouse`:
their own pallet models, materials, rooms, racks, lights and cameras, none of them shared
with the training generator. What differs on purpose:

- **Pallets.** Five kinds, not only the EUR pallet: EUR (1200 x 800 mm), industrial block
  pallets (1200 x 1000), half pallets (800 x 600), plastic pallets (a solid deck on nine
  feet) and stringer pallets (1219 x 1016, three stringers under seven deck boards). Wood is
  fresh, aged, grey or dirty; some are painted (blue or red pool pallets); plastic ones are
  black, grey or blue.
- **Views.** A camera on the forks (0.25-1.2 m) or at the driver's eye (1.6-2.4 m) facing
  stacks on the floor 1.2-5 m away, sometimes with the fork tines in view; a handheld camera
  (1.3-1.8 m) looking down at pallets on the floor; and rack faces seen from the aisle, with
  pallets and their loads on the beams.
- **Light.** Global illumination with area lights (ceiling panels or strips of 2700-6500 K),
  an ambient term, sometimes daylight through an open dock door or a forklift's headlight.
- **Camera.** Path-tracing noise at a modest sample count, then exposure, a tone curve,
  vignetting, blur, sensor noise and JPEG compression written here.

**Annotations** come from Mitsuba's own instance output (the ``shape_index`` AOV, one
sample per pixel): a pallet's box is the tight box of its visible pixels. Its visible
fraction is those pixels over the pixels it covers rendered alone, on a film three times
wider and higher with the same pixels (so the part outside the frame counts as hidden), as
in the training generator's rule. **The crowd rule**, the same as training's: a pallet less
than 25% visible, or whose box is narrower or lower than 1/40 of the image width (8 pixels at
320), is annotated ``iscrowd: 1`` (detections on it neither count nor cost); a pallet with
no visible pixel is not annotated.

The set is committed (``benchmarks/data/pallet_independent``: JPEG images, ``coco.json``
and ``manifest.json`` with every image's drawn conditions); ``render`` rebuilds it in place
(resumable: finished images are kept). Score any checkpoint of the detection recipe::

    python benchmarks/pallet_independent_set.py render [--count 80] [--out DIR]
    python benchmarks/pallet_independent_set.py score CHECKPOINT [CHECKPOINT ...] [--json F]

Scores are COCO mAP@[.5:.95], mAP@.5, mAP@.75 and mAR@100 over the set, mAP@.5 per view,
and per pallet kind the share of pallets found (a detection scoring >= 0.5 at IoU >= 0.5).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The set's seed (never used by training), size, image size, path-tracing samples per pixel.
SEED = 9_120_011
SIZE = 80
WIDTH, HEIGHT = 480, 360
SAMPLES = 32
#: Where the set lives: committed, rebuilt in place by ``render``.
SET_FOLDER = Path(__file__).parent / "data" / "pallet_independent"
#: The set's version, in its manifest: scores of another version are not comparable.
SET_VERSION = 1
#: The crowd rule (as the training generator's ``min_visible_fraction`` and ``min_box_side``
#: at 320 pixels wide).
MIN_VISIBLE_FRACTION = 0.25
MIN_BOX_SIDE_PER_WIDTH = 1 / 40
VIEWS = ("forklift", "handheld", "rack")
#: The score from which a detection counts in the recall per pallet kind.
RECALL_SCORE = 0.5
VIEW_SHARES = (0.4, 0.25, 0.35)
PALLET_KINDS = ("eur", "industrial", "half", "plastic", "stringer")
PALLET_SHARES = (0.45, 0.15, 0.1, 0.15, 0.15)

Box = tuple[tuple[float, float, float], tuple[float, float, float]]  # centre, full size


def _mi() -> Any:
    """Mitsuba, its CPU variant chosen (scalar: the LLVM variant needs a matching libLLVM)."""
    import mitsuba as mi

    if mi.variant() is None:
        mi.set_variant("scalar_rgb")
    return mi


# ---------------------------------------------------------------------------- pallet models
def _deck(length: float, widths: Sequence[float], width: float, z: float, t: float) -> list[Box]:
    """Boards along x, spread evenly across ``width`` (y), lying at height ``z``."""
    gap = (width - sum(widths)) / (len(widths) - 1)
    boards, y = [], -width / 2
    for w in widths:
        boards.append(((0.0, y + w / 2, z + t / 2), (length, w, t)))
        y += w + gap
    return boards


def block_pallet(length: float, width: float, top_boards: int, feet: float = 0.078) -> list[Box]:
    """A block pallet: bottom boards, 3 x 3 blocks, cross boards, then the top deck."""
    t = 0.022
    parts = _deck(length, (0.1, 0.145, 0.1), width, 0.0, t)
    xs = (-(length - 0.145) / 2, 0.0, (length - 0.145) / 2)
    ys = (-(width - 0.1) / 2, 0.0, (width - 0.1) / 2)
    for x in xs:
        for y in ys:
            parts.append(((x, y, t + feet / 2), (0.145, 0.145 if y == 0 else 0.1, feet)))
        parts.append(((x, 0.0, t + feet + t / 2), (0.145, width, t)))
    widths = [0.145 if i % 2 == 0 else 0.1 for i in range(top_boards)]
    return parts + _deck(length, widths, width, 2 * t + feet, t)


def plastic_pallet() -> list[Box]:
    """A plastic pallet: a 30 mm solid deck on nine 160 mm feet on three runners."""
    parts = _deck(1.2, (0.16, 0.16, 0.16), 0.8, 0.0, 0.02)
    for x in (-0.52, 0.0, 0.52):
        for y in (-0.32, 0.0, 0.32):
            parts.append(((x, y, 0.02 + 0.05), (0.16, 0.16, 0.1)))
    parts.append(((0.0, 0.0, 0.12 + 0.015), (1.2, 0.8, 0.03)))
    return parts


def stringer_pallet() -> list[Box]:
    """A 48 x 40 inch stringer pallet: three stringers along the length, decks across them."""
    length, width = 1.219, 1.016
    parts = [((0.0, y, 0.016 + 0.089 / 2), (length, 0.038, 0.089)) for y in (-0.489, 0.0, 0.489)]
    for k in range(5):  # bottom deck boards across the stringers
        x = -length / 2 + 0.07 + k * (length - 0.14) / 4
        parts.append(((x, 0.0, 0.008), (0.14, width, 0.016)))
    for k in range(7):
        x = -length / 2 + 0.045 + k * (length - 0.09) / 6
        parts.append(((x, 0.0, 0.016 + 0.089 + 0.008), (0.09, width, 0.016)))
    return parts


def pallet_parts(kind: str) -> list[Box]:
    """The parts of a pallet ``kind`` in its own frame (length along x, resting on z = 0)."""
    if kind == "eur":
        return block_pallet(1.2, 0.8, 5)
    if kind == "industrial":
        return block_pallet(1.2, 1.0, 7)
    if kind == "half":
        return block_pallet(0.8, 0.6, 3)
    if kind == "plastic":
        return plastic_pallet()
    if kind == "stringer":
        return stringer_pallet()
    msg = f"kind must be one of {PALLET_KINDS}, got {kind!r}"
    raise ValueError(msg)


def pallet_size(kind: str) -> tuple[float, float, float]:
    """Length, width and height [m] of a pallet ``kind``."""
    corners = np.array(
        [
            [np.subtract(c, np.divide(s, 2)), np.add(c, np.divide(s, 2))]
            for c, s in pallet_parts(kind)
        ]
    )
    extent = corners[:, 1].max(axis=0) - corners[:, 0].min(axis=0)
    return float(extent[0]), float(extent[1]), float(extent[2])


# ---------------------------------------------------------------------------- conditions
def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _pallet(rng: np.random.Generator) -> dict[str, Any]:
    kind = str(rng.choice(PALLET_KINDS, p=PALLET_SHARES))
    if kind == "plastic":
        finish = {
            "material": "plastic",
            "color": [[0.03, 0.03, 0.035], [0.25, 0.26, 0.27], [0.05, 0.12, 0.35]][
                int(rng.integers(3))
            ],
        }
    elif rng.random() < 0.2:
        finish = {
            "material": "paint",
            "color": [[0.06, 0.16, 0.45], [0.45, 0.06, 0.04]][int(rng.integers(2))],
        }
    else:
        finish = {"material": "wood", "age": _u(rng, 0.0, 1.0), "dirt": _u(rng, 0.0, 0.6)}
    return {"kind": kind, **finish, "seed": int(rng.integers(2**31))}


def _stack(rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    """A stack of ``count`` pallets of one kind (finishes may differ, as in a real stack)."""
    first = _pallet(rng)
    rest = [{**_pallet(rng), "kind": first["kind"]} for _ in range(count - 1)]
    if first["kind"] == "plastic":
        rest = [{**first, "seed": int(rng.integers(2**31))} for _ in range(count - 1)]
    return [first, *rest]


def _load(rng: np.random.Generator) -> dict[str, Any] | None:
    kind = str(
        rng.choice(["none", "cartons", "wrapped", "drums", "sacks"], p=[0.35, 0.3, 0.2, 0.08, 0.07])
    )
    if kind == "none":
        return None
    return {"kind": kind, "height": _u(rng, 0.3, 1.4), "seed": int(rng.integers(2**31))}


def conditions(index: int) -> dict[str, Any]:
    """Every drawn setting of image ``index`` (a pure function of the set seed and index)."""
    rng = np.random.default_rng([SEED, index])
    view = str(rng.choice(VIEWS, p=VIEW_SHARES))
    stacks: list[dict[str, Any]] = []
    case: dict[str, Any] = {"index": index, "view": view, "width": WIDTH, "height": HEIGHT}
    if view in ("forklift", "handheld"):
        count = int(rng.integers(1, 4)) if view == "forklift" else int(rng.integers(2, 7))
        distance = _u(rng, 1.2, 5.0) if view == "forklift" else _u(rng, 1.5, 6.0)
        spread = 0.9 if view == "forklift" else 2.5
        for k in range(count):
            empty = rng.random() < 0.5
            stacks.append(
                {
                    # Along the camera's axis (x), across it (y); the first stack is aimed at.
                    "x": distance + (0.0 if k == 0 else _u(rng, -0.5, 3.0)),
                    "y": 0.0 if k == 0 else _u(rng, -spread, spread) * (1 + k / 2),
                    "yaw": float(
                        rng.normal(0.0, 0.25) + (math.pi / 2 if rng.random() < 0.25 else 0.0)
                    ),
                    "pallets": _stack(rng, int(rng.integers(1, 6)) if empty else 1),
                    "load": None if empty else _load(rng),
                }
            )
        if view == "forklift":
            fork_camera = rng.random() < 0.5
            height = _u(rng, 0.25, 1.2) if fork_camera else _u(rng, 1.6, 2.4)
            pitch = _u(rng, -8.0, 8.0)
            case["tines"] = bool(fork_camera and rng.random() < 0.6)
        else:
            height, pitch = _u(rng, 1.3, 1.8), _u(rng, -10.0, 10.0)
            case["tines"] = False
        case["camera"] = {
            "height": height,
            "pitch": pitch,
            "roll": float(rng.normal(0, 2.0)),
            "yaw": _u(rng, -15.0, 15.0),
            "fov": _u(rng, 50.0, 85.0),
        }
        case["rack"] = None
    else:
        levels = int(rng.integers(2, 5))
        bays = int(rng.integers(2, 5))
        kind = str(rng.choice(["eur", "industrial"], p=[0.7, 0.3]))
        case["rack"] = {
            "distance": _u(rng, 2.5, 6.0),
            "angle": _u(rng, -50.0, 50.0),
            "levels": [0.0] + [float(1.5 * k + rng.uniform(-0.1, 0.2)) for k in range(1, levels)],
            "bays": bays,
            "frame_color": [
                [0.15, 0.3, 0.65],
                [0.55, 0.56, 0.58],
                [0.9, 0.55, 0.1],
                [0.2, 0.45, 0.25],
            ][int(rng.integers(4))],
            "beam_color": [
                [0.85, 0.35, 0.05],
                [0.15, 0.3, 0.65],
                [0.55, 0.56, 0.58],
                [0.8, 0.65, 0.1],
            ][int(rng.integers(4))],
            "slots": [
                [
                    [
                        {
                            "pallet": {**_pallet(rng), "kind": kind},
                            "load": _load(rng),
                            "shift": _u(rng, -0.08, 0.08),
                        }
                        if rng.random() < 0.75
                        else None
                        for _ in range(3)  # three pallets per bay
                    ]
                    for _ in range(bays)
                ]
                for _ in range(levels)
            ],
        }
        case["rack"]["aim"] = [_u(rng, -0.8, 0.8), int(rng.integers(0, levels))]
        case["camera"] = {
            "height": _u(rng, 1.2, 2.5),
            "pitch": _u(rng, -8.0, 8.0),
            "roll": float(rng.normal(0, 2.0)),
            "yaw": _u(rng, -10.0, 10.0),
            "fov": _u(rng, 50.0, 85.0),
        }
        case["tines"] = False
    case["stacks"] = stacks
    case["room"] = {
        "floor": str(rng.choice(["concrete", "epoxy", "asphalt"], p=[0.6, 0.25, 0.15])),
        "floor_tone": _u(rng, 0.25, 0.75),
        "wall_distance": _u(rng, 8.0, 18.0),
        "ceiling": _u(rng, 6.0, 11.0),
        # Mostly neutral walls (white, grey, beige), now and then a painted colour.
        "wall_color": (
            (np.full(3, _u(rng, 0.35, 0.9)) * rng.uniform(0.9, 1.1, size=3)).tolist()
            if rng.random() < 0.75
            else rng.uniform(0.2, 0.8, size=3).tolist()
        ),
    }
    case["clutter"] = [
        {
            "kind": str(rng.choice(["carton", "bin", "post", "cone", "barrel"])),
            "x": _u(rng, 1.0, 9.0),
            "y": _u(rng, -4.0, 4.0),
            "size": _u(rng, 0.3, 0.9),
            "yaw": _u(rng, 0.0, math.pi),
            "color": [_u(rng, 0.05, 0.9) for _ in range(3)],
        }
        for _ in range(int(rng.integers(0, 6)))
    ]
    case["lights"] = {
        "kind": str(rng.choice(["panels", "strips"])),
        "count": int(rng.integers(2, 7)),
        "kelvin": _u(rng, 2700.0, 6500.0),
        "power": _u(rng, 4.0, 20.0),
        "ambient": _u(rng, 0.02, 0.25),
        "door": bool(rng.random() < 0.3),
        "headlight": bool(view == "forklift" and rng.random() < 0.3),
        "seed": int(rng.integers(2**31)),
    }
    case["post"] = {
        "exposure": _u(rng, 0.6, 1.1),
        "gamma": _u(rng, 2.0, 2.6),
        "vignetting": _u(rng, 0.0, 0.35),
        "blur": _u(rng, 0.0, 1.0),
        "noise": _u(rng, 0.0, 0.03),
        "jpeg": int(rng.integers(60, 96)),
    }
    case["seed"] = int(rng.integers(2**31))
    return case


# ---------------------------------------------------------------------------- textures
def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled bilinearly, tiling."""
    grid = rng.random((cells, cells))
    grid = np.concatenate([grid, grid[:1]], axis=0)
    grid = np.concatenate([grid, grid[:, :1]], axis=1)
    ys = np.linspace(0, cells, shape[0], endpoint=False)
    xs = np.linspace(0, cells, shape[1], endpoint=False)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _fractal(rng: np.random.Generator, shape: tuple[int, int], octaves: int = 4) -> np.ndarray:
    total = sum(0.5**o * _value_noise(rng, shape, 4 * 2**o) for o in range(octaves))
    return total / sum(0.5**o for o in range(octaves))


def wood_texture(age: float, dirt: float, seed: int) -> np.ndarray:
    """Linear RGB (64, 256, 3) of sawn wood, grain along the second axis, aged and dirty."""
    rng = np.random.default_rng(seed)
    fresh = np.array([0.62, 0.45, 0.26]) * rng.uniform(0.8, 1.15)
    grey = np.array([0.36, 0.34, 0.31]) * rng.uniform(0.8, 1.1)
    base = (1 - age) * fresh + age * grey
    warp = _value_noise(rng, (64, 256), 4)
    rows = np.linspace(0, 1, 64)[:, None]
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(5, 12) * rows + 1.5 * warp))
    streaks = _fractal(rng, (64, 256))
    shade = 0.8 + 0.2 * grain**3 + 0.15 * (streaks - 0.5)
    image = base[None, None, :] * shade[..., None]
    stain = np.clip((_fractal(rng, (64, 256)) - (1 - dirt)) * 3, 0, 1)[..., None]
    image = image * (1 - 0.6 * stain) + 0.05 * stain
    return np.clip(image, 0.01, 0.95).astype(np.float32)


def surface_texture(kind: str, tone: float, seed: int) -> np.ndarray:
    """Linear RGB (128, 128, 3) of a floor or wall: concrete, epoxy, asphalt, or painted."""
    rng = np.random.default_rng(seed)
    noise = _fractal(rng, (128, 128), 5)
    if kind == "concrete":
        color = np.array([0.52, 0.5, 0.47]) * tone * 1.4
        shade = 0.75 + 0.5 * noise + 0.15 * (rng.random((128, 128)) - 0.5)
    elif kind == "epoxy":
        color = (
            np.array([[0.2, 0.35, 0.3], [0.5, 0.5, 0.45], [0.35, 0.12, 0.1]][int(rng.integers(3))])
            * tone
            * 1.5
        )
        shade = 0.9 + 0.2 * noise
    elif kind == "asphalt":
        color = np.array([0.12, 0.12, 0.13]) * (0.5 + tone)
        shade = 0.7 + 0.6 * rng.random((128, 128)) * noise
    else:
        color = np.array([0.5, 0.5, 0.5]) * tone * 1.6
        shade = 0.9 + 0.2 * noise
    return np.clip(color[None, None, :] * shade[..., None], 0.005, 0.95).astype(np.float32)


def carton_texture(seed: int) -> np.ndarray:
    """Linear RGB (64, 64, 3) of corrugated board with a strip of tape."""
    rng = np.random.default_rng(seed)
    color = np.array([0.55, 0.38, 0.2]) * rng.uniform(0.7, 1.2)
    image = color[None, None, :] * (0.9 + 0.2 * _fractal(rng, (64, 64), 3))[..., None]
    if rng.random() < 0.7:
        tape = rng.integers(24, 40)
        image[:, tape : tape + 6] = [0.7, 0.6, 0.45] if rng.random() < 0.5 else [0.8, 0.8, 0.78]
    if rng.random() < 0.5:  # a printed label
        y, x = rng.integers(8, 40, size=2)
        image[y : y + 12, x : x + 18] = 0.85
    return np.clip(image, 0.01, 0.95).astype(np.float32)


# ---------------------------------------------------------------------------- scene
def kelvin_rgb(kelvin: float) -> list[float]:
    """Linear RGB of a light of colour temperature ``kelvin``, max channel 1 (a table).

    Values of the CIE 1931 Planckian locus in sRGB at 1000 K steps, interpolated.
    """
    table = {
        2000: (1.0, 0.54, 0.17),
        3000: (1.0, 0.71, 0.42),
        4000: (1.0, 0.82, 0.64),
        5000: (1.0, 0.89, 0.81),
        6000: (1.0, 0.95, 0.93),
        7000: (0.96, 0.95, 1.0),
        8000: (0.89, 0.91, 1.0),
        9000: (0.84, 0.88, 1.0),
    }
    keys = sorted(table)
    k = min(max(kelvin, keys[0]), keys[-1])
    srgb = [float(np.interp(k, keys, [table[t][c] for t in keys])) for c in range(3)]
    linear = [c**2.2 for c in srgb]
    return [c / max(linear) for c in linear]


def _yaw(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def box_mesh(
    name: str,
    boxes: Sequence[Box],
    rotation: np.ndarray,
    offset: Sequence[float],
    bsdf: Any,
    texture_scale: tuple[float, float] = (1.0, 1.0),
    seed: int = 0,
) -> Any:
    """One Mitsuba mesh of cuboids (centre, size in a local frame), rotated then moved.

    Texture coordinates are metres along each face, the face's longer side first (so wood
    grain runs along a board), divided by ``texture_scale`` and shifted per box.
    """
    mi = _mi()
    rng = np.random.default_rng(seed)
    vertices, uvs, faces = [], [], []
    for center, size in boxes:
        low = np.subtract(center, np.divide(size, 2))
        high = np.add(center, np.divide(size, 2))
        shift = rng.random(2)
        for axis in range(3):
            a, b = (i for i in range(3) if i != axis)
            if size[b] > size[a]:
                a, b = b, a
            for side in (0, 1):
                base = len(vertices)
                corners = []
                for s, t in ((0, 0), (1, 0), (1, 1), (0, 1)):
                    point = np.empty(3)
                    point[axis] = (low, high)[side][axis]
                    point[a] = (low, high)[s][a]
                    point[b] = (low, high)[t][b]
                    corners.append(point)
                    uvs.append(
                        (
                            point[a] / texture_scale[0] + shift[0],
                            point[b] / texture_scale[1] + shift[1],
                        )
                    )
                vertices += corners
                normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
                outward = 1.0 if side else -1.0
                if normal[axis] * outward > 0:
                    faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
                else:
                    faces += [(base, base + 2, base + 1), (base, base + 3, base + 2)]
    points = np.asarray(vertices) @ rotation.T + np.asarray(offset)
    props = mi.Properties()
    props["bsdf"] = bsdf
    mesh = mi.Mesh(name, len(points), len(faces), props=props, has_vertex_texcoords=True)
    params = mi.traverse(mesh)
    params["vertex_positions"] = points.astype(np.float32).ravel()
    params["vertex_texcoords"] = np.asarray(uvs, np.float32).ravel()
    params["faces"] = np.asarray(faces, np.uint32).ravel()
    params.update()
    return mesh


def _bitmap(image: np.ndarray) -> dict[str, Any]:
    mi = _mi()
    return {"type": "bitmap", "bitmap": mi.Bitmap(image), "wrap_mode": "repeat", "raw": True}


def pallet_bsdf(pallet: dict[str, Any]) -> dict[str, Any]:
    """The Mitsuba BSDF of a pallet's finish (wood, paint or plastic)."""
    if pallet["material"] == "wood":
        texture = wood_texture(pallet["age"], pallet["dirt"], pallet["seed"])
        return {"type": "diffuse", "reflectance": _bitmap(texture)}
    if pallet["material"] == "paint":
        return {
            "type": "principled",
            "base_color": {"type": "rgb", "value": pallet["color"]},
            "roughness": 0.6,
            "specular": 0.3,
        }
    return {
        "type": "principled",
        "base_color": {"type": "rgb", "value": pallet["color"]},
        "roughness": 0.35,
        "specular": 0.5,
    }


class SceneBuilder:
    """Collects the shapes of one scene as a Mitsuba scene dictionary; pallets by name."""

    def __init__(self, seed: int) -> None:
        self.shapes: dict[str, Any] = {}
        self.pallets: list[str] = []
        self.records: list[dict[str, Any]] = []
        self.rng = np.random.default_rng(seed)

    def add(self, name: str, shape: Any) -> None:
        """Add a shape (or light) under a unique name that starts with ``name``."""
        self.shapes[f"{name}_{len(self.shapes)}"] = shape

    def add_boxes(
        self,
        name: str,
        boxes: Sequence[Box],
        rotation: np.ndarray,
        offset: Sequence[float],
        bsdf: dict[str, Any],
        texture_scale: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        """Add cuboids as one mesh (see :func:`box_mesh`) with a BSDF given as a dict."""
        mi = _mi()
        key = f"{name}_{len(self.shapes)}"
        mesh = box_mesh(
            key,
            boxes,
            rotation,
            offset,
            mi.load_dict(bsdf),
            texture_scale,
            seed=int(self.rng.integers(2**31)),
        )
        self.shapes[key] = mesh

    def add_pallet(self, pallet: dict[str, Any], position: Sequence[float], yaw: float) -> float:
        """Add a pallet resting at ``position`` (its base centre); returns its height."""
        name = f"pallet{len(self.pallets)}"
        self.add_boxes(
            name,
            pallet_parts(pallet["kind"]),
            _yaw(yaw),
            position,
            pallet_bsdf(pallet),
            texture_scale=(1.2, 0.3),
        )
        self.pallets.append(next(reversed(self.shapes)))
        self.records.append(
            {
                "kind": pallet["kind"],
                "material": pallet["material"],
                "position": [float(v) for v in position],
                "yaw": yaw,
            }
        )
        return pallet_size(pallet["kind"])[2]

    def add_load(
        self, load: dict[str, Any] | None, kind: str, base: Sequence[float], yaw: float
    ) -> None:
        """Goods on a pallet of ``kind`` whose top centre is ``base``."""
        if load is None:
            return
        length, width, _ = pallet_size(kind)
        rng = np.random.default_rng(load["seed"])
        rotation = _yaw(yaw)
        height = load["height"]
        if load["kind"] == "cartons":
            nx, ny, nz = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 4))
            bx, by, bz = length / nx, width / ny, height / nz
            for i in range(nx):
                for j in range(ny):
                    for k in range(nz):
                        if k == nz - 1 and rng.random() < 0.15:
                            continue
                        center = (
                            -length / 2 + (i + 0.5) * bx,
                            -width / 2 + (j + 0.5) * by,
                            (k + 0.5) * bz,
                        )
                        texture = carton_texture(int(rng.integers(2**31)))
                        self.add_boxes(
                            "carton",
                            [(center, (bx * 0.97, by * 0.97, bz * 0.97))],
                            rotation,
                            base,
                            {"type": "diffuse", "reflectance": _bitmap(texture)},
                            texture_scale=(bx, bz),
                        )
        elif load["kind"] == "wrapped":
            tint = rng.uniform(0.3, 0.9, size=3).tolist()
            bsdf = {
                "type": "principled",
                "base_color": {"type": "rgb", "value": tint},
                "roughness": 0.15,
                "specular": 0.8,
            }
            size = (length * 0.98, width * 0.98, height)
            self.add_boxes("wrapped", [((0.0, 0.0, height / 2), size)], rotation, base, bsdf)
        elif load["kind"] == "drums":
            color = rng.uniform(0.05, 0.8, size=3).tolist()
            for dx in (-length / 4, length / 4):
                for dy in (-width / 4, width / 4):
                    x, y, z = rotation @ np.array([dx, dy, 0.0]) + np.asarray(base)
                    radius = min(length, width) / 4 * 0.95
                    self.add(
                        "drum",
                        {
                            "type": "cylinder",
                            "p0": [x, y, z],
                            "p1": [x, y, z + min(height, 0.9)],
                            "radius": radius,
                            "bsdf": {
                                "type": "principled",
                                "base_color": {"type": "rgb", "value": color},
                                "roughness": 0.3,
                                "metallic": 0.3,
                            },
                        },
                    )
                    self.add(
                        "lid",
                        {
                            "type": "disk",
                            "to_world": _transform(
                                [x, y, z + min(height, 0.9)], scale=[radius] * 3
                            ),
                            "bsdf": {
                                "type": "diffuse",
                                "reflectance": {"type": "rgb", "value": color},
                            },
                        },
                    )
        else:  # sacks: soft-looking bags in two layers, each turned a little
            color = (np.array([0.75, 0.72, 0.62]) * rng.uniform(0.7, 1.1)).tolist()
            bsdf = {"type": "diffuse", "reflectance": {"type": "rgb", "value": color}}
            for layer in range(2):
                for dx in (-length / 4, length / 4):
                    for dy in (-width / 4, width / 4):
                        x, y, z = rotation @ np.array([dx, dy, 0.0]) + np.asarray(base)
                        bag = [((0.0, 0.0, 0.09 + 0.18 * layer), (length / 2.1, width / 2.1, 0.17))]
                        self.add_boxes("sack", bag, _yaw(yaw + rng.normal(0, 0.1)), (x, y, z), bsdf)


def _transform(
    position: Sequence[float], scale: Sequence[float] = (1.0, 1.0, 1.0), yaw: float = 0.0
) -> Any:
    mi = _mi()
    return (
        mi.ScalarTransform4f()
        .translate([float(v) for v in position])
        .rotate([0, 0, 1], math.degrees(yaw))
        .scale([float(v) for v in scale])
    )


def _rack_frame(rack: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The rack's rotation (local x along the rack, +y towards the aisle), origin, sizes."""
    length, width, _ = pallet_size(_rack_kind(rack))
    depth = length + 0.1
    angle = math.radians(rack["angle"])
    origin = np.array([rack["distance"] + depth / 2, 0.0, 0.0])
    sizes = {"bay": 3 * width + 0.4, "depth": depth, "width": width}
    return _yaw(angle + math.pi / 2), origin, sizes


def _rack_kind(rack: dict[str, Any]) -> str:
    for level in rack["slots"]:
        for bay in level:
            for slot in bay:
                if slot is not None:
                    return str(slot["pallet"]["kind"])
    return "eur"


def aim_point(case: dict[str, Any]) -> np.ndarray:
    """Where the camera points before its jitter: the first stack, or a spot on the rack."""
    if case["rack"] is None:
        stack = case["stacks"][0]
        height = sum(pallet_size(p["kind"])[2] for p in stack["pallets"])
        return np.array([stack["x"], stack["y"], 0.5 * height + (0.2 if stack["load"] else 0.0)])
    rack = case["rack"]
    rotation, origin, sizes = _rack_frame(rack)
    along = rack["aim"][0] * rack["bays"] * sizes["bay"] / 2
    level = rack["levels"][min(int(rack["aim"][1]), len(rack["levels"]) - 1)]
    return rotation @ np.array([along, sizes["depth"] / 2, level + 0.4]) + origin


def camera_pose(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin, target and up vector of the image's camera: aimed, then turned by its jitter."""
    camera = case["camera"]
    origin = np.array([0.0, 0.0, camera["height"]])
    offset = aim_point(case) - origin
    yaw = math.atan2(offset[1], offset[0]) + math.radians(camera["yaw"])
    pitch = math.atan2(offset[2], math.hypot(offset[0], offset[1])) + math.radians(camera["pitch"])
    roll = math.radians(camera["roll"])
    forward = np.array(
        [math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)]
    )
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    up = math.cos(roll) * up + math.sin(roll) * right
    return origin, origin + forward, up


def project(case: dict[str, Any], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (x right, y down, in pixels) and depths of world ``points`` (n, 3)."""
    origin, target, up = camera_pose(case)
    forward = (target - origin) / np.linalg.norm(target - origin)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    offsets = np.asarray(points, dtype=float) - origin
    depth = offsets @ forward
    focal = case["width"] / 2 / math.tan(math.radians(case["camera"]["fov"]) / 2)
    safe = np.where(depth > 1e-6, depth, 1e-6)
    xy = np.stack(
        [
            case["width"] / 2 + focal * (offsets @ right) / safe,
            case["height"] / 2 - focal * (offsets @ up) / safe,
        ],
        axis=1,
    )
    return xy, depth


def pallet_corners(record: dict[str, Any]) -> np.ndarray:
    """The 8 corners (8, 3) of a pallet's bounding box where the scene placed it."""
    length, width, height = pallet_size(record["kind"])
    local = np.array(
        [
            [x, y, z]
            for x in (-length / 2, length / 2)
            for y in (-width / 2, width / 2)
            for z in (0.0, height)
        ]
    )
    return local @ _yaw(record["yaw"]).T + np.asarray(record["position"])


def build_scene(case: dict[str, Any]) -> SceneBuilder:
    """Every shape and light of image ``case`` (see :func:`conditions`)."""
    builder = SceneBuilder(case["seed"])
    room = case["room"]
    rng = np.random.default_rng(case["seed"])
    floor = surface_texture(room["floor"], room["floor_tone"], int(rng.integers(2**31)))
    glossy = room["floor"] == "epoxy"
    floor_bsdf = (
        {"type": "principled", "base_color": _bitmap(floor), "roughness": 0.25, "specular": 0.6}
        if glossy
        else {"type": "diffuse", "reflectance": _bitmap(floor)}
    )
    far = room["wall_distance"]
    builder.add(
        "floor",
        {
            "type": "rectangle",
            "to_world": _transform([far / 2, 0, 0], scale=[far, far, 1]),
            "bsdf": floor_bsdf,
        },
    )
    wall = surface_texture("paint", 1.0, int(rng.integers(2**31))) * np.asarray(
        room["wall_color"], np.float32
    )
    mi = _mi()
    wall_bsdf = {"type": "diffuse", "reflectance": _bitmap(wall)}
    # The far wall faces the camera; two side walls.
    builder.add(
        "wall",
        {
            "type": "rectangle",
            "to_world": mi.ScalarTransform4f()
            .translate([far, 0, room["ceiling"] / 2])
            .rotate([0, 1, 0], -90)
            .scale([room["ceiling"] / 2, far, 1]),
            "bsdf": wall_bsdf,
        },
    )
    for side in (-1, 1):
        builder.add(
            "wall",
            {
                "type": "rectangle",
                "to_world": mi.ScalarTransform4f()
                .translate([far / 2, side * far * 0.7, room["ceiling"] / 2])
                .rotate([1, 0, 0], side * 90)
                .scale([far, room["ceiling"] / 2, 1]),
                "bsdf": wall_bsdf,
            },
        )
    builder.add(
        "ceiling",
        {
            "type": "rectangle",
            "to_world": mi.ScalarTransform4f()
            .translate([far / 2, 0, room["ceiling"]])
            .rotate([1, 0, 0], 180)
            .scale([far, far, 1]),
            "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": 0.5}},
        },
    )
    _add_lights(builder, case)
    for stack in case["stacks"]:
        z = 0.0
        for pallet in stack["pallets"]:
            z += builder.add_pallet(pallet, (stack["x"], stack["y"], z), stack["yaw"])
        builder.add_load(
            stack["load"], stack["pallets"][-1]["kind"], (stack["x"], stack["y"], z), stack["yaw"]
        )
    if case["rack"] is not None:
        _add_rack(builder, case["rack"])
    for item in case["clutter"]:
        _add_clutter(builder, item)
    if case["tines"]:
        steel = {
            "type": "principled",
            "base_color": {"type": "rgb", "value": [0.12, 0.12, 0.12]},
            "metallic": 0.6,
            "roughness": 0.5,
        }
        tines = [((0.6, y, -0.25), (1.2, 0.12, 0.05)) for y in (-0.35, 0.35)]
        builder.add_boxes(
            "tine",
            tines,
            _yaw(math.radians(case["camera"]["yaw"])),
            (0.0, 0.0, case["camera"]["height"]),
            steel,
        )
    return builder


def _add_lights(builder: SceneBuilder, case: dict[str, Any]) -> None:
    lights = case["lights"]
    rng = np.random.default_rng(lights["seed"])
    color = kelvin_rgb(lights["kelvin"])
    ceiling = case["room"]["ceiling"] - 0.05
    for _ in range(lights["count"]):
        x, y = rng.uniform(-1.0, case["room"]["wall_distance"]), rng.uniform(-6.0, 6.0)
        size = [0.3, 0.6] if lights["kind"] == "panels" else [0.08, 1.2]
        radiance = [
            lights["power"]
            * c
            * (0.6 if lights["kind"] == "panels" else 2.0)
            * (ceiling / 8) ** 2
            * 10
            for c in color
        ]
        builder.add(
            "light",
            {
                "type": "rectangle",
                "to_world": _transform(
                    [x, y, ceiling], scale=[*size, 1.0], yaw=float(rng.uniform(0, math.pi))
                )
                @ _mi().ScalarTransform4f().rotate([1, 0, 0], 180),
                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": radiance}},
            },
        )
    builder.shapes["ambient"] = {
        "type": "constant",
        "radiance": {"type": "rgb", "value": [lights["ambient"] * c for c in color]},
    }
    if lights["door"]:
        mi = _mi()
        side = float(rng.choice([-1, 1]))
        far = case["room"]["wall_distance"]
        sky = kelvin_rgb(float(rng.uniform(6500.0, 9000.0)))
        builder.add(
            "door",
            {
                "type": "rectangle",
                "to_world": mi.ScalarTransform4f()
                .translate([rng.uniform(2.0, far), side * (far * 0.7 - 0.01), 2.0])
                .rotate([1, 0, 0], side * 90)
                .scale([1.5, 2.0, 1]),
                "emitter": {
                    "type": "area",
                    "radiance": {"type": "rgb", "value": [8.0 * c for c in sky]},
                },
            },
        )
    if lights["headlight"]:
        origin, target, _ = camera_pose(case)
        builder.shapes["headlight"] = {
            "type": "spot",
            "cutoff_angle": 35.0,
            "beam_width": 25.0,
            "to_world": _mi()
            .ScalarTransform4f()
            .look_at(
                origin=(origin + np.array([0.0, 0.3, 0.2])).tolist(),
                target=(target + np.array([0.0, 0.0, -0.1])).tolist(),
                up=[0, 0, 1],
            ),
            "intensity": {"type": "rgb", "value": [6.0, 6.0, 5.5]},
        }


def _add_rack(builder: SceneBuilder, rack: dict[str, Any]) -> None:
    """Rack bays along a line facing the camera; pallets of each slot on the beams."""
    rotation, origin, sizes = _rack_frame(rack)
    width, bay, depth, bays = sizes["width"], sizes["bay"], sizes["depth"], rack["bays"]
    angle = math.radians(rack["angle"])
    center = -(bays * bay) / 2
    frame = {
        "type": "principled",
        "base_color": {"type": "rgb", "value": rack["frame_color"]},
        "roughness": 0.5,
    }
    beam = {
        "type": "principled",
        "base_color": {"type": "rgb", "value": rack["beam_color"]},
        "roughness": 0.45,
    }
    top = rack["levels"][-1] + 1.8
    posts = [
        ((center + b * bay, side * depth / 2, top / 2), (0.09, 0.07, top))
        for b in range(bays + 1)
        for side in (-1, 1)
    ]
    builder.add_boxes("upright", posts, rotation, origin, frame)
    beams = [
        ((center + (b + 0.5) * bay, side * depth / 2, level - 0.06), (bay - 0.09, 0.05, 0.12))
        for b in range(bays)
        for side in (-1, 1)
        for level in rack["levels"][1:]
    ]
    if beams:
        builder.add_boxes("beam", beams, rotation, origin, beam)
    for level, height in zip(rack["slots"], rack["levels"], strict=True):
        for b, slots in enumerate(level):
            for s, slot in enumerate(slots):
                if slot is None:
                    continue
                local = np.array(
                    [center + b * bay + 0.2 + (s + 0.5) * width, slot["shift"], height]
                )
                position = rotation @ local + origin
                yaw = angle  # the pallet's length runs into the rack, its short side faces out
                top_z = height + builder.add_pallet(slot["pallet"], position, yaw)
                builder.add_load(
                    slot["load"], slot["pallet"]["kind"], (position[0], position[1], top_z), yaw
                )


def _add_clutter(builder: SceneBuilder, item: dict[str, Any]) -> None:
    size, color = item["size"], item["color"]
    bsdf = {"type": "diffuse", "reflectance": {"type": "rgb", "value": color}}
    if item["kind"] in ("carton", "bin"):
        if item["kind"] == "carton":
            bsdf = {"type": "diffuse", "reflectance": _bitmap(carton_texture(int(size * 1e6)))}
        box = [((0.0, 0.0, size / 2), (size, size * 0.8, size))]
        builder.add_boxes(item["kind"], box, _yaw(item["yaw"]), (item["x"], item["y"], 0.0), bsdf)
    else:  # upright cylinders: a yellow post, an orange cone, a barrel of the item's colour
        height, radius, paint = {
            "post": (1.2, 0.06, [0.8, 0.65, 0.05]),
            "cone": (0.5, 0.12, [0.9, 0.3, 0.05]),
        }.get(item["kind"], (0.9, 0.3, color))
        builder.add(
            item["kind"],
            {
                "type": "cylinder",
                "p0": [item["x"], item["y"], 0.0],
                "p1": [item["x"], item["y"], height],
                "radius": radius,
                "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": paint}},
            },
        )


# ---------------------------------------------------------------------------- rendering
def sensor(
    case: dict[str, Any], samples: int, enlarge: int = 1, crop: Sequence[int] | None = None
) -> dict[str, Any]:
    """The image's camera; ``enlarge`` > 1 widens the film around it with the same pixels.

    ``crop`` (x0, y0, x1, y1 on the enlarged film) renders only that window of it.
    """
    mi = _mi()
    origin, target, up = camera_pose(case)
    fov = math.radians(case["camera"]["fov"])
    wide = 2 * math.atan(enlarge * math.tan(fov / 2))
    return {
        "type": "perspective",
        "fov": math.degrees(wide),
        "fov_axis": "x",
        "near_clip": 0.05,
        "to_world": mi.ScalarTransform4f().look_at(
            origin=origin.tolist(), target=target.tolist(), up=up.tolist()
        ),
        "film": {
            "type": "hdrfilm",
            "width": case["width"] * enlarge,
            "height": case["height"] * enlarge,
            "rfilter": {"type": "box"} if samples == 1 else {"type": "gaussian"},
            **(
                {}
                if crop is None
                else {
                    "crop_offset_x": crop[0],
                    "crop_offset_y": crop[1],
                    "crop_width": crop[2] - crop[0],
                    "crop_height": crop[3] - crop[1],
                }
            ),
        },
        # One sample at each pixel's centre for the instance passes (exact, repeatable).
        "sampler": {"type": "independent", "sample_count": samples}
        if samples > 1
        else {"type": "stratified", "sample_count": 1, "jitter": False},
    }


def instance_map(shapes: dict[str, Any], camera: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Which shape each pixel sees (one sample per pixel): indices into the returned names."""
    mi = _mi()
    scene = mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "aov", "aovs": "i:shape_index"},
            "sensor": camera,
            **shapes,
        }
    )
    image = np.array(mi.render(scene, spp=1))
    # shape_index counts the scene's shapes from 1 (0: the ray left the scene).
    names = [shape.id() for shape in scene.shapes()]
    return np.rint(image[..., -1]).astype(np.int64), names


def annotate(
    builder: SceneBuilder, case: dict[str, Any], enlarge: int = 5
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Each pallet's box, visible fraction and crowd flag, from Mitsuba's instance output.

    Returns:
        One entry per pallet with visible pixels, and the instance image (0: no pallet,
        ``k + 1``: pallet ``k``).
    """
    width, height = case["width"], case["height"]
    ids, names = instance_map(builder.shapes, sensor(case, 1))
    pallet_of = np.zeros(len(names) + 1, dtype=np.int64)
    for number, name in enumerate(builder.pallets):
        pallet_of[names.index(name) + 1] = number + 1
    instances = pallet_of[ids]
    min_side = MIN_BOX_SIDE_PER_WIDTH * width
    found = []
    for number, name in enumerate(builder.pallets):
        mask = instances == number + 1
        visible = int(mask.sum())
        if visible == 0:
            continue
        alone, _ = instance_map(
            {name: builder.shapes[name]}, _lone_camera(case, builder, number, enlarge)
        )
        footprint = int((alone > 0).sum())
        rows, cols = np.nonzero(mask)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
        fraction = visible / max(footprint, visible)
        crowd = fraction < MIN_VISIBLE_FRACTION or min(box[2] - box[0], box[3] - box[1]) < min_side
        found.append(
            {
                **builder.records[number],
                "pallet": number,
                "box": box,
                "visible_pixels": visible,
                "footprint_pixels": footprint,
                "visible_fraction": fraction,
                "crowd": bool(crowd),
            }
        )
    del height
    return found, instances


def _lone_camera(
    case: dict[str, Any], builder: SceneBuilder, number: int, enlarge: int
) -> dict[str, Any]:
    """The enlarged film cropped to where pallet ``number`` can project (all of it if unsure)."""
    xy, depth = project(case, pallet_corners(builder.records[number]))
    full = (0, 0, case["width"] * enlarge, case["height"] * enlarge)
    if (depth < 0.1).any():
        return sensor(case, 1, enlarge)
    shift = np.array([case["width"], case["height"]]) * (enlarge - 1) / 2
    low = np.floor(xy.min(axis=0) + shift).astype(int) - 2
    high = np.ceil(xy.max(axis=0) + shift).astype(int) + 2
    crop = (max(low[0], 0), max(low[1], 0), min(high[0], full[2]), min(high[1], full[3]))
    if crop[2] <= crop[0] or crop[3] <= crop[1]:
        return sensor(case, 1, enlarge)
    return sensor(case, 1, enlarge, crop=crop)


def develop(radiance: np.ndarray, post: dict[str, Any], seed: int) -> np.ndarray:
    """A camera's processing of linear radiance: exposure, vignetting, tone, blur, noise (uint8)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    luminance = radiance @ np.array([0.2126, 0.7152, 0.0722])
    image = radiance * (post["exposure"] * 0.8 / max(np.percentile(luminance, 97), 1e-6))
    h, w = luminance.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    image = image * (1 - post["vignetting"] * r2)[..., None]
    image = image / (1 + 0.25 * image)  # a soft shoulder for highlights
    image = np.clip(image / (1 / 1.25), 0, 1) ** (1 / post["gamma"])
    picture = Image.fromarray((image * 255 + 0.5).astype(np.uint8))
    if post["blur"] > 0.05:
        picture = picture.filter(ImageFilter.GaussianBlur(post["blur"]))
    values = np.asarray(picture, np.float32) / 255
    values = values + rng.normal(0, post["noise"], size=values.shape) * np.sqrt(values + 0.02)
    return (np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_one(
    index: int, out: Path, samples: int = SAMPLES, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> dict[str, Any]:
    """Render image ``index`` into ``out`` (JPEG, instance PNG, record JSON); its record.

    ``samples`` (per pixel) and ``size`` (width, height) other than the set's are for tests.
    """
    from PIL import Image

    mi = _mi()
    start = time.perf_counter()
    case = {**conditions(index), "width": size[0], "height": size[1]}
    builder = build_scene(case)
    pallets, instances = annotate(builder, case)
    scene = mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": 4},
            "sensor": sensor(case, samples),
            **builder.shapes,
        }
    )
    radiance = np.array(mi.render(scene, seed=case["seed"] % 2**31))[..., :3]
    picture = develop(radiance, case["post"], case["seed"])
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=case["post"]["jpeg"])
    (out / f"{index:03d}.jpg").write_bytes(buffer.getvalue())
    Image.fromarray(instances.astype(np.uint8)).save(out / f"{index:03d}_instances.png")
    record = {
        **case,
        "pallets": pallets,
        "samples": samples,
        "seconds": time.perf_counter() - start,
    }
    (out / f"{index:03d}.json").write_text(json.dumps(record))
    return record


def coco(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The set's COCO file: one category, crowd pallets flagged, each pallet's attributes."""
    images, annotations = [], []
    for record in records:
        image_id = record["index"] + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"{record['index']:03d}.jpg",
                "width": record["width"],
                "height": record["height"],
                "view": record["view"],
            }
        )
        for pallet in record["pallets"]:
            x0, y0, x1, y1 = pallet["box"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(pallet["crowd"]),
                    "kind": pallet["kind"],
                    "visible_fraction": round(pallet["visible_fraction"], 4),
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "pallet"}],
    }


def render(out: Path, count: int) -> None:
    """Render images ``0 .. count - 1`` that ``out`` lacks, then write the COCO file."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not (out / f"{i:03d}.json").exists()]
    print(f"{count - len(todo)} of {count} images already rendered in {out}", flush=True)
    for done, index in enumerate(todo, start=1):
        record = render_one(index, out)
        targets = sum(not p["crowd"] for p in record["pallets"])
        print(
            f"[{done}/{len(todo)}] image {index}: {record['view']}, {targets} pallets "
            f"(+{len(record['pallets']) - targets} crowd), {record['seconds']:.0f} s",
            flush=True,
        )
    records = [json.loads((out / f"{i:03d}.json").read_text()) for i in range(count)]
    (out / "coco.json").write_text(json.dumps(coco(records)))
    manifest = {"seed": SEED, "version": SET_VERSION, "images": records}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {out / 'coco.json'} and {out / 'manifest.json'}")


# ---------------------------------------------------------------------------- scoring
def evaluate(task: Any, folder: Path = SET_FOLDER, batch_size: int = 4) -> dict[str, Any]:
    """COCO scores of a detection task on the set: overall and per view; recall per kind."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    from lightning_synth.data.coco import CocoDetection
    from lightning_synth.tasks.detection import evaluation_target

    annotations = folder / "coco.json"
    if not annotations.exists():
        msg = f"{annotations} does not exist; run the render command first"
        raise FileNotFoundError(msg)
    dataset = CocoDetection(annotations)
    views = {image["id"]: image["view"] for image in json.loads(annotations.read_text())["images"]}
    task.eval()
    predictions, targets, image_views, image_ids = [], [], [], []
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        with torch.no_grad():
            predictions += task([s["image"] for s in samples])
        targets += [evaluation_target(s["boxes"], s["labels"], s["meta"]) for s in samples]
        image_views += [views[s["meta"]["image_id"]] for s in samples]
        image_ids += [s["meta"]["image_id"] for s in samples]

    def scores(keep: Sequence[int]) -> dict[str, float]:
        metric = MeanAveragePrecision(box_format="xyxy", backend="faster_coco_eval")
        metric.update([predictions[i] for i in keep], [targets[i] for i in keep])
        result = metric.compute()
        return {key: float(result[key]) for key in ("map", "map_50", "map_75", "mar_100")}

    everything = range(len(dataset))
    result: dict[str, Any] = {"images": len(dataset), **scores(everything)}
    result["targets"] = int(sum(int((t["iscrowd"] == 0).sum()) for t in targets))
    result["crowd"] = int(sum(int(t["iscrowd"].sum()) for t in targets))
    result["detections"] = int(sum(len(p["boxes"]) for p in predictions))
    result["views"] = {
        view: {
            "images": image_views.count(view),
            **scores([i for i in everything if image_views[i] == view]),
        }
        for view in VIEWS
        if view in image_views
    }
    found = dict(zip(image_ids, predictions, strict=True))
    result["kinds"] = kind_recall(json.loads(annotations.read_text())["annotations"], found)
    return result


def kind_recall(
    annotations: Sequence[dict[str, Any]],
    predictions: dict[int, dict[str, Any]],
    threshold: float = RECALL_SCORE,
    iou: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Per pallet kind: how many pallets to find, and the share that a detection finds.

    A pallet (a non-crowd annotation) is found when a detection scoring at least
    ``threshold`` overlaps its box at IoU ``iou`` or more; detections are not matched one
    to one, so this says which kinds a detector misses, not its precision.
    """
    import torch
    from torchvision.ops import box_iou

    counts: dict[str, list[int]] = {}
    for annotation in annotations:
        if annotation["iscrowd"]:
            continue
        x, y, w, h = annotation["bbox"]
        truth = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32)
        detections = predictions[annotation["image_id"]]
        boxes = detections["boxes"][detections["scores"] >= threshold].float()
        hit = bool(len(boxes)) and bool((box_iou(truth, boxes) >= iou).any())
        tally = counts.setdefault(annotation["kind"], [0, 0])
        tally[0] += 1
        tally[1] += hit
    return {
        kind: {"pallets": total, "recall_50": hits / total}
        for kind, (total, hits) in sorted(counts.items())
    }


def score(checkpoints: Sequence[Path], folder: Path, out: Path | None) -> list[dict[str, Any]]:
    """Score checkpoints of the detection recipe on the set; print a line per checkpoint."""
    from lightning_synth.predict import load_task
    from lightning_synth.tasks.detection import DetectionTask

    manifest = json.loads((folder / "manifest.json").read_text())
    results = []
    for checkpoint in checkpoints:
        result = evaluate(load_task(DetectionTask, checkpoint), folder)
        result.update(checkpoint=str(checkpoint), set_version=manifest["version"])
        views = ", ".join(f"{v} {r['map_50']:.3f}" for v, r in result["views"].items())
        kinds = ", ".join(
            f"{k} {r['recall_50']:.2f} of {r['pallets']}" for k, r in result["kinds"].items()
        )
        print(
            f"{checkpoint}: mAP {result['map']:.3f}, mAP@.5 {result['map_50']:.3f}, "
            f"mAP@.75 {result['map_75']:.3f}, mAR@100 {result['mar_100']:.3f} "
            f"({result['targets']} pallets, {result['crowd']} crowd, "
            f"{result['detections']} detections); mAP@.5 by view: {views}; "
            f"found at score >= {RECALL_SCORE} by kind: {kinds}"
        )
        results.append(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rendering = commands.add_parser("render", help="render the set (resumable)")
    rendering.add_argument("--out", type=Path, default=SET_FOLDER)
    rendering.add_argument("--count", type=int, default=SIZE)
    scoring = commands.add_parser("score", help="score checkpoints of the detection recipe")
    scoring.add_argument("checkpoints", type=Path, nargs="+")
    scoring.add_argument("--set", type=Path, default=SET_FOLDER, help="the set's folder")
    scoring.add_argument("--json", type=Path, help="write the scores here")
    args = parser.parse_args(argv)
    if args.command == "render":
        if args.count < 1:
            parser.error(f"--count must be >= 1, got {args.count}")
        render(args.out, args.count)
    else:
        score(args.checkpoints, args.set, args.json)


if __name__ == "__main__":
    sys.exit(main())
