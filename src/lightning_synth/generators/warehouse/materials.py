"""Materials, procedural textures and shading of warehouse scenes.

A material is a base colour, a second colour, a texture pattern with its scale and contrast,
and a specular strength. Each material's pattern is baked per scene into a small periodic
tile from layers of value noise drawn for that scene, so textures differ between images but
cost one lookup per pixel:

- ``plain``: the base colour with faint noise;
- ``wood``: grain along the cuboid's longest axis (noise stretched along it) and knots;
- ``cardboard``: fine fibre noise and, on boxes, a band of tape in the second colour;
- ``concrete``: blotchy two-scale noise;
- ``stripes``: bands of the two colours (floor markings, painted racks, random textures);
- ``checker``: a checkerboard of the two colours (domain randomisation);
- ``noise``: high-contrast noise between the two colours (domain randomisation).

Shading is Lambertian with Blinn-Phong highlights: ambient light plus point lights with
inverse-square fall-off, optionally in a downward cone (ceiling fittings); the first light
casts shadows through a shadow map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

PATTERNS: tuple[str, ...] = (
    "plain",
    "wood",
    "cardboard",
    "concrete",
    "stripes",
    "checker",
    "noise",
)


@dataclass(frozen=True)
class Material:
    """How a surface looks.

    Args:
        color: Base colour, linear RGB in [0, 1].
        pattern: One of :data:`PATTERNS`.
        second_color: The pattern's second colour (tape, stripes, checks, noise).
        scale: Size of the pattern's features [m].
        contrast: Strength of the pattern, in [0, 1].
        specular: Strength of the highlights, in [0, 1].
        shininess: Blinn-Phong exponent of the highlights.
    """

    color: tuple[float, float, float]
    pattern: str = "plain"
    second_color: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 0.1
    contrast: float = 0.2
    specular: float = 0.0
    shininess: float = 16.0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            msg = f"pattern must be one of {PATTERNS}, got {self.pattern!r}"
            raise ValueError(msg)
        if not self.scale > 0:
            msg = f"scale must be positive, got {self.scale}"
            raise ValueError(msg)


@dataclass(frozen=True)
class Light:
    """A point light.

    Args:
        position: Position [m].
        color: Colour, linear RGB.
        intensity: Radiant intensity; the irradiance at 1 m is ``intensity * color``.
        cone: With an exponent ``k``, the light shines downwards with intensity
            ``cos(angle from straight down) ** k`` (a ceiling fitting); None for all around.
    """

    position: tuple[float, float, float]
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 10.0
    cone: float | None = None


#: Texels per side of a material's texture tile; a tile spans 4 of its features.
TILE = 64
_S, _T = np.meshgrid(np.arange(TILE), np.arange(TILE), indexing="ij")
_WRAP = np.arange(2 * TILE) % TILE  # rows and columns of a tile shifted by up to TILE


@dataclass
class MaterialTable:
    """Materials of a scene as tensors: texture tiles and shading parameters.

    Every material's pattern is baked once per scene into a periodic RGB tile of
    ``TILE x TILE`` texels spanning ``4 * scale`` metres, so that a surface point's colour is
    one lookup. The tiles combine a few layers of periodic value noise drawn per scene, so
    textures differ between images.
    """

    tiles: torch.Tensor  # (M, TILE, TILE, 3)
    texel: torch.Tensor  # (M,) texel size [m]
    specular: torch.Tensor  # (M,)
    shininess: torch.Tensor  # (M,)

    @classmethod
    def build(
        cls, materials: list[Material], rng: np.random.Generator, device: torch.device | str
    ) -> MaterialTable:
        """Tiles and parameters of ``materials``, with noise drawn from ``rng``."""
        if not materials:
            msg = "a scene needs at least one material"
            raise ValueError(msg)
        layers = {
            "fine": value_noise(rng, 16, 16),
            "coarse": value_noise(rng, 4, 4),
            "grain": value_noise(rng, 2, 24),  # stretched along the first axis
            "knots": value_noise(rng, 3, 3),
        }
        tiles = np.stack([_bake(m, layers, rng) for m in materials]).astype(np.float32)
        return cls(
            tiles=torch.from_numpy(tiles).to(device),
            texel=torch.tensor([4 * m.scale / TILE for m in materials], device=device),
            specular=torch.tensor([m.specular for m in materials], device=device),
            shininess=torch.tensor([m.shininess for m in materials], device=device),
        )


def value_noise(rng: np.random.Generator, cells_s: int, cells_t: int) -> np.ndarray:
    """Periodic value noise on a ``TILE x TILE`` grid, in [0, 1].

    A random lattice of ``cells_s x cells_t`` values, interpolated with smoothstep weights.

    Example:
        >>> noise = value_noise(np.random.default_rng(0), 4, 8)
        >>> noise.shape, float(noise.min()) >= 0.0, float(noise.max()) <= 1.0
        ((64, 64), True, True)
    """
    lattice = rng.random((cells_s, cells_t))

    def axis(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        coordinate = np.arange(TILE) * cells / TILE
        low = np.floor(coordinate).astype(int)
        weight = coordinate - low
        return low, (low + 1) % cells, weight * weight * (3 - 2 * weight)

    s0, s1, ws = axis(cells_s)
    t0, t1, wt = axis(cells_t)
    rows = lattice[s0] * (1 - ws[:, None]) + lattice[s1] * ws[:, None]
    noise = rows[:, t0] * (1 - wt[None]) + rows[:, t1] * wt[None]
    return (noise - noise.min()) / max(float(np.ptp(noise)), 1e-9)


def _bake(
    material: Material, layers: dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """The material's (TILE, TILE, 3) tile; first axis = the face's u (along any grain)."""

    def layer(name: str) -> np.ndarray:
        shift = rng.integers(0, TILE, 2)  # each material sees its own part of the noise
        return layers[name][
            _WRAP[shift[0] : shift[0] + TILE, None], _WRAP[None, shift[1] : shift[1] + TILE]
        ]

    s, t = _S, _T
    feature = TILE // 4
    fine, coarse = layer("fine"), layer("coarse")
    mix = np.zeros((TILE, TILE))
    pattern = material.pattern
    if pattern == "plain":
        value = 0.5 + 0.15 * (fine - 0.5)
    elif pattern == "wood":
        knots = np.clip((layer("knots") - 0.85) * 6.0, 0.0, 1.0)
        value = 0.65 * layer("grain") + 0.35 * coarse - 0.5 * knots
    elif pattern == "cardboard":
        value = 0.55 + 0.25 * fine + 0.2 * coarse
        mix = (t < TILE // 10).astype(float)  # a band of tape along u
    elif pattern == "concrete":
        value = 0.5 * coarse + 0.3 * fine + 0.2 * layer("grain").T
    elif pattern == "stripes":
        value = 0.85 + 0.15 * fine
        mix = ((s // (feature // 2)) % 2).astype(float)
    elif pattern == "checker":
        value = 0.85 + 0.15 * fine
        mix = ((s // feature + t // feature) % 2).astype(float)
    else:  # noise
        value = 0.85 + 0.15 * fine
        mix = (coarse > 0.5) * 0.7 + 0.3 * fine
    shade = 1.0 + material.contrast * (2 * value - 1.0)
    base = np.asarray(material.color)
    second = np.asarray(material.second_color)
    color = base * (1 - mix[..., None]) + second * mix[..., None]
    return np.clip(color * shade[..., None], 0.0, 1.0)


def albedo(
    table: MaterialTable, material: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Surface colour (3, N) at face coordinates ``u, v`` [m] of points of ``material``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> table = MaterialTable.build([Material((0.2, 0.4, 0.6))], rng, "cpu")
        >>> albedo(table, torch.zeros(2, dtype=torch.long), torch.zeros(2), torch.ones(2)).shape
        torch.Size([3, 2])
    """
    texel = table.texel.index_select(0, material)
    s = torch.remainder(torch.floor(u / texel), TILE)
    t = torch.remainder(torch.floor(v / texel), TILE)
    flat = material * (TILE * TILE) + (s * TILE + t).long()
    channels = table.tiles.permute(3, 0, 1, 2).reshape(3, -1)
    return torch.stack([channels[c].index_select(0, flat) for c in range(3)])


