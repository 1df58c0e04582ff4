"""Render a warehouse scene to an image, an instance-id buffer and pallet annotations.

Annotations come from the render itself: a pallet's box is the tight box of its visible
pixels in the instance buffer, and its visible fraction is its visible pixels over the pixels
it would cover with nothing in front of it and no image border (the unoccluded pixels inside
the image, divided by the share of its projected outline that lies inside the image).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lightning_synth.generators.warehouse.geometry import Boxes, Camera
from lightning_synth.generators.warehouse.materials import (
    Light,
    Material,
    MaterialTable,
    albedo,
    shade,
)
from lightning_synth.generators.warehouse.raycast import (
    NEAR,
    Backend,
    BoxHits,
    cast_boxes,
    cast_room,
    resolve_backend,
)

#: Side [pixels] and field of view [degrees] of the shadow map of the first light.
SHADOW_MAP_SIDE = 512
SHADOW_MAP_FOV = 140.0
_GAMMA_STEPS = 4096


@dataclass(frozen=True)
class CameraEffects:
    """What the camera does to the light: exposure, blur, noise, vignetting, compression.

    Args:
        exposure: Mean brightness the auto-exposure aims at (after the tone curve), in (0, 1).
        blur: Gaussian blur standard deviation [pixels] (defocus, motion, optics); 0 for none.
        noise: Standard deviation of Gaussian sensor noise, in [0, 1] units.
        vignetting: Brightness lost at the image corners, in [0, 1).
        jpeg_quality: JPEG quality (1-100) to compress and decompress with; None for none.
    """

    exposure: float = 0.45
    blur: float = 0.0
    noise: float = 0.0
    vignetting: float = 0.0
    jpeg_quality: int | None = None


@dataclass
class Scene:
    """Everything a render needs.

    Args:
        boxes: The cuboids (their ``instances`` index ``outlines``).
        materials: Materials, indexed by ``boxes.materials`` and ``room_materials``.
        room: ``(x0, y0, x1, y1, height)`` of the room [m].
        room_materials: Material of the walls at x0, x1, y0, y1, the floor and the ceiling.
        lights: Point lights; the first casts shadows.
        ambient: Ambient light, RGB.
        camera: The camera.
        outlines: One cuboid per annotated instance (a pallet's outer box), for the share
            of it inside the image.
        effects: Camera effects.
        meta: What the scene was drawn from (kept in the sample's metadata).
    """

    boxes: Boxes
    materials: list[Material]
    room: tuple[float, float, float, float, float]
    room_materials: tuple[int, int, int, int, int, int]
    lights: list[Light]
    ambient: tuple[float, float, float]
    camera: Camera
    outlines: Boxes
    effects: CameraEffects = field(default_factory=CameraEffects)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Render:
    """A rendered scene.

    Args:
        image: RGB image (3, H, W), float32 in [0, 1].
        instances: Instance id per pixel (H, W), int64; -1 where no annotated instance is seen.
        boxes: Tight boxes of the visible instances (N, 4), xyxy pixels (x1, y1 exclusive).
        instance_ids: Instance id of each box (N,).
        visible_fraction: Visible pixels over the unoccluded, unclipped footprint (N,).
        depth: Camera depth per pixel (H, W) [m].
    """

    image: torch.Tensor
    instances: torch.Tensor
    boxes: torch.Tensor
    instance_ids: torch.Tensor
    visible_fraction: torch.Tensor
    depth: torch.Tensor


def down_camera(position: Sequence[float], side: int, fov: float) -> Camera:
    """A square camera at ``position`` looking straight down (image x = world x)."""
    import math

    focal = side / 2 / math.tan(math.radians(fov) / 2)
    rotation = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
    x, y, z = (float(p) for p in position)
    return Camera((x, y, z), rotation, float(focal), side, side)


def render(
    scene: Scene, generator: torch.Generator | None = None, backend: Backend = "auto"
) -> Render:
    """Render ``scene`` on the device of its boxes.

    Args:
        scene: The scene.
        generator: Source of the scene's texture noise and of the sensor noise (on the
            CPU); the same state gives the same image.
        backend: ``"torch"`` (any device), ``"numba"`` (compiled CPU loops, several times
            faster on a CPU) or ``"auto"`` (numba on the CPU, torch elsewhere). Both compute
            the same image up to floating-point rounding.

    Returns:
        The image, instance buffer and annotations (see :class:`Render`).
    """
    camera, boxes = scene.camera, scene.boxes
    device = boxes.device
    resolved = resolve_backend(backend, device)
    width, height = camera.width, camera.height
    count = len(scene.outlines)
    hits = cast_boxes(boxes, camera, instances=count or None, backend=resolved)  # type: ignore[arg-type]
    table = MaterialTable.build(scene.materials, _rng_from(generator), device)
    shading = _shade_numba if resolved == "numba" else _shade_torch
    radiance, depth, on_box = shading(scene, hits, table)
    image = _camera_effects(radiance.reshape(3, height, width), scene.effects, generator, resolved)

    # Annotations from the instance buffer.
    owner = boxes.instances.index_select(0, hits.box.clamp_min(0))
    instance = torch.where(on_box, owner, -1)
    ids, boxes_xyxy, visible_fraction = _annotations(
        instance, hits.footprint, scene.outlines, camera, count
    )
    return Render(
        image=image,
        instances=instance.reshape(height, width),
        boxes=boxes_xyxy,
        instance_ids=ids,
        visible_fraction=visible_fraction,
        depth=depth.reshape(height, width),
    )


def _shade_torch(
    scene: Scene, hits: BoxHits, table: MaterialTable
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Radiance (3, H * W), depth and on-cuboid mask of every pixel, with tensor operations.

    Per-pixel vectors are kept one row per axis, (3, N), so that the arithmetic runs on
    contiguous rows; surface quantities are computed only for the pixels they concern
    (cuboid pixels, then room pixels).
    """
    camera, boxes = scene.camera, scene.boxes
    device = boxes.device
    directions = camera.ray_directions(device)  # (3, H * W)
    room_depth, room_face = cast_room(camera, scene.room, directions)
    on_box = hits.depth < room_depth
    depth = torch.where(on_box, hits.depth, room_depth)
    # Pixels on cuboids first, then pixels on the room; every per-surface array follows.
    box_pixels = torch.nonzero(on_box).flatten()
    room_pixels = torch.nonzero(~on_box).flatten()
    order = torch.cat([box_pixels, room_pixels])
    split = len(box_pixels)
    rays = directions[:, order]
    eye = torch.tensor(camera.position, dtype=torch.float32, device=device)[:, None]
    points = eye + depth.index_select(0, order) * rays
    box = hits.box.index_select(0, box_pixels)
    box_normal, box_u, box_v = _box_surfaces(boxes, box, points[:, :split])
    faces = room_face.index_select(0, room_pixels)
    room_normal, room_u, room_v = _room_surfaces(faces, points[:, split:])
    room_material = torch.tensor(scene.room_materials, device=device).index_select(0, faces)
    normal = torch.cat([box_normal, room_normal], dim=1)
    material = torch.cat([boxes.materials.index_select(0, box), room_material])
    u, v = torch.cat([box_u, room_u]), torch.cat([box_v, room_v])
    color = albedo(table, material, u, v)
    view = -rays * torch.rsqrt(rays[0] * rays[0] + rays[1] * rays[1] + rays[2] * rays[2])
    lit = _lit_by_first_light(scene, points) if scene.lights else None
    shaded = shade(
        color,
        points,
        normal,
        view,
        table.specular.index_select(0, material),
        table.shininess.index_select(0, material),
        scene.lights,
        scene.ambient,
        lit,
    )
    radiance = torch.empty((3, camera.width * camera.height), device=device)
    radiance[:, order] = shaded
    return radiance, depth, on_box


def _shade_numba(
    scene: Scene, hits: BoxHits, table: MaterialTable
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What :func:`_shade_torch` computes, in one compiled pass over the pixels (CPU)."""
    from lightning_synth.generators.warehouse import kernels

    camera, boxes = scene.camera, scene.boxes
    pixels = camera.width * camera.height
    _, rotation, inverse_k = camera.tensors()
    lights = scene.lights
    shadow = np.zeros(0, dtype=np.float32)
    shadow_focal = 0.0
    if lights:
        view = down_camera(lights[0].position, SHADOW_MAP_SIDE, SHADOW_MAP_FOV)
        shadow = cast_boxes(boxes, view, backend="numba").depth.numpy()
        shadow_focal = view.focal
    radiance = np.empty((3, pixels), dtype=np.float32)
    depth = np.empty(pixels, dtype=np.float32)
    on_box = np.empty(pixels, dtype=np.bool_)
    kernels.shade_pixels(
        camera.width,
        camera.height,
        np.asarray(camera.position, dtype=np.float32),
        (rotation.T @ inverse_k).numpy(),
        hits.depth.numpy(),
        hits.box.numpy(),
        np.asarray(scene.room, dtype=np.float32),
        np.asarray(scene.room_materials, dtype=np.int64),
        boxes.rotations.numpy(),
        boxes.centers.numpy(),
        boxes.half_sizes.numpy(),
        boxes.materials.numpy(),
        table.tiles.numpy(),
        table.texel.numpy(),
        table.specular.numpy(),
        table.shininess.numpy(),
        np.asarray([light.position for light in lights], dtype=np.float32).reshape(-1, 3),
        np.asarray([light.color for light in lights], dtype=np.float32).reshape(-1, 3),
        np.asarray([light.intensity for light in lights], dtype=np.float32),
        np.asarray([-1.0 if light.cone is None else light.cone for light in lights], np.float32),
        np.asarray(scene.ambient, dtype=np.float32),
        shadow,
        float(shadow_focal),
        radiance,
        depth,
        on_box,
    )
    return torch.from_numpy(radiance), torch.from_numpy(depth), torch.from_numpy(on_box)


def _box_surfaces(
    boxes: Boxes, box: torch.Tensor, points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normals (3, N) and face coordinates ``u, v`` [m] of points (3, N) on cuboids ``box``.

    ``u`` runs along the longer of the face's two axes, so that wood grain follows a board;
    each cuboid's coordinates are offset by its position, so that neighbours differ.
    """
    rotation = boxes.rotations.reshape(-1, 9).T.contiguous()  # (9, B): R[row, column]
    entry = [rotation[k].index_select(0, box) for k in range(9)]
    centers = boxes.centers.T.contiguous()
    offset = [points[k] - centers[k].index_select(0, box) for k in range(3)]
    # Local coordinates R^T (p - c); column a of R is the cuboid's axis a.
    local = [
        entry[a] * offset[0] + entry[3 + a] * offset[1] + entry[6 + a] * offset[2] for a in range(3)
    ]
    halves = boxes.half_sizes.T.contiguous()
    half = [halves[k].index_select(0, box) for k in range(3)]
    ratio = [local[k].abs() / half[k] for k in range(3)]
    # The face hit is where the point lies on the cuboid's surface: the largest ratio.
    on_x = (ratio[0] >= ratio[1]) & (ratio[0] >= ratio[2])
    on_y = ~on_x & (ratio[1] >= ratio[2])
    on_z = ~on_x & ~on_y
    sign_x = torch.where(local[0] >= 0, 1.0, -1.0)
    sign_y = torch.where(local[1] >= 0, 1.0, -1.0)
    sign_z = torch.where(local[2] >= 0, 1.0, -1.0)
    weight = [on_x * sign_x, on_y * sign_y, on_z * sign_z]
    normal = torch.stack(
        [
            entry[3 * r] * weight[0] + entry[3 * r + 1] * weight[1] + entry[3 * r + 2] * weight[2]
            for r in range(3)
        ]
    )
    # In-face axes: (y, z) on an x face, (x, z) on a y face, (x, y) on a z face.
    first = torch.where(on_x, local[1], local[0])
    second = torch.where(on_z, local[1], local[2])
    first_half = torch.where(on_x, half[1], half[0])
    second_half = torch.where(on_z, half[1], half[2])
    longer = second_half > first_half
    shift = centers.sum(0).index_select(0, box)
    u = torch.where(longer, second, first) + shift
    v = torch.where(longer, first, second) + 2.3 * shift
    return normal, u, v


def _room_surfaces(
    faces: torch.Tensor, points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inward normals (3, N) and face coordinates of points (3, N) on the room's faces."""
    axis = torch.div(faces, 2, rounding_mode="floor")
    inward = torch.where(faces % 2 == 0, 1.0, -1.0)
    normal = torch.stack([(axis == k) * inward for k in range(3)])
    u = torch.where(axis == 0, points[1], points[0])
    v = torch.where(axis == 2, points[1], points[2])
    return normal, u, v


def _rng_from(generator: torch.Generator | None) -> np.random.Generator:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return np.random.default_rng(seed)


def _lit_by_first_light(scene: Scene, points: torch.Tensor) -> torch.Tensor:
    """Whether the first light sees each point (3, N) (1.0 or 0.0), from a shadow map.

    The map looks straight down from the light; points outside its field of view count as
    lit. One texel per point: the edges are hard, and the camera's blur softens them.
    """
    light = scene.lights[0]
    side = SHADOW_MAP_SIDE
    view = down_camera(light.position, side, SHADOW_MAP_FOV)
    occluders = cast_boxes(scene.boxes, view, backend="torch").depth
    # The down camera's axes are world x, -y and -z.
    x = points[0] - light.position[0]
    y = light.position[1] - points[1]
    z = light.position[2] - points[2]
    ahead = z > NEAR
    z = z.clamp_min(NEAR)
    u = view.focal * x / z + side / 2
    v = view.focal * y / z + side / 2
    bias = 0.02 + 0.01 * z  # against self-shadowing (acne) at the map's resolution
    column, row = torch.floor(u), torch.floor(v)
    inside = ahead & (column >= 0) & (column < side) & (row >= 0) & (row < side)
    texel = (row.clamp(0, side - 1) * side + column.clamp(0, side - 1)).long()
    nearest = occluders.index_select(0, texel)
    return torch.where(inside, (z <= nearest + bias).to(z.dtype), 1.0)


def _camera_effects(
    radiance: torch.Tensor,
    effects: CameraEffects,
    generator: torch.Generator | None,
    backend: str = "torch",
) -> torch.Tensor:
    """Exposure, tone curve, vignetting, blur, noise and compression of a radiance image."""
    _, height, width = radiance.shape
    device = radiance.device
    # The 2.2 gamma through a table (a lookup is cheaper than a power on a CPU).
    table = torch.linspace(0.0, 1.0, _GAMMA_STEPS, device=device) ** (1 / 2.2)
    kernel = _gaussian_kernel(effects.blur, min(height, width)) if effects.blur > 0 else None
    if kernel is not None and len(kernel) == 1:
        kernel = None  # below a sixth of a pixel: nothing to blur
    key = int(torch.randint(0, 2**31, (1,), generator=generator)) if effects.noise > 0 else 0
    if backend == "numba":
        from lightning_synth.generators.warehouse import kernels

        flat = radiance.reshape(3, -1).contiguous().numpy()
        mapped = np.empty_like(flat)
        kernels.tone_map(
            flat, table.numpy(), effects.exposure, effects.vignetting, width, height, mapped
        )
        array = mapped.reshape(3, height, width)
        if kernel is not None:
            weights = kernel.numpy().astype(np.float32)
            across = np.empty_like(array)
            kernels.blur_axis(array, weights, 2, across)
            kernels.blur_axis(across, weights, 1, array)
        kernels.add_sensor_noise(array.reshape(-1), key, effects.noise)  # and clamps
        image = torch.from_numpy(array)
    else:
        # Auto-exposure on the mean luminance, then a Reinhard tone curve and the gamma.
        luminance = 0.2126 * radiance[0] + 0.7152 * radiance[1] + 0.0722 * radiance[2]
        mapped_t = radiance * (0.18 / luminance.mean().clamp_min(1e-6))
        mapped_t = mapped_t.div_(mapped_t + 1).clamp_(0.0, 1.0)
        image = table[mapped_t.mul_(_GAMMA_STEPS - 1).round_().long()]
        image = image * (effects.exposure / image.mean().clamp_min(1e-6))
        if effects.vignetting:
            y = torch.linspace(-1, 1, height, device=device)[:, None]
            x = torch.linspace(-1, 1, width, device=device)[None, :]
            image = image * (1 - effects.vignetting * (x * x + y * y) / 2)
        if kernel is not None:
            image = _blur(image, kernel.tolist())
        if effects.noise > 0:
            image = image.add_(sensor_noise(image.shape, key, device), alpha=effects.noise)
        image = image.clamp_(0.0, 1.0)
    if effects.jpeg_quality is not None:
        image = jpeg_round_trip(image, effects.jpeg_quality)
    return image.to(torch.float32)


def hash32(values: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (lowbias32) of int64 ``values`` in [0, 2^32).

    Products are split into 16-bit halves of the constant so that no int64 overflows.

    Example:
        >>> hash32(torch.tensor([0, 1, 2])).tolist()
        [0, 1753845952, 3507691905]
    """
    mask = 0xFFFFFFFF

    def times(x: torch.Tensor, constant: int) -> torch.Tensor:
        low, high = constant & 0xFFFF, constant >> 16
        return (x * low + (((x * high) & 0xFFFF) << 16)) & mask

    x = values & mask
    x = x ^ (x >> 16)
    x = times(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = times(x, 0x846CA68B)
    return x ^ (x >> 16)


def sensor_noise(shape: Sequence[int], key: int, device: torch.device | str) -> torch.Tensor:
    """Zero-mean, unit-variance sensor noise of ``shape``, a function of ``key`` alone.

    Element ``i`` (row-major) is the sum of the four bytes of ``hash32(i ^ hash32(key))``,
    centred and scaled: an Irwin-Hall sum of four uniforms, within 3.5 standard deviations
    and as near to Gaussian as 8-bit images can show. A counter-based hash gives the numba
    kernel (``kernels.add_sensor_noise``) the same values without a random stream, in one
    pass several times cheaper than drawing Gaussian samples.
    """
    from lightning_synth.generators.warehouse.kernels import BYTE_SUM_MEAN, BYTE_SUM_STD

    salt = hash32(torch.tensor([key], dtype=torch.int64))
    index = torch.arange(int(np.prod(shape)), dtype=torch.int64, device=device)
    bits = hash32(index ^ salt.to(device))
    total = (bits & 255) + ((bits >> 8) & 255) + ((bits >> 16) & 255) + (bits >> 24)
    noise = (total.to(torch.float32) - BYTE_SUM_MEAN) / BYTE_SUM_STD
    return noise.reshape(*shape)


def jpeg_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Compress a (3, H, W) image in [0, 1] to JPEG at ``quality`` and decode it again."""
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.device, torch.float32) / 255


def _gaussian_kernel(sigma: float, size: int) -> torch.Tensor:
    """Normalised taps out to 3 sigma (rounded; a single tap below sigma = 1/6 pixel)."""
    radius = min(int(3 * sigma + 0.5), size - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, H, W) image, edges replicated.

    Example:
        >>> image = torch.zeros(1, 9, 9)
        >>> image[0, 4, 4] = 1.0
        >>> blurred = gaussian_blur(image, 1.0)
        >>> round(float(blurred.sum()), 4), float(blurred[0, 4, 4]) < 1.0
        (1.0, True)
    """
    return _blur(image, _gaussian_kernel(sigma, min(image.shape[1:])).tolist())


def _blur(image: torch.Tensor, kernel: list[float]) -> torch.Tensor:
    """Sums of shifted copies, one per tap: faster than a depthwise convolution on a CPU."""
    radius = len(kernel) // 2
    for dim in (2, 1):
        size = image.shape[dim]
        padded = torch.cat(
            [
                image.narrow(dim, 0, 1).expand_as(image.narrow(dim, 0, radius)),
                image,
                image.narrow(dim, size - 1, 1).expand_as(image.narrow(dim, 0, radius)),
            ],
            dim=dim,
        )
        total = padded.narrow(dim, 0, size) * kernel[0]
        for tap in range(1, 2 * radius + 1):
            total = total + padded.narrow(dim, tap, size) * kernel[tap]
        image = total
    return image


def _annotations(
    instance: torch.Tensor,
    footprint: torch.Tensor | None,
    outlines: Boxes,
    camera: Camera,
    count: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, ids and visible fractions of the instances seen in the instance buffer."""
    device = instance.device
    if count == 0 or footprint is None:
        empty = torch.zeros((0,), dtype=torch.int64, device=device)
        return empty, torch.zeros((0, 4), device=device), torch.zeros((0,), device=device)
    width = camera.width
    seen = instance >= 0
    pixel = torch.nonzero(seen).flatten()
    which = instance[pixel]
    x, y = pixel % width, torch.div(pixel, width, rounding_mode="floor")
    visible = torch.bincount(which, minlength=count)
    big = torch.iinfo(torch.int64).max
    x0 = torch.full((count,), big, device=device).scatter_reduce(0, which, x, "amin")
    y0 = torch.full((count,), big, device=device).scatter_reduce(0, which, y, "amin")
    x1 = torch.full((count,), -1, device=device).scatter_reduce(0, which, x, "amax") + 1
    y1 = torch.full((count,), -1, device=device).scatter_reduce(0, which, y, "amax") + 1
    ids = torch.nonzero(visible > 0).flatten()
    boxes = torch.stack([x0[ids], y0[ids], x1[ids], y1[ids]], dim=1).to(torch.float32)
    share = _share_inside(outlines, camera)[ids]
    unclipped = footprint[ids].to(torch.float32) / share.clamp_min(1e-6)
    fraction = (visible[ids].to(torch.float32) / unclipped.clamp_min(1.0)).clamp(0.0, 1.0)
    return ids, boxes, fraction


def _share_inside(outlines: Boxes, camera: Camera) -> torch.Tensor:
    """Share of each outline's projected rectangle that lies inside the image."""
    projected = camera.project(outlines.corners().reshape(-1, 3)).reshape(len(outlines), 8, 3)
    ahead = (projected[..., 2] > NEAR).all(1)
    u, v = projected[..., 0], projected[..., 1]
    x0, x1 = u.amin(1), u.amax(1)
    y0, y1 = v.amin(1), v.amax(1)
    area = (x1 - x0).clamp_min(1e-6) * (y1 - y0).clamp_min(1e-6)
    inside_w = (x1.clamp(0, camera.width) - x0.clamp(0, camera.width)).clamp_min(0)
    inside_h = (y1.clamp(0, camera.height) - y0.clamp(0, camera.height)).clamp_min(0)
    share = inside_w * inside_h / area
    # An outline reaching behind the camera: its share is unknown; count it as whole.
    return torch.where(ahead, share, torch.ones_like(share))
