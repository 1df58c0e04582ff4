"""Real data: folders of TIFF/PNG/NPY images with masks, and the study's HDF5 layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from lightning_synth.data.images import SegmentationFolder


def _write_pair(folder: Path, masks: Path, stem: str, size: int = 40, suffix: str = ".tif") -> None:
    folder.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    rng = np.random.default_rng(len(stem))
    image = rng.random((size, size)).astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    mask[10:20, 10:30] = 255
    if suffix == ".npy":
        np.save(folder / f"{stem}.npy", image)
    else:
        Image.fromarray(image).save(folder / f"{stem}{suffix}")
    Image.fromarray(mask).save(masks / f"{stem}.png")


def test_folder_pairs_by_stem_resamples_and_tiles(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write_pair(images, masks, "a", suffix=".tif")
    _write_pair(images, masks, "b", suffix=".npy")
    # 0.1 A pixels resampled to 0.2 A: 40 -> 20 pixels, tiled by 10 -> 4 tiles per image.
    data = SegmentationFolder.from_path(
        images, masks, pixel_size=0.1, target_pixel_size=0.2, tile=10
    )
    assert len(data) == 8
    sample = data[1]
    assert sample["image"].shape == (1, 10, 10) and sample["mask"].shape == (10, 10)
    assert set(sample["mask"].unique().tolist()) <= {0, 1}
    assert sample["meta"] == {"file": "a.tif", "top": 0, "left": 10}
    whole = SegmentationFolder.from_path(
        images, None, pixel_size=0.2, target_pixel_size=0.2, tile=None
    )
    assert whole[0]["image"].shape == (1, 40, 40) and "mask" not in whole[0]


def test_hdf5_layout(tmp_path: Path) -> None:
    path = tmp_path / "experimental.h5"
    with h5py.File(path, "w") as file:
        file["images"] = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
        maps = np.zeros((3, 32, 32, 2), np.float32)
        maps[:, 8:16, 8:16, 1] = 1
        file["maps"] = maps
    data = SegmentationFolder.from_path(path, None, pixel_size=0.2, target_pixel_size=0.2, tile=16)
    assert len(data) == 12
    assert int(data[0]["mask"].sum()) == 64
    assert data[5]["meta"]["file"] == "experimental.h5[1]"


def test_bad_real_data_gets_clear_errors(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write_pair(images, masks, "a")
    (images / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"no mask in .*masks for the images \['b.png'\]"):
        SegmentationFolder.from_path(images, masks, 0.2, 0.2)
    (masks / "b.png").write_bytes(b"still not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*b.png"):
        SegmentationFolder.from_path(images, masks, 0.2, 0.2, tile=None)
    with pytest.raises(FileNotFoundError, match="real images not found"):
        SegmentationFolder.from_path(tmp_path / "nowhere", None, 0.2, 0.2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        SegmentationFolder.from_path(empty, None, 0.2, 0.2)
    with pytest.raises(ValueError, match="pixel_size must be positive"):
        SegmentationFolder.from_path(images, None, 0.0, 0.2)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as file:
        file["images"] = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=r"lacks the datasets \['maps'\]"):
        SegmentationFolder.from_path(bad, None, 0.2, 0.2)
    with pytest.raises(ValueError, match="smaller than tile=256"):
        SegmentationFolder.from_path(images, None, 0.2, 0.2, tile=256)
