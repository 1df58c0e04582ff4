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
    with pytest.raises(ValueError, match=r"pixel_size must be a finite number > 0 .*got 0.0"):
        SegmentationFolder.from_path(images, None, 0.0, 0.2)
    with pytest.raises(ValueError, match=r"pixel_size must be a finite number > 0 .*got nan"):
        SegmentationFolder.from_path(images, None, float("nan"), 0.2)
    with pytest.raises(TypeError, match=r"pixel_size must be a number .*got '0.2'"):
        SegmentationFolder.from_path(images, None, "0.2", 0.2)  # type: ignore[arg-type]
    for tile in (0, -4, 2.5):
        with pytest.raises(ValueError, match=rf"tile must be an integer >= 1 .*got {tile}"):
            SegmentationFolder.from_path(images, masks, 0.2, 0.2, tile=tile)  # type: ignore[arg-type]
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as file:
        file["images"] = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=r"lacks the datasets \['maps'\]"):
        SegmentationFolder.from_path(bad, None, 0.2, 0.2)
    nan = tmp_path / "nan.h5"
    with h5py.File(nan, "w") as file:
        values = np.zeros((3, 8, 8), np.float32)
        values[2, 1, 1] = np.nan
        file["images"], file["maps"] = values, np.zeros((3, 8, 8))
    with pytest.raises(ValueError, match=r"nan.h5: 'images' holds NaN .*\[2\]"):
        SegmentationFolder.from_path(nan, None, 0.2, 0.2)
    _write_pair(images, masks, "c", suffix=".tif")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "c.png")
    with pytest.raises(ValueError, match=r"c.png and c.tif share the stem 'c'"):
        SegmentationFolder.from_path(images, masks, 0.2, 0.2)


def test_tiles_cover_images_of_any_size(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _write_pair(images, masks, "a", size=40)
    data = SegmentationFolder.from_path(images, masks, 0.2, 0.2, tile=16)
    # 40 = 16 + 16 + 8: a third row and column of tiles end at the edge, overlapping.
    assert [(s["meta"]["top"], s["meta"]["left"]) for s in data][:3] == [(0, 0), (0, 16), (0, 24)]
    assert len(data) == 9
    covered = np.zeros((40, 40), bool)
    for sample in data:
        top, left = sample["meta"]["top"], sample["meta"]["left"]
        covered[top : top + 16, left : left + 16] = True
    assert covered.all()
    # An image smaller than a tile is padded to one, mask alike.
    small = SegmentationFolder.from_path(images, masks, 0.2, 0.2, tile=64)
    assert len(small) == 1
    sample = small[0]
    assert sample["image"].shape == (1, 64, 64) and sample["mask"].shape == (64, 64)
    assert int(sample["mask"][:40, :40].sum()) == 200
