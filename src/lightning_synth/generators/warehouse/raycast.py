"""A batched ray caster for cuboids, in torch (CPU or CUDA).

Why a ray caster and not a triangle rasterizer: every object in a scene is a cuboid, which a
ray hits exactly by the slab test, in a few dozen arithmetic operations that vectorise over
all (pixel, cuboid) pairs at once. Each cuboid is tested only against the pixels inside the
screen rectangle of its eight projected corners, so the work grows with the screen area the
cuboids cover, not with pixels x cuboids; a z-buffer keeps the nearest hit per pixel with
one ``scatter_reduce``. The same code runs on a GPU, where all pairs go in one batch.

The room (floor, walls, ceiling) is an axis-aligned box seen from inside: its hit is the far
end of the slab interval, for every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import torch

from lightning_synth.generators.warehouse.geometry import Boxes, Camera

Backend: TypeAlias = Literal["auto", "torch", "numba"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "numba")
#: Depth of the near plane [m]: hits closer than this are ignored.
NEAR = 0.05
#: (pixel, cuboid) pairs tested at once; bounds the memory of one pass (~100 bytes a pair).
_CHUNK_PAIRS = 2**21
_INDEX_BITS = 24  # cuboid index bits in a z-buffer key; the depth's float bits above them


@dataclass
class BoxHits:
    """Nearest cuboid hit per pixel (row-major, H * W).

    Args:
        depth: Camera depth of the hit [m], ``inf`` where no cuboid is hit.
        box: Index of the cuboid hit, -1 where none.
        footprint: Per annotated instance, the number of pixels it would cover with nothing
            in front of it (inside the image); None unless asked for.
    """

    depth: torch.Tensor
    box: torch.Tensor
    footprint: torch.Tensor | None = None


#: The 12 edges of a cuboid, as pairs of corner indices (corners as in ``Boxes.corners``).
_EDGES = torch.tensor(
    [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7], [0, 4], [1, 5], [2, 6], [3, 7]]
)


def screen_rectangles(boxes: Boxes, camera: Camera) -> torch.Tensor:
    """Pixel rectangle ``(x0, y0, x1, y1)`` (end exclusive) that holds each cuboid's image.

    The part of a cuboid in front of the near plane is the convex hull of its corners in
    front and of the points where its edges cross the plane, so the rectangle is the
    bounding box of their projections, clipped to the image. A cuboid wholly behind the
    plane gets an empty rectangle.
    """
    eye, world_to_camera, _ = camera.tensors(boxes.device)
    local = (boxes.corners() - eye) @ world_to_camera.T  # (B, 8, 3) camera coordinates
    z = local[..., 2]
    edges = _EDGES.to(boxes.device)
    start, end = local[:, edges[:, 0]], local[:, edges[:, 1]]  # (B, 12, 3)
    z0, z1 = start[..., 2], end[..., 2]
    crosses = (z0 - NEAR) * (z1 - NEAR) < 0
    share = ((NEAR - z0) / torch.where(crosses, z1 - z0, torch.ones_like(z0))).clamp(0, 1)
    crossing = start + share[..., None] * (end - start)
    points = torch.cat([local, crossing], dim=1)  # (B, 20, 3)
    usable = torch.cat([z >= NEAR, crosses], dim=1)
    depth = points[..., 2].clamp_min(NEAR)
    u = camera.focal * points[..., 0] / depth + camera.width / 2
    v = camera.focal * points[..., 1] / depth + camera.height / 2
    big = torch.finfo(u.dtype).max

    def low(values: torch.Tensor) -> torch.Tensor:
        return torch.where(usable, values, big).amin(1)

    def high(values: torch.Tensor) -> torch.Tensor:
        return torch.where(usable, values, -big).amax(1)

    x0 = low(u).floor().clamp(0, camera.width)
    x1 = (high(u).floor() + 1).clamp(0, camera.width)
    y0 = low(v).floor().clamp(0, camera.height)
    y1 = (high(v).floor() + 1).clamp(0, camera.height)
    rectangles = torch.stack([x0, y0, x1, y1], dim=1)
    seen = usable.any(1)
    return torch.where(seen[:, None], rectangles, torch.zeros_like(rectangles)).long()


def cast_boxes(
    boxes: Boxes, camera: Camera, instances: int | None = None, backend: Backend = "auto"
) -> BoxHits:
    """Nearest cuboid along every pixel's ray.

    The torch backend groups cuboids by the area of their screen rectangles (powers of two)
    and tests a group against a padded block of pixels per cuboid by broadcasting (no
    per-pair gathers, which cost more than the slab test itself); the numba backend loops
    over the same rectangles on the CPU.

    Args:
        boxes: The cuboids.
        camera: The camera.
        instances: With a count, also measure every annotated instance's unoccluded
            footprint (instances ``0 .. instances - 1``).
        backend: ``"torch"``, ``"numba"`` (CPU only) or ``"auto"`` (numba on the CPU).

    Returns:
        The hits (see :class:`BoxHits`).

    Example:
        >>> from lightning_synth.generators.warehouse.geometry import BoxList
        >>> scene = BoxList()
        >>> scene.add((4, 0, 1), (1, 1, 1), instance=0)
        >>> scene.add((6, 0, 1), (1, 4, 4))  # a wall behind it
        >>> camera = Camera.look_at((0, 0, 1), (4, 0, 1), fov=60, width=32, height=24)
        >>> hits = cast_boxes(scene.build(), camera, instances=1)
        >>> centre = 12 * 32 + 16
        >>> float(hits.depth[centre]), int(hits.box[centre]), int(hits.footprint[0]) > 0
        (3.5, 0, True)
    """
    device = boxes.device
    width, height = camera.width, camera.height
    pixels = width * height
    if len(boxes) >= 2**_INDEX_BITS:
        msg = f"at most {2**_INDEX_BITS - 1} cuboids per scene, got {len(boxes)}"
        raise ValueError(msg)
    resolved = resolve_backend(backend, device)
    eye, world_to_camera, inverse_k = camera.tensors(device)
    # Per cuboid, the ray direction in its local frame is linear in (u, v, 1), and the slab
    # planes are at -h - o and h - o from the (local) camera position o.
    to_local = boxes.rotations.transpose(1, 2) @ (world_to_camera.T @ inverse_k)  # (B, 3, 3)
    origin = torch.einsum("bji,bj->bi", boxes.rotations, eye[None] - boxes.centers)
    low, high = -boxes.half_sizes - origin, boxes.half_sizes - origin
    rectangles = screen_rectangles(boxes, camera)
    if resolved == "numba":
        return _cast_numba(boxes, camera, instances, rectangles, to_local, low, high)
    sizes = (rectangles[:, 2:] - rectangles[:, :2]).clamp_min(0)  # (B, 2): width, height
    areas = sizes[:, 0] * sizes[:, 1]
    visible = areas > 0
    # Size classes: the next power of two of the rectangle's area.
    classes = torch.ceil(torch.log2(areas.clamp_min(1).to(torch.float64))).long()

    unset = torch.iinfo(torch.int64).max
    keys = torch.full((pixels + 1,), unset, dtype=torch.int64, device=device)  # +1: a sink
    annotated = boxes.instances >= 0
    coverage = _Coverage(boxes.instances, rectangles, visible, instances) if instances else None
    # Groups: size class and whether the cuboids are annotated (only those need coverage).
    code = classes * 2 + annotated.long()
    for group in torch.unique(code[visible]).tolist():
        chosen = torch.nonzero(visible & (code == group)).flatten()
        block = 2 ** (group // 2)
        for part in torch.split(chosen, max(1, _CHUNK_PAIRS // block)):
            x, y, hit, depth = _slab_block(part, block, rectangles, to_local, low, high)
            pixel = torch.where(hit, y * width + x, pixels)
            # Positive floats order like their bit patterns: one int64 key sorts by depth.
            depth_bits = depth.clamp_min(0).contiguous().view(torch.int32).to(torch.int64)
            key = torch.where(hit, (depth_bits << _INDEX_BITS) | part[:, None], unset)
            keys.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), "amin")
            if coverage is not None and group % 2:
                coverage.add(part, x, y, hit)

    keys = keys[:pixels]
    missed = keys == unset
    box_index = torch.where(missed, -1, keys & (2**_INDEX_BITS - 1))
    depth_bits = (keys >> _INDEX_BITS).to(torch.int32)
    depth = torch.where(missed, torch.inf, depth_bits.view(torch.float32))
    footprint = coverage.counts() if coverage is not None else None
    return BoxHits(depth, box_index, footprint)


def _cast_numba(
    boxes: Boxes,
    camera: Camera,
    instances: int | None,
    rectangles: torch.Tensor,
    to_local: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
) -> BoxHits:
    from lightning_synth.generators.warehouse import kernels

    pixels = camera.width * camera.height
    depth = np.full(pixels, np.inf, dtype=np.float32)
    box = np.full(pixels, -1, dtype=np.int64)
    visible = (rectangles[:, 2] > rectangles[:, 0]) & (rectangles[:, 3] > rectangles[:, 1])
    if instances:
        coverage = _Coverage(boxes.instances, rectangles, visible, instances)
        owner = torch.where(boxes.instances < instances, boxes.instances, -1).numpy()
        cover = [t.numpy() for t in (coverage.x0, coverage.y0, coverage.width, coverage.offsets)]
        flags = coverage.flags.numpy()
    else:
        coverage = None
        owner = np.full(len(boxes), -1, dtype=np.int64)
        cover = [np.zeros(1, dtype=np.int64)] * 4
        flags = np.zeros(1, dtype=np.float32)
    kernels.cast(  # type: ignore[call-arg]
        rectangles.numpy(),
        to_local.numpy(),
        low.numpy(),
        high.numpy(),
        camera.width,
        depth,
        box,
        owner,
        *cover,
        flags,
    )
    footprint = coverage.counts() if coverage is not None else None
    return BoxHits(torch.from_numpy(depth), torch.from_numpy(box), footprint)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that ``"auto"`` means on ``device``; checks the name."""
    if backend not in BACKENDS:
        msg = f"backend must be one of {BACKENDS}, got {backend!r}"
        raise ValueError(msg)
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        msg = f"the numba backend runs on the CPU; the scene is on {device}"
        raise ValueError(msg)
    return backend


