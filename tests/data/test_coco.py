"""The COCO detection loader, its errors, and the writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_synth.data.coco import CocoDetection, coco_detections, write_coco


def _coco(tmp_path: Path, **changes: object) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "images" / "a.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "images" / "b.jpg")
    content: dict = {
        "images": [
            {"id": 1, "file_name": "images/a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "images/b.jpg", "width": 20, "height": 20},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5]},
            {"id": 11, "image_id": 1, "category_id": 9, "bbox": [0, 0, 40, 30]},
            {"id": 12, "image_id": 1, "category_id": 7, "bbox": [5, 5, 4, 4], "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "pallet"}, {"id": 9, "name": "person"}],
    }
    content.update(changes)
    path = tmp_path / "set.json"
    path.write_text(json.dumps(content))
    return path


def test_reads_boxes_labels_and_images(tmp_path: Path) -> None:
    data = CocoDetection(_coco(tmp_path))
    assert len(data) == 2 and data.categories == ["pallet", "person"]
    first = data[0]
    assert first["image"].shape == (3, 30, 40) and first["image"].dtype == torch.float32
    assert first["boxes"].tolist() == [[2.0, 3.0, 12.0, 8.0], [0.0, 0.0, 40.0, 30.0]]
    assert first["labels"].tolist() == [1, 2]
    assert first["meta"]["crowd"] == 1  # the crowd box is not a target...
    assert first["meta"]["crowd_boxes"] == [[5.0, 5.0, 9.0, 9.0]]  # ...but a region to ignore
    assert first["meta"]["crowd_labels"] == [1]
    empty = data[1]  # an image without annotations: a negative
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    pallets = CocoDetection(_coco(tmp_path), categories=["pallet"])
    assert pallets[0]["labels"].tolist() == [1] and len(pallets[0]["boxes"]) == 1


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"images": []}, ValueError, "holds no images"),
        (
            {"images": [{"id": 3, "file_name": "images/missing.png", "width": 4, "height": 4}]},
            FileNotFoundError,
            r"image 3 of .*set.json: file .*missing.png does not exist",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [35, 2, 10, 5]}]},
            ValueError,
            r"annotation 5 of .*: bbox \[35.0, 2.0, 10.0, 5.0\] lies outside image 1 \(40 x 30\)",
        ),
        (
            {"annotations": [{"id": 6, "image_id": 1, "category_id": 4, "bbox": [1, 1, 2, 2]}]},
            ValueError,
            r"annotation 6 of .* has category_id 4, which is not in categories \[7, 9\]",
        ),
        (
            {"annotations": [{"id": 8, "image_id": 99, "category_id": 7, "bbox": [1, 1, 2, 2]}]},
            ValueError,
            "annotation 8 of .* refers to image 99",
        ),
        (
            {"annotations": [{"id": 9, "image_id": 1, "category_id": 7, "bbox": [1, 1, 0, 2]}]},
            ValueError,
            "has a box of no area",
        ),
        (
            {"annotations": [{"id": 9, "image_id": 1, "category_id": 7, "bbox": [1, 1, 1e-9, 2]}]},
            ValueError,
            "has a box of no area",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 1, "category_id": 7, "bbox": [1, 1, 2]}]},
            ValueError,
            r"annotation 4 of .*: bbox must be 4 numbers \[x, y, width, height\], got \[1, 1, 2\]",
        ),
        (
            {"images": [{"id": "a", "file_name": "images/a.png", "width": 40, "height": 30}]},
            ValueError,
            r"image id in .*set.json must be an integer, got 'a'",
        ),
        (
            {"images": [{"id": 1.5, "file_name": "images/a.png", "width": 40, "height": 30}]},
            ValueError,
            r"image id in .*set.json must be an integer, got 1.5",
        ),
        (
            {"annotations": [{"id": 3, "image_id": "1", "category_id": 7, "bbox": [1, 1, 2, 2]}]},
            ValueError,
            r"image_id of annotation 3 of .* must be an integer, got '1'",
        ),
        ({"categories": []}, ValueError, "defines no categories"),
    ],
)
def test_bad_files_get_clear_errors(
    tmp_path: Path, changes: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CocoDetection(_coco(tmp_path, **changes))


def test_other_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CocoDetection(tmp_path / "nothing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken.json is not valid UTF-8 JSON"):
        CocoDetection(tmp_path / "broken.json")
    (tmp_path / "latin.json").write_bytes('{"images": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.json is not valid UTF-8 JSON"):
        CocoDetection(tmp_path / "latin.json")
    with pytest.raises(ValueError, match=r"categories \['forklift'\] are not in"):
        CocoDetection(_coco(tmp_path), categories=["forklift"])
    wrong_size = _coco(
        tmp_path, images=[{"id": 1, "file_name": "images/a.png", "width": 41, "height": 30}]
    )
    with pytest.raises(ValueError, match="is 40 x 30, but .* says 41 x 30"):
        CocoDetection(wrong_size)[0]


def test_write_coco_round_trips(tmp_path: Path) -> None:
    samples = [
        {
            "image": torch.rand(3, 12, 16),
            "boxes": torch.tensor([[1.0, 2.0, 5.0, 9.0]]),
            "labels": torch.tensor([1]),
        },
        {
            "image": torch.rand(3, 12, 16),
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.long),
        },
    ]
    samples[1]["meta"] = {"crowd_boxes": [[0.0, 0.0, 3.0, 2.0]], "crowd_labels": [1]}
    path = write_coco(samples, tmp_path / "out")
    back = CocoDetection(path)
    assert len(back) == 2 and back[0]["boxes"].tolist() == [[1.0, 2.0, 5.0, 9.0]]
    assert back[0]["meta"]["crowd_boxes"] == []
    assert back[1]["meta"]["crowd_boxes"] == [[0.0, 0.0, 3.0, 2.0]]
    assert back[1]["boxes"].shape == (0, 4)
    assert torch.allclose(back[0]["image"], samples[0]["image"], atol=1 / 255)


def test_detections_in_the_coco_results_format() -> None:
    found = coco_detections(
        [3, 4],
        [
            {
                "boxes": torch.tensor([[0.0, 0.0, 2.0, 3.0]]),
                "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]),
            },
            {
                "boxes": torch.zeros(0, 4),
                "scores": torch.zeros(0),
                "labels": torch.zeros(0, dtype=torch.long),
            },
        ],
    )
    assert found == [{"image_id": 3, "category_id": 1, "bbox": [0.0, 0.0, 2.0, 3.0], "score": 0.9}]


def test_images_of_any_bit_depth_keep_their_values(tmp_path: Path) -> None:
    import numpy as np

    from lightning_synth.data.coco import read_rgb

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    image = read_rgb(tmp_path / "deep.png")
    assert image.shape == (3, 8, 8)
    assert len(torch.unique(image[0])) == 64  # not collapsed to two values
    assert torch.allclose(image[0].flatten()[:3], torch.tensor([0.0, 1000, 2000]) / 65535)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "red.jpg")
    assert float(read_rgb(tmp_path / "red.jpg")[0].mean()) > 0.9


def test_a_truncated_image_is_named(tmp_path: Path) -> None:
    path = _coco(tmp_path)
    jpeg = tmp_path / "images" / "b.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"cannot read image .*b.jpg"):
        CocoDetection(path)[1]
