"""CPU kernels of the renderer, compiled with numba: the ray cast and the per-pixel shading.

They compute what the torch path of :mod:`~lightning_synth.generators.warehouse.raycast`
and :mod:`~lightning_synth.generators.warehouse.render` computes, with the same formulas,
as loops over pixels: one pass without temporaries instead of hundreds of whole-image
tensor operations, which on a CPU cost more in memory traffic than in arithmetic (measured
in ``benchmarks/bench_warehouse.py``). The torch path stays the reference, runs on GPUs, and
the tests check that both agree.

Compiled code is cached next to this file (``cache=True``), so only the first process on a
machine pays the compilation (a few seconds).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NEAR = 0.05  # as raycast.NEAR
#: Mean and standard deviation of the sum of the four bytes of a uniform 32-bit hash.
BYTE_SUM_MEAN = 510.0
BYTE_SUM_STD = math.sqrt(4 * (256**2 - 1) / 12)


@njit(cache=True, error_model="numpy")
def cast(
    rectangles: np.ndarray,
    to_local: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    width: int,
    depth: np.ndarray,
    box: np.ndarray,
    owner: np.ndarray,
    cover_x0: np.ndarray,
    cover_y0: np.ndarray,
    cover_width: np.ndarray,
    cover_offset: np.ndarray,
    flags: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Nearest cuboid per pixel (``depth``, ``box`` updated in place) and coverage flags.

    Cuboid ``b`` is tested against the pixels of ``rectangles[b]``; its local ray direction
    is ``to_local[b] @ (u, v, 1)`` and its slab planes are at depths ``low[b] / d`` and
    ``high[b] / d`` per axis. Ties keep the lower cuboid index, as the torch path does.
    A cuboid with ``owner[b] >= 0`` flags the pixels it hits in its instance's block of
    ``flags`` (``cover_*`` give the block's rectangle and offset); pass ``owner`` of -1s to
    skip that.
    """
    for b in range(rectangles.shape[0]):
        x0, y0, x1, y1 = rectangles[b, 0], rectangles[b, 1], rectangles[b, 2], rectangles[b, 3]
        if x1 <= x0 or y1 <= y0:
            continue
        m = to_local[b]
        instance = owner[b]
        for y in range(y0, y1):
            v = np.float32(y + 0.5)
            for x in range(x0, x1):
                u = np.float32(x + 0.5)
                t_near = -np.inf
                t_far = np.inf
                for a in range(3):
                    direction = m[a, 0] * u + m[a, 1] * v + m[a, 2]
                    inverse = np.float32(1.0) / direction
                    t1 = low[b, a] * inverse
                    t2 = high[b, a] * inverse
                    if t1 > t2:
                        t1, t2 = t2, t1
                    t_near = max(t_near, t1)
                    t_far = min(t_far, t2)
                if t_far >= t_near and t_near > NEAR:
                    pixel = y * width + x
                    if t_near < depth[pixel]:
                        depth[pixel] = t_near
                        box[pixel] = b
                    if instance >= 0:
                        local = (y - cover_y0[instance]) * cover_width[instance] + (
                            x - cover_x0[instance]
                        )
                        flags[cover_offset[instance] + local] = 1.0


