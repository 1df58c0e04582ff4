"""Scene geometry: oriented cuboids and a pinhole camera (metres, z up, floor at z = 0).

Everything in a warehouse scene is a cuboid: pallet boards and blocks, boxes of a load, rack
uprights and beams, distractors. A cuboid is a centre, three half sizes and a rotation whose
columns are its local axes in the world; rays hit it by the slab test, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Boxes:
    """Oriented cuboids (a batch of them, as tensors).

    Args:
        centers: Centres [m], shape (B, 3).
        half_sizes: Half sizes along the local axes [m], shape (B, 3), positive.
        rotations: Local-to-world rotations, shape (B, 3, 3) (columns are the local axes).
        materials: Material index of each cuboid, shape (B,), int64.
        instances: Annotated instance each cuboid belongs to (e.g. its pallet), shape (B,),
            int64; -1 for cuboids that belong to no annotated instance.
    """

    centers: torch.Tensor
    half_sizes: torch.Tensor
    rotations: torch.Tensor
    materials: torch.Tensor
    instances: torch.Tensor

    def __post_init__(self) -> None:
        count = self.centers.shape[0]
        shapes = {
            "centers": (self.centers, (count, 3)),
            "half_sizes": (self.half_sizes, (count, 3)),
            "rotations": (self.rotations, (count, 3, 3)),
            "materials": (self.materials, (count,)),
            "instances": (self.instances, (count,)),
        }
        for name, (value, shape) in shapes.items():
            if tuple(value.shape) != shape:
                msg = f"Boxes.{name} must have shape {shape}, got {tuple(value.shape)}"
                raise ValueError(msg)
        if count and not bool((self.half_sizes > 0).all()):
            msg = "Boxes.half_sizes must be positive"
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.centers.device

    def to(self, device: torch.device | str) -> Boxes:
        """The same cuboids on ``device``."""
        return Boxes(
            self.centers.to(device),
            self.half_sizes.to(device),
            self.rotations.to(device),
            self.materials.to(device),
            self.instances.to(device),
        )

    def corners(self) -> torch.Tensor:
        """The eight corners of every cuboid in the world [m], shape (B, 8, 3)."""
        signs = torch.tensor(
            [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
            dtype=self.centers.dtype,
            device=self.device,
        )
        local = signs[None] * self.half_sizes[:, None, :]
        return self.centers[:, None, :] + local @ self.rotations.transpose(1, 2)


class BoxList:
    """Collects cuboids (one by one or in groups) and turns them into :class:`Boxes` once.

    Groups are kept as numpy arrays, so that a pallet's 20 parts cost one call, not 20.

    Example:
        >>> boxes = BoxList()
        >>> boxes.add((0, 0, 0.5), (1.0, 1.0, 1.0), material=2)
        >>> boxes.add((3, 0, 0.5), (0.5, 0.5, 1.0), yaw=math.pi / 4, material=1, instance=0)
        >>> built = boxes.build()
        >>> len(built), built.instances.tolist()
        (2, [-1, 0])
    """

    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(
        self,
        center: Sequence[float] | np.ndarray,
        size: Sequence[float] | np.ndarray,
        yaw: float = 0.0,
        material: int = 0,
        instance: int = -1,
        rotation: np.ndarray | None = None,
    ) -> None:
        """Add a cuboid of full ``size`` [m] at ``center``, turned by ``yaw`` about z.

        ``rotation`` (a 3 x 3 local-to-world matrix) replaces ``yaw`` when given.
        """
        self.add_many(
            np.asarray(center, dtype=np.float64)[None],
            np.asarray(size, dtype=np.float64)[None],
            (yaw_matrix(yaw) if rotation is None else np.asarray(rotation))[None],
            np.asarray([material]),
            np.asarray([instance]),
        )

    def add_many(
        self,
        centers: np.ndarray,
        sizes: np.ndarray,
        rotations: np.ndarray,
        materials: np.ndarray | int,
        instances: np.ndarray | int,
    ) -> None:
        """Add ``n`` cuboids at once.

        Centres and full sizes are (n, 3); rotations (n, 3, 3), or one (3, 3) for all;
        materials and instances (n,), or one value for all.
        """
        count = len(centers)
        if count == 0:
            return
        sizes = np.asarray(sizes, dtype=np.float64).reshape(count, 3)
        if sizes.min() <= 0:
            msg = f"size must be positive in every axis, got {sizes[sizes.min(1) <= 0][0]}"
            raise ValueError(msg)
        self._chunks.append(
            (
                np.asarray(centers, dtype=np.float64).reshape(count, 3),
                sizes,
                _spread(np.asarray(rotations, dtype=np.float64), (count, 3, 3)),
                _spread(np.asarray(materials, dtype=np.int64), (count,)),
                _spread(np.asarray(instances, dtype=np.int64), (count,)),
            )
        )
        self._count += count

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Centres, full sizes, rotations, materials and instances, as whole arrays."""
        if not self._chunks:
            return (
                np.zeros((0, 3)),
                np.zeros((0, 3)),
                np.zeros((0, 3, 3)),
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
            )
        return tuple(np.concatenate([chunk[k] for chunk in self._chunks]) for k in range(5))

    def drop_near(self, point: Sequence[float], margin: float) -> int:
        """Drop cuboids that hold ``point`` or come within ``margin`` [m] of it.

        An annotated instance loses all its cuboids when one of them goes, so that no
        half object is annotated. Returns the number of cuboids dropped.
        """
        centers, sizes, rotations, materials, instances = self.arrays()
        target = np.asarray(point, dtype=np.float64)
        local = np.einsum("nji,nj->ni", rotations, target - centers)
        gone = (np.abs(local) <= sizes / 2 + margin).all(1)
        owners = np.unique(instances[gone & (instances >= 0)])
        gone |= np.isin(instances, owners)
        if not gone.any():
            return 0
        keep = ~gone
        self._chunks = [
            (centers[keep], sizes[keep], rotations[keep], materials[keep], instances[keep])
        ]
        self._count = int(keep.sum())
        return int(gone.sum())

    def build(self, device: torch.device | str = "cpu") -> Boxes:
        """The cuboids as tensors (float32) on ``device``."""
        centers, sizes, rotations, materials, instances = self.arrays()
        return Boxes(
            torch.tensor(centers, dtype=torch.float32, device=device),
            torch.tensor(sizes / 2, dtype=torch.float32, device=device),
            torch.tensor(rotations, dtype=torch.float32, device=device),
            torch.tensor(materials, dtype=torch.int64, device=device),
            torch.tensor(instances, dtype=torch.int64, device=device),
        )


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation by ``yaw`` [rad] about the vertical axis (local-to-world)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera.

    Camera axes: x to the right of the image, y down, z forward (the viewing direction).

    Args:
        position: Centre of projection in the world [m].
        rotation: World-to-camera rotation, rows are the camera axes in the world.
        focal: Focal length [pixels] (square pixels).
        width: Image width [pixels].
        height: Image height [pixels].
    """

    position: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    focal: float
    width: int
    height: int

    @classmethod
    def look_at(
        cls,
        position: Sequence[float],
        target: Sequence[float],
        fov: float,
        width: int,
        height: int,
        roll: float = 0.0,
    ) -> Camera:
        """A camera at ``position`` looking at ``target`` with a horizontal field of view.

        Args:
            position: Camera position [m].
            target: Point it looks at [m]; not straight above or below ``position``.
            fov: Horizontal field of view [degrees], in (0, 180).
            width: Image width [pixels].
            height: Image height [pixels].
            roll: Rotation about the viewing direction [rad].

        Example:
            >>> camera = Camera.look_at((0, 0, 1.5), (5, 0, 1.5), fov=90, width=64, height=48)
            >>> camera.project(torch.tensor([[5.0, 0.0, 1.5]])).tolist()  # the image centre
            [[32.0, 24.0, 5.0]]
        """
        if not 0 < fov < 180:
            msg = f"fov must be in (0, 180) degrees, got {fov}"
            raise ValueError(msg)
        if width < 1 or height < 1:
            msg = f"width and height must be >= 1 pixel, got {width} x {height}"
            raise ValueError(msg)
        eye = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye
        if float(np.linalg.norm(forward[:2])) < 1e-9 * max(float(np.linalg.norm(forward)), 1e-12):
            msg = f"target {tuple(target)} is straight above or below position {tuple(position)}"
            raise ValueError(msg)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        c, s = math.cos(roll), math.sin(roll)
        right, up = c * right + s * up, -s * right + c * up
        rotation = np.stack([right, -up, forward])
        focal = width / 2 / math.tan(math.radians(fov) / 2)
        rows = tuple((float(r[0]), float(r[1]), float(r[2])) for r in rotation)
        return cls(
            (float(eye[0]), float(eye[1]), float(eye[2])),
            rows,
            float(focal),
            int(width),
            int(height),
        )

    def tensors(
        self, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Position (3,), world-to-camera rotation (3, 3) and inverse intrinsics (3, 3)."""
        eye = torch.tensor(self.position, dtype=torch.float32, device=device)
        rotation = torch.tensor(self.rotation, dtype=torch.float32, device=device)
        cx, cy = self.width / 2, self.height / 2
        inverse_k = torch.tensor(
            [
                [1 / self.focal, 0, -cx / self.focal],
                [0, 1 / self.focal, -cy / self.focal],
                [0, 0, 1],
            ],
            dtype=torch.float32,
            device=device,
        )
        return eye, rotation, inverse_k

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Image coordinates ``u, v`` [pixels] and depth ``z`` [m] of world points (N, 3)."""
        eye, rotation, _ = self.tensors(points.device)
        camera = (points.to(torch.float32) - eye) @ rotation.T
        z = camera[:, 2]
        u = self.focal * camera[:, 0] / z + self.width / 2
        v = self.focal * camera[:, 1] / z + self.height / 2
        return torch.stack([u, v, z], dim=1)

    def ray_directions(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """World direction of the ray through every pixel centre, scaled to unit depth.

        Shape (3, H * W): one row per world axis, pixels row-major (a layout in which
        per-pixel arithmetic runs on contiguous rows); ``position + t * direction`` lies at
        camera depth ``t``.
        """
        _, rotation, inverse_k = self.tensors(device)
        matrix = rotation.T @ inverse_k
        v = (torch.arange(self.height, device=device, dtype=torch.float32) + 0.5)[:, None]
        u = (torch.arange(self.width, device=device, dtype=torch.float32) + 0.5)[None, :]
        rows = [
            (matrix[k, 0] * u + (matrix[k, 1] * v + matrix[k, 2])).reshape(-1) for k in range(3)
        ]
        return torch.stack(rows)


def _spread(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` broadcast to ``shape`` (as is when it has that shape: most calls add one)."""
    return array if array.shape == shape else np.broadcast_to(array, shape)
