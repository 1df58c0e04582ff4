"""Real micrographs with masks: folders of TIFF/PNG/NPY files, or the study's HDF5 layout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import Dataset

from lightning_synth._lazy import missing_extra

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".npy")

Normalization = Literal["min_max", "percentile", "robust"]
NORMALIZATIONS: tuple[str, ...] = ("min_max", "percentile", "robust")
#: Quantiles mapped to 0 and 1 by the ``percentile`` normalisation.
PERCENTILES = (0.005, 0.995)
#: The ``robust`` normalisation maps median -/+ this many standard deviations (from the
#: interquartile range) to 0 and 1.
ROBUST_SPAN = 4.0
#: Subdivisions per pixel side with which :func:`coarsen` places the coarser pixels.
_SUBPIXELS = 4
#: Pixels per image that ``torch.quantile`` sees at most (it refuses more than 2^24).
_QUANTILE_PIXELS = 2**22


def normalize_intensity(images: torch.Tensor, method: Normalization = "percentile") -> torch.Tensor:
    """Scale every image of a (N, C, H, W) batch to [0, 1] on its own.

    ``"min_max"`` maps each image's minimum to 0 and its maximum to 1 (the study's rule); a
    single hot pixel then squeezes the rest of the image into a sliver of the range.
    ``"percentile"`` maps the 0.5% and 99.5% quantiles to 0 and 1 and clips outside them, so
    a few hot or dead pixels saturate instead of rescaling the image; a bright edge wider
    than 0.5% of the pixels still moves the upper quantile. ``"robust"`` maps the median
    minus and plus 4 standard deviations, estimated from the interquartile range (``IQR /
    1.349``), to 0 and 1 and clips outside: it holds until a quarter of the pixels are
    outliers.

    Example:
        >>> image = torch.linspace(0, 1, 1000).view(1, 1, 10, 100)
        >>> image[0, 0, 0, 0] = 1000.0  # a hot pixel
        >>> round(float(normalize_intensity(image, "percentile").median()), 2)
        0.5
        >>> round(float(normalize_intensity(image, "min_max").median()), 4)
        0.0005
        >>> round(float(normalize_intensity(image, "robust").median()), 2)
        0.5
    """
    if method not in NORMALIZATIONS:
        msg = f"normalization must be one of {NORMALIZATIONS}, got {method!r}"
        raise ValueError(msg)
    images = images.float()
    flat = images.flatten(1)
    if method == "min_max":
        low, high = flat.min(dim=1).values, flat.max(dim=1).values
    else:
        step = max(1, math.ceil(flat.shape[1] / _QUANTILE_PIXELS))
        levels = PERCENTILES if method == "percentile" else (0.25, 0.5, 0.75)
        quantiles = torch.quantile(
            flat[:, ::step], torch.tensor(levels, dtype=flat.dtype, device=flat.device), dim=1
        )
        if method == "percentile":
            low, high = quantiles
        else:
            spread = ROBUST_SPAN * (quantiles[2] - quantiles[0]) / 1.349
            low, high = quantiles[1] - spread, quantiles[1] + spread
    shape = (-1,) + (1,) * (images.ndim - 1)
    scaled = (images - low.view(shape)) / (high - low).clamp_min(1e-12).view(shape)
    return scaled if method == "min_max" else scaled.clamp(0.0, 1.0)


def check_pixel_size(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0; a clear error if not."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        msg = f"{name} must be a number (Angstrom per pixel), got {value!r}"
        raise TypeError(msg)
    if not math.isfinite(value) or value <= 0:
        msg = f"{name} must be a finite number > 0 (Angstrom per pixel), got {value!r}"
        raise ValueError(msg)
    return float(value)


def coarsen(images: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """``images`` as if recorded with pixels ``factors`` times coarser, then resampled back.

    Each (C, H, W) image of the (N, C, H, W) batch is integrated over square pixels
    ``factors[i]`` times larger per side (a box of that width, to a quarter of a pixel: what
    a coarser detector pixel collects; the image is reflected past its bottom and right
    edges to fill the last ones) and brought back to its own pixels bilinearly, as
    :func:`lightning_synth.predict.segment` resamples a user's coarser image to the model's
    pixel size. A factor of 1 leaves its image as it is.

    Raises:
        ValueError: On a number of factors other than the batch's, or a factor below 1.
    """
    factors = [float(f) for f in factors]
    if len(factors) != len(images):
        msg = f"factors must have one value per image ({len(images)}), got {len(factors)}"
        raise ValueError(msg)
    if any(not math.isfinite(f) or f < 1.0 for f in factors):
        msg = f"factors must be finite and >= 1, got {factors}"
        raise ValueError(msg)
    out = images.clone()
    height, width = images.shape[-2:]
    for index, factor in enumerate(factors):
        kernel = round(_SUBPIXELS * factor)  # the coarse pixel's side in quarter pixels
        if kernel == _SUBPIXELS:
            continue
        fine = F.interpolate(images[index : index + 1].float(), scale_factor=_SUBPIXELS)
        pad = [(-size * _SUBPIXELS) % kernel for size in (width, height)]
        fine = F.pad(fine, (0, pad[0], 0, pad[1]), mode="reflect")
        coarse = F.avg_pool2d(fine, kernel)
        back = F.interpolate(
            coarse, scale_factor=kernel / _SUBPIXELS, mode="bilinear", align_corners=False
        )
        out[index] = back[0, :, :height, :width].to(images.dtype)
    return out


def image_files(
    folder: Path, what: str = "images", suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """The image files of ``folder`` by name; two files of one stem (a.png, a.tif) are an error."""
    if not folder.is_dir():
        msg = f"{what} folder not found: {folder}"
        raise FileNotFoundError(msg)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            msg = (
                f"{what} in {folder}: {stems[path.stem].name} and {path.name} share the stem "
                f"{path.stem!r}, so masks and outputs would be ambiguous; rename one"
            )
            raise ValueError(msg)
        stems[path.stem] = path
    return files


def tile_origins(length: int, tile: int) -> list[int]:
    """Starts of ``tile``-long windows covering ``range(length)``; the last one ends at the edge.

    Example:
        >>> tile_origins(10, 4), tile_origins(8, 4), tile_origins(3, 4)
        ([0, 4, 6], [0, 4], [0])
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def read_image(path: Path) -> np.ndarray:
    """A 2D float32 array from a TIFF, PNG or NPY file (colour images are averaged)."""
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path)
        else:
            from PIL import Image

            with Image.open(path) as picture:
                array = np.asarray(picture)
    except Exception as error:
        msg = f"cannot read image {path}: {error}"
        raise ValueError(msg) from error
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].mean(axis=-1)
    if array.ndim != 2:
        msg = f"image {path} must be 2D (or RGB), got shape {array.shape}"
        raise ValueError(msg)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        msg = f"image {path} holds NaN or infinite values"
        raise ValueError(msg)
    return array