def _slab_block(
    part: torch.Tensor,
    block: int,
    rectangles: torch.Tensor,
    to_local: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test of cuboids ``part`` against ``block`` pixels of their rectangles each.

    Pixel ``i`` of a cuboid's block is column ``i % w`` and row ``i // w`` of its rectangle
    (``w`` its width; rows past the rectangle are padding). Works in float32, exact for
    blocks below 2^24 pixels. Returns the pixel columns ``x`` and rows ``y`` (int64),
    whether the ray hits and the entry depth, each of shape (len(part), block).
    """
    device = part.device
    index = torch.arange(block, device=device, dtype=torch.float32)[None]
    rectangle = rectangles[part].to(torch.float32)
    width = (rectangle[:, 2] - rectangle[:, 0])[:, None]
    row = torch.floor((index + 0.5) / width)
    column = index - row * width
    inside = row < (rectangle[:, 3] - rectangle[:, 1])[:, None]
    u = column + (rectangle[:, 0, None] + 0.5)
    v = row + (rectangle[:, 1, None] + 0.5)
    m = to_local[part]
    lows, highs = low[part], high[part]
    t_near = t_far = None
    for axis in range(3):
        direction = m[:, axis, 0, None] * u + m[:, axis, 1, None] * v + m[:, axis, 2, None]
        inverse = 1.0 / direction
        t1, t2 = lows[:, axis, None] * inverse, highs[:, axis, None] * inverse
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        t_near = near if t_near is None else torch.maximum(t_near, near)
        t_far = far if t_far is None else torch.minimum(t_far, far)
    assert t_near is not None and t_far is not None
    hit = inside & (t_far >= t_near) & (t_near > NEAR)
    return u.long(), v.long(), hit, t_near


class _Coverage:
    """Which pixels each annotated instance covers, ignoring everything else.

    One flag per pixel of each instance's screen rectangle (the union of its cuboids'
    rectangles), not per pixel of the image: far less memory to clear and to count.
    """

    def __init__(
        self, owner: torch.Tensor, rectangles: torch.Tensor, visible: torch.Tensor, count: int
    ) -> None:
        device = owner.device
        annotated = visible & (owner >= 0) & (owner < count)
        which = owner[annotated]
        big = torch.iinfo(torch.int64).max
        chosen = rectangles[annotated]
        x0 = torch.full((count,), big, device=device).scatter_reduce(0, which, chosen[:, 0], "amin")
        y0 = torch.full((count,), big, device=device).scatter_reduce(0, which, chosen[:, 1], "amin")
        x1 = torch.zeros(count, dtype=torch.int64, device=device).scatter_reduce(
            0, which, chosen[:, 2], "amax"
        )
        y1 = torch.zeros(count, dtype=torch.int64, device=device).scatter_reduce(
            0, which, chosen[:, 3], "amax"
        )
        self.x0, self.y0 = x0.clamp_max(x1), y0.clamp_max(y1)
        self.width = x1 - self.x0
        self.areas = self.width * (y1 - self.y0)
        self.offsets = torch.cumsum(self.areas, 0) - self.areas
        self.total = int(self.areas.sum())
        self.owner = owner
        self.flags = torch.zeros(self.total + 1, dtype=torch.float32, device=device)  # +1: sink

    def add(self, part: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hit: torch.Tensor) -> None:
        """Flag the pixels that the cuboids ``part`` hit (the outputs of ``_slab_block``)."""
        instance = self.owner[part][:, None].clamp_min(0)
        local = (y - self.y0[instance]) * self.width[instance] + (x - self.x0[instance])
        slot = torch.where(hit, self.offsets[instance] + local, self.total)
        self.flags.index_fill_(0, slot.reshape(-1), 1.0)

    def counts(self) -> torch.Tensor:
        """Pixels covered per instance (int64)."""
        if self.total == 0:
            return torch.zeros_like(self.areas)
        sums = torch.segment_reduce(self.flags[: self.total], "sum", lengths=self.areas)
        return sums.round().long()


def cast_room(
    camera: Camera,
    bounds: Sequence[float],
    directions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where every pixel's ray meets the inside of an axis-aligned room.

    Args:
        camera: A camera inside the room.
        bounds: ``(x0, y0, x1, y1, height)`` [m]: the floor's rectangle and the ceiling.
        directions: The camera's ray directions (``camera.ray_directions()``, (3, H * W)),
            if at hand.

    Returns:
        Depth (H * W,) [m] and face (H * W,) int64: 0 and 1 the walls at x0 and x1, 2 and 3
        the walls at y0 and y1, 4 the floor, 5 the ceiling.
    """
    x0, y0, x1, y1, height = (float(b) for b in bounds)
    position = camera.position
    if not (x0 < position[0] < x1 and y0 < position[1] < y1 and 0 < position[2] < height):
        msg = f"the camera at {position} must be inside the room {tuple(bounds)}"
        raise ValueError(msg)
    if directions is None:
        directions = camera.ray_directions()
    depth = face = None
    for axis, (low, high) in enumerate(((x0, x1), (y0, y1), (0.0, height))):
        direction = directions[axis]
        forward = direction > 0
        # Leaving the room through the plane ahead: high if moving up the axis, else low.
        plane = torch.where(forward, high, low)
        exit_depth = (plane - position[axis]) / direction
        exit_depth = torch.where(direction == 0, torch.inf, exit_depth)  # parallel to the planes
        this_face = 2 * axis + forward.long()
        if depth is None or face is None:
            depth, face = exit_depth, this_face
        else:
            nearer = exit_depth < depth
            depth = torch.where(nearer, exit_depth, depth)
            face = torch.where(nearer, this_face, face)
    assert depth is not None and face is not None
    return depth, face