def shade(
    color: torch.Tensor,
    points: torch.Tensor,
    normals: torch.Tensor,
    view: torch.Tensor,
    specular: torch.Tensor,
    shininess: torch.Tensor,
    lights: list[Light],
    ambient: tuple[float, float, float],
    lit: torch.Tensor | None = None,
) -> torch.Tensor:
    """Radiance (3, N) of surface points: ambient + Lambert + Blinn-Phong per light.

    Vectors are stored one row per axis, (3, N), and the arithmetic works on one row at a
    time, in place where it can: a CPU spends more on allocating and touching large
    temporaries than on the arithmetic itself.

    Args:
        color: Albedo (3, N).
        points: World positions (3, N) [m].
        normals: Unit normals (3, N), facing the camera.
        view: Unit directions from the points to the camera (3, N).
        specular: Highlight strength (N,).
        shininess: Blinn-Phong exponent (N,).
        lights: Point lights; the first one's visibility is ``lit``.
        ambient: Ambient light, RGB.
        lit: Share of the first light each point sees (N,) (a shadow test); None: all of it.
    """
    nx, ny, nz = normals[0], normals[1], normals[2]
    irradiance = torch.empty_like(points)
    for channel in range(3):
        irradiance[channel].fill_(ambient[channel])
    shiny = torch.nonzero(specular > 0).flatten()
    glossy = torch.zeros((3, len(shiny)), device=color.device)
    for index, light in enumerate(lights):
        lx, ly, lz = light.position
        ox, oy, oz = lx - points[0], ly - points[1], lz - points[2]
        inverse = torch.rsqrt((ox * ox).add_(oy * oy).add_(oz * oz).clamp_min_(1e-4))
        cosine = (nx * ox).add_(ny * oy).add_(nz * oz).mul_(inverse).clamp_min_(0.0)
        power = (inverse * inverse).mul_(light.intensity)
        if light.cone is not None:  # a fitting that shines downwards: cos(angle) ** cone
            downward = (oz * inverse).clamp_min_(0.0)  # oz > 0: the light is above
            power.mul_(downward.pow_(light.cone))
        if index == 0 and lit is not None:
            power.mul_(lit)
        weight = cosine * power
        for channel in range(3):
            irradiance[channel].add_(weight, alpha=light.color[channel])
        if len(shiny):
            inv = inverse[shiny]
            hx = ox[shiny] * inv + view[0, shiny]
            hy = oy[shiny] * inv + view[1, shiny]
            hz = oz[shiny] * inv + view[2, shiny]
            norm = torch.rsqrt((hx * hx + hy * hy + hz * hz).clamp_min(1e-12))
            cosine_h = (nx[shiny] * hx + ny[shiny] * hy + nz[shiny] * hz) * norm
            highlight = torch.exp(shininess[shiny] * torch.log(cosine_h.clamp_min(1e-6)))
            highlight = highlight * (cosine[shiny] > 0) * power[shiny] * specular[shiny]
            for channel in range(3):
                glossy[channel].add_(highlight, alpha=light.color[channel])
    radiance = irradiance.mul_(color)
    if len(shiny):
        radiance[:, shiny] += glossy
    return radiance


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate linear RGB of a black body at ``kelvin`` (1000-12000 K), max channel 1.

    A fit to the Planckian locus (after Tanner Helland's approximation), good enough to tint
    lights warm or cool.

    Example:
        >>> [round(c, 2) for c in kelvin_to_rgb(6500)]
        [1.0, 0.99, 0.96]
    """
    t = min(max(kelvin, 1000.0), 12000.0) / 100.0
    red = 1.0 if t <= 66 else 1.2929 * (t - 60) ** -0.1332
    green = 0.3901 * math.log(t) - 0.6318 if t <= 66 else 1.1299 * (t - 60) ** -0.0755
    blue = 1.0 if t >= 66 else (0.0 if t <= 19 else 0.5432 * math.log(t - 10) - 1.1963)
    rgb = [min(max(c, 0.0), 1.0) ** 2.2 for c in (red, green, blue)]  # sRGB-ish to linear
    peak = max(rgb)
    return (rgb[0] / peak, rgb[1] / peak, rgb[2] / peak)