def resample(image: torch.Tensor, factor: float, mask: bool = False) -> torch.Tensor:
    """Resample a (H, W) array by ``factor`` (new pixels per old pixel, per side)."""
    if abs(factor - 1.0) < 1e-9:
        return image
    size = (max(1, round(image.shape[0] * factor)), max(1, round(image.shape[1] * factor)))
    batch = image[None, None].float()
    if mask:
        return F.interpolate(batch, size=size, mode="nearest")[0, 0].to(image.dtype)
    return F.interpolate(
        batch, size=size, mode="bilinear", antialias=factor < 1, align_corners=False
    )[0, 0]


class SegmentationFolder(Dataset[dict[str, Any]]):
    """Real images (and optional masks), resampled to ``target_pixel_size`` and tiled.

    Args:
        images: Image arrays (H, W), or paths read lazily.
        masks: Matching masks (non-zero = particle), paths, or None.
        pixel_size: Pixel size of the images [A].
        target_pixel_size: Pixel size the model works at [A].
        tile: Cut every resampled image into ``tile`` x ``tile`` samples covering it whole
            (the last row and column of tiles end at the image's edge, overlapping the
            others; an image smaller than a tile is reflect-padded to one); None keeps whole
            images.
        names: Names for the metadata (file names).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray | Path],
        masks: Sequence[np.ndarray | Path] | None,
        pixel_size: float,
        target_pixel_size: float,
        tile: int | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        check_pixel_size("pixel_size", pixel_size)
        check_pixel_size("target_pixel_size", target_pixel_size)
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
            msg = f"tile must be an integer >= 1 (pixels) or None, got {tile!r}"
            raise ValueError(msg)
        if not images:
            msg = "images must hold at least one image, got none"
            raise ValueError(msg)
        if masks is not None and len(masks) != len(images):
            msg = f"got {len(images)} images but {len(masks)} masks"
            raise ValueError(msg)
        self.images, self.masks = list(images), None if masks is None else list(masks)
        self.factor = pixel_size / target_pixel_size
        self.tile = tile
        self.names = list(names) if names is not None else [str(i) for i in range(len(images))]
        self._tiles: list[tuple[int, int, int]] = []
        for index in range(len(self.images)):
            height, width = self._load(index)[0].shape
            if tile is None:
                self._tiles.append((index, 0, 0))
                continue
            for top in tile_origins(height, tile):
                for left in tile_origins(width, tile):
                    self._tiles.append((index, top, left))

    @classmethod
    def from_path(
        cls,
        images: str | Path,
        masks: str | Path | None,
        pixel_size: float,
        target_pixel_size: float,
        tile: int | None = 256,
    ) -> SegmentationFolder:
        """From a folder of images (masks in ``masks`` with the same stems) or an HDF5 file."""
        path = Path(images)
        if not path.exists():
            msg = f"real images not found: {path}"
            raise FileNotFoundError(msg)
        if path.is_file():
            return cls.from_hdf5(path, pixel_size, target_pixel_size, tile)
        return cls.from_folder(path, masks, pixel_size, target_pixel_size, tile)

    @classmethod
    def from_folder(
        cls,
        images: Path,
        masks: str | Path | None,
        pixel_size: float,
        target_pixel_size: float,
        tile: int | None = 256,
    ) -> SegmentationFolder:
        """Images in ``images``; masks, if given, in ``masks`` under the same file stems."""
        files = image_files(Path(images))
        if not files:
            msg = f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}"
            raise ValueError(msg)
        mask_files = None
        if masks is not None:
            by_stem = {p.stem: p for p in image_files(Path(masks), "masks")}
            missing = [p.name for p in files if p.stem not in by_stem]
            if missing:
                more = " ..." if len(missing) > 5 else ""
                msg = f"no mask in {masks} for the images {missing[:5]}{more}"
                raise ValueError(msg)
            mask_files = [by_stem[p.stem] for p in files]
        return cls(files, mask_files, pixel_size, target_pixel_size, tile, [p.name for p in files])

    @classmethod
    def from_hdf5(
        cls, path: Path, pixel_size: float, target_pixel_size: float, tile: int | None = 256
    ) -> SegmentationFolder:
        """The study's layout: ``images`` (N, H, W), ``maps`` (N, H, W) or one-hot (N, H, W, C)."""
        try:
            import h5py
        except ModuleNotFoundError as error:
            raise missing_extra(error, "reading HDF5 real data") from error

        try:
            with h5py.File(path, "r") as file:
                missing = [key for key in ("images", "maps") if key not in file]
                if missing:
                    msg = f"{path} lacks the datasets {missing} (expected 'images' and 'maps')"
                    raise ValueError(msg)
                images = np.asarray(file["images"], dtype=np.float32)
                maps = np.asarray(file["maps"])
        except OSError as error:
            msg = f"cannot read {path} as HDF5: {error}"
            raise ValueError(msg) from error
        if not np.isfinite(images).all():
            bad = sorted({int(i) for i in np.argwhere(~np.isfinite(images))[:, 0]})
            msg = f"{path}: 'images' holds NaN or infinite values (images {bad[:5]})"
            raise ValueError(msg)
        if maps.ndim == 4:  # one-hot maps: the last channel is the particle class
            maps = maps[..., -1]
        if images.ndim != 3 or maps.shape != images.shape:
            msg = f"{path}: images {images.shape} and maps {maps.shape} must both be (N, H, W)"
            raise ValueError(msg)
        names = [f"{path.name}[{i}]" for i in range(len(images))]
        return cls(list(images), list(maps), pixel_size, target_pixel_size, tile, names)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        source = self.images[index]
        image = torch.from_numpy(
            read_image(source) if isinstance(source, Path) else np.asarray(source, np.float32)
        )
        mask = None
        if self.masks is not None:
            target = self.masks[index]
            array = read_image(target) if isinstance(target, Path) else np.asarray(target)
            if array.shape != tuple(image.shape):
                msg = (
                    f"mask of {self.names[index]} is {array.shape}, its image {tuple(image.shape)}"
                )
                raise ValueError(msg)
            mask = torch.from_numpy((array > 0).astype(np.int64))
        image = resample(image, self.factor)
        if mask is not None:
            mask = resample(mask, self.factor, mask=True)
        return image, mask

    def __len__(self) -> int:
        return len(self._tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, top, left = self._tiles[index]
        image, mask = self._load(source)
        if self.tile is not None:
            image, mask = _pad_to(image, mask, self.tile)
            window = (slice(top, top + self.tile), slice(left, left + self.tile))
            image = image[window]
            mask = mask[window] if mask is not None else None
        sample: dict[str, Any] = {
            "image": image[None].contiguous(),
            "meta": {"file": self.names[source], "top": top, "left": left},
        }
        if mask is not None:
            sample["mask"] = mask.contiguous()
        return sample


def _pad_to(
    image: torch.Tensor, mask: torch.Tensor | None, side: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reflect-pad image and mask alike at the bottom and right to at least ``side``."""
    height, width = image.shape
    pad = (0, max(0, side - width), 0, max(0, side - height))
    if not any(pad):
        return image, mask
    # Reflection needs the padding to be shorter than the side; replicate otherwise.
    mode = "reflect" if pad[1] < width and pad[3] < height else "replicate"
    image = F.pad(image[None, None], pad, mode=mode)[0, 0]
    if mask is not None:
        mask = F.pad(mask[None, None].float(), pad, mode=mode)[0, 0].to(mask.dtype)
    return image, mask