@njit(cache=True, error_model="numpy", fastmath=True)
def shade_pixels(
    width: int,
    height: int,
    eye: np.ndarray,
    ray_matrix: np.ndarray,
    box_depth: np.ndarray,
    box_index: np.ndarray,
    room: np.ndarray,
    room_materials: np.ndarray,
    rotations: np.ndarray,
    centers: np.ndarray,
    halves: np.ndarray,
    box_materials: np.ndarray,
    tiles: np.ndarray,
    texel: np.ndarray,
    specular: np.ndarray,
    shininess: np.ndarray,
    light_position: np.ndarray,
    light_color: np.ndarray,
    light_intensity: np.ndarray,
    light_cone: np.ndarray,
    ambient: np.ndarray,
    shadow: np.ndarray,
    shadow_focal: float,
    radiance: np.ndarray,
    depth: np.ndarray,
    on_box: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Radiance (3, H * W), depth and ``on_box`` of every pixel, as ``render`` computes them.

    ``room`` is ``(x0, y0, x1, y1, height)``; ``light_cone`` < 0 means no cone; ``shadow``
    is the first light's down-looking depth map (side x side, flattened; empty for none).
    """
    tile = tiles.shape[1]
    side = int(math.sqrt(shadow.shape[0])) if shadow.shape[0] else 0
    lows = np.array([room[0], room[1], 0.0], dtype=np.float32)
    highs = np.array([room[2], room[3], room[4]], dtype=np.float32)
    for pixel in range(width * height):
        py = pixel // width
        px = pixel - py * width
        u_pix = np.float32(px + 0.5)
        v_pix = np.float32(py + 0.5)
        dx = ray_matrix[0, 0] * u_pix + (ray_matrix[0, 1] * v_pix + ray_matrix[0, 2])
        dy = ray_matrix[1, 0] * u_pix + (ray_matrix[1, 1] * v_pix + ray_matrix[1, 2])
        dz = ray_matrix[2, 0] * u_pix + (ray_matrix[2, 1] * v_pix + ray_matrix[2, 2])
        # The room: the nearest plane the ray leaves through.
        t_room = np.inf
        face = 0
        for axis in range(3):
            d = dx if axis == 0 else (dy if axis == 1 else dz)
            if d > 0:
                t = (highs[axis] - eye[axis]) / d
                f = 2 * axis + 1
            elif d < 0:
                t = (lows[axis] - eye[axis]) / d
                f = 2 * axis
            else:  # parallel to the planes
                continue
            if t < t_room:
                t_room = t
                face = f
        t_box = box_depth[pixel]
        hit_box = t_box < t_room
        t = t_box if hit_box else t_room
        depth[pixel] = t
        on_box[pixel] = hit_box
        x = eye[0] + t * dx
        y = eye[1] + t * dy
        z = eye[2] + t * dz
        if hit_box:
            b = box_index[pixel]
            ox, oy, oz = x - centers[b, 0], y - centers[b, 1], z - centers[b, 2]
            r = rotations[b]
            l0 = r[0, 0] * ox + r[1, 0] * oy + r[2, 0] * oz
            l1 = r[0, 1] * ox + r[1, 1] * oy + r[2, 1] * oz
            l2 = r[0, 2] * ox + r[1, 2] * oy + r[2, 2] * oz
            q0, q1, q2 = abs(l0) / halves[b, 0], abs(l1) / halves[b, 1], abs(l2) / halves[b, 2]
            if q0 >= q1 and q0 >= q2:
                axis, sign, first, second = 0, (1.0 if l0 >= 0 else -1.0), l1, l2
                first_half, second_half = halves[b, 1], halves[b, 2]
            elif q1 >= q2:
                axis, sign, first, second = 1, (1.0 if l1 >= 0 else -1.0), l0, l2
                first_half, second_half = halves[b, 0], halves[b, 2]
            else:
                axis, sign, first, second = 2, (1.0 if l2 >= 0 else -1.0), l0, l1
                first_half, second_half = halves[b, 0], halves[b, 1]
            nx, ny, nz = r[0, axis] * sign, r[1, axis] * sign, r[2, axis] * sign
            shift = centers[b, 0] + centers[b, 1] + centers[b, 2]
            if second_half > first_half:
                u, v = second + shift, first + 2.3 * shift
            else:
                u, v = first + shift, second + 2.3 * shift
            material = box_materials[b]
        else:
            axis = face // 2
            inward = 1.0 if face % 2 == 0 else -1.0
            nx = inward if axis == 0 else 0.0
            ny = inward if axis == 1 else 0.0
            nz = inward if axis == 2 else 0.0
            u = y if axis == 0 else x
            v = y if axis == 2 else z
            material = room_materials[face]
        size = texel[material]
        s = int(math.floor(u / size)) % tile  # noqa: RUF046 (an int index in numba)
        q = int(math.floor(v / size)) % tile  # noqa: RUF046
        cr, cg, cb = tiles[material, s, q, 0], tiles[material, s, q, 1], tiles[material, s, q, 2]
        # Shadow test against the first light's map.
        lit = 1.0
        if side and light_position.shape[0]:
            lz = light_position[0, 2] - z
            if lz > NEAR:
                mu = math.floor(shadow_focal * (x - light_position[0, 0]) / lz + side / 2)
                mv = math.floor(shadow_focal * (light_position[0, 1] - y) / lz + side / 2)
                if 0 <= mu < side and 0 <= mv < side:
                    nearest = shadow[int(mv) * side + int(mu)]
                    lit = 1.0 if lz <= nearest + 0.02 + 0.01 * lz else 0.0
        ir, ig, ib = ambient[0], ambient[1], ambient[2]
        gr = gg = gb = 0.0
        norm_view = 1.0 / math.sqrt(dx * dx + dy * dy + dz * dz)
        vx, vy, vz = -dx * norm_view, -dy * norm_view, -dz * norm_view
        strength = specular[material]
        for index in range(light_position.shape[0]):
            ox = light_position[index, 0] - x
            oy = light_position[index, 1] - y
            oz = light_position[index, 2] - z
            inverse = 1.0 / math.sqrt(max(ox * ox + oy * oy + oz * oz, 1e-4))
            cosine = max((nx * ox + ny * oy + nz * oz) * inverse, 0.0)
            power = light_intensity[index] * inverse * inverse
            cone = light_cone[index]
            if cone >= 0:
                downward = max(oz * inverse, 0.0)
                power *= downward * downward if cone == 2.0 else downward**cone
            if index == 0:
                power *= lit
            weight = cosine * power
            ir += weight * light_color[index, 0]
            ig += weight * light_color[index, 1]
            ib += weight * light_color[index, 2]
            if strength > 0 and cosine > 0:
                hx, hy, hz = ox * inverse + vx, oy * inverse + vy, oz * inverse + vz
                norm = 1.0 / math.sqrt(max(hx * hx + hy * hy + hz * hz, 1e-12))
                cosine_h = max((nx * hx + ny * hy + nz * hz) * norm, 1e-6)
                highlight = math.exp(shininess[material] * math.log(cosine_h)) * power * strength
                gr += highlight * light_color[index, 0]
                gg += highlight * light_color[index, 1]
                gb += highlight * light_color[index, 2]
        radiance[0, pixel] = cr * ir + gr
        radiance[1, pixel] = cg * ig + gg
        radiance[2, pixel] = cb * ib + gb


@njit(cache=True)
def tone_map(
    radiance: np.ndarray,
    table: np.ndarray,
    exposure: float,
    vignetting: float,
    width: int,
    height: int,
    image: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Auto-exposure, Reinhard curve, gamma table, exposure target and vignetting.

    ``radiance`` and ``image`` are (3, H * W); the steps are those of the torch path.
    """
    pixels = width * height
    total = 0.0
    for p in range(pixels):
        total += 0.2126 * radiance[0, p] + 0.7152 * radiance[1, p] + 0.0722 * radiance[2, p]
    scale = 0.18 / max(total / pixels, 1e-6)
    steps = table.shape[0] - 1
    mean = 0.0
    for c in range(3):
        for p in range(pixels):
            mapped = radiance[c, p] * scale
            mapped = min(max(mapped / (mapped + 1.0), 0.0), 1.0)
            value = table[round(mapped * steps)]
            image[c, p] = value
            mean += value
    gain = exposure / max(mean / (3 * pixels), 1e-6)
    for p in range(pixels):
        factor = gain
        if vignetting:
            y = -1.0 + 2.0 * (p // width) / max(height - 1, 1)
            x = -1.0 + 2.0 * (p % width) / max(width - 1, 1)
            factor = gain * (1.0 - vignetting * (x * x + y * y) / 2.0)
        for c in range(3):
            image[c, p] *= factor


@njit(cache=True, fastmath=True)
def blur_axis(
    image: np.ndarray, kernel: np.ndarray, axis: int, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """One pass of a separable blur of a (C, H, W) float32 image along ``axis`` (1: y, 2: x).

    Edges are replicated, as in the torch path. The inner loop runs along rows either way
    (for ``axis`` 1 it adds whole shifted rows), so it vectorises.
    """
    channels, height, width = image.shape
    taps = kernel.shape[0]
    radius = taps // 2
    for c in range(channels):
        for y in range(height):
            row = out[c, y]
            row[:] = 0.0
            for k in range(taps):
                weight = kernel[k]
                if axis == 2:
                    source = image[c, y]
                    shift = k - radius
                    low = max(0, -shift)
                    high = min(width, width - shift)
                    for x in range(low, high):
                        row[x] += weight * source[x + shift]
                    for x in range(0, low):
                        row[x] += weight * source[0]
                    for x in range(high, width):
                        row[x] += weight * source[width - 1]
                else:
                    source = image[c, min(max(y + k - radius, 0), height - 1)]
                    for x in range(width):
                        row[x] += weight * source[x]


@njit(cache=True)
def _hash32(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """``render.hash32`` of one value in [0, 2^32), in unsigned 64-bit arithmetic."""
    mask = np.uint64(0xFFFFFFFF)
    x &= mask
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & mask
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & mask
    return x ^ (x >> np.uint64(16))


@njit(cache=True)
def add_sensor_noise(image: np.ndarray, key: int, sigma: float) -> None:  # pragma: no cover
    """Add ``sigma`` times ``render.sensor_noise`` to a flat float32 image, clamp to [0, 1]."""
    salt = _hash32(np.uint64(key))
    scale = np.float32(sigma / BYTE_SUM_STD)
    for i in range(image.shape[0]):
        value = image[i]
        if sigma > 0:
            bits = _hash32(np.uint64(i) ^ salt)
            byte = np.uint64(255)
            total = (
                (bits & byte)
                + ((bits >> np.uint64(8)) & byte)
                + ((bits >> np.uint64(16)) & byte)
                + (bits >> np.uint64(24))
            )
            value += (np.float32(total) - np.float32(BYTE_SUM_MEAN)) * scale
        image[i] = min(max(value, np.float32(0.0)), np.float32(1.0))
