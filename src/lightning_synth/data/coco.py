"""Detection data in COCO format: a dataset that reads it, writers for sets and detections.

The COCO layout is the one users have: a JSON file with ``images`` (``id``, ``file_name``,
``width``, ``height``), ``annotations`` (``image_id``, ``category_id``, ``bbox`` as
``[x, y, width, height]`` in pixels, optional ``iscrowd``) and ``categories`` (``id``,
``name``), plus a folder of images. Samples follow the project's contract: ``image``
(3, H, W) float in [0, 1], ``boxes`` (N, 4) xyxy pixels, ``labels`` (N,) int64 numbered
1..K in the order of ``categories`` (0 is the background), and ``meta``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

#: Relative tolerance [pixels] for boxes that touch the image border.
_EDGE = 0.5


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as a (3, H, W) float32 tensor in [0, 1], whatever its bit depth.

    8-bit images are divided by 255, 16-bit ones (PNG, TIFF) by 65535, and 32-bit float
    ones are taken as they are (they must lie in [0, 1]); grey images become three equal
    channels. A file that cannot be read (truncated, not an image) is named in the error.
    """
    from PIL import Image

    try:
        with Image.open(path) as picture:
            mode = picture.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                array = np.asarray(picture, dtype=np.float32) / 65535
            elif mode == "F":
                array = np.asarray(picture, dtype=np.float32)
            else:
                array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255
    except (OSError, ValueError) as error:  # PIL's truncated and unidentified images
        msg = f"cannot read image {path}: {error}"
        raise ValueError(msg) from error
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        msg = f"image {path} ({mode}) has values outside [0, 1] after scaling by its bit depth"
        raise ValueError(msg)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{what} must be an integer, got {value!r}"
        raise ValueError(msg)
    return value


class CocoDetection(Dataset[dict[str, Any]]):
    """Images and boxes of a COCO annotation file, checked when it is opened.

    Every problem is reported with the file, the image or annotation id and the value: an
    empty file (no images), a missing image, a box outside its image or of no area, an
    annotation of an unknown category or image. Crowd annotations (``iscrowd: 1``) are left
    out of the targets and listed in ``meta`` (``crowd``, ``crowd_boxes`` xyxy in the file's
    image frame, ``crowd_labels``); evaluation ignores detections on them, as COCO does.

    Args:
        annotations: The COCO JSON file.
        images: Folder the ``file_name`` entries are relative to; by default the JSON's
            folder.
        categories: Category names to keep, in label order (labels 1..K); by default all,
            in the file's order. Annotations of other categories are left out.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 6)).save(folder / "a.png")
        >>> coco = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
        ...         "annotations": [{"id": 5, "image_id": 1, "category_id": 3,
        ...                          "bbox": [1, 1, 4, 2]}],
        ...         "categories": [{"id": 3, "name": "pallet"}]}
        >>> _ = (folder / "set.json").write_text(json.dumps(coco))
        >>> sample = CocoDetection(folder / "set.json")[0]
        >>> sample["image"].shape, sample["boxes"].tolist(), sample["labels"].tolist()
        (torch.Size([3, 6, 8]), [[1.0, 1.0, 5.0, 3.0]], [1])
    """

    def __init__(
        self,
        annotations: str | Path,
        images: str | Path | None = None,
        categories: Sequence[str] | None = None,
    ) -> None:
        self.annotation_file = Path(annotations)
        if not self.annotation_file.is_file():
            msg = f"COCO annotation file {self.annotation_file} does not exist"
            raise FileNotFoundError(msg)
        self.image_root = Path(images) if images is not None else self.annotation_file.parent
        try:
            content = json.loads(self.annotation_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            msg = f"{self.annotation_file} is not valid UTF-8 JSON: {error}"
            raise ValueError(msg) from error
        where = str(self.annotation_file)
        if not isinstance(content, Mapping) or not content.get("images"):
            msg = f"{where} holds no images (an empty or non-COCO annotation file)"
            raise ValueError(msg)
        known = {
            _integer(c.get("id"), f"category id in {where}"): str(c.get("name"))
            for c in content.get("categories", [])
        }
        if not known:
            msg = f"{where} defines no categories"
            raise ValueError(msg)
        names = list(categories) if categories is not None else list(known.values())
        unknown_names = sorted(set(names) - set(known.values()))
        if unknown_names:
            msg = f"categories {unknown_names} are not in {where} (it has {sorted(known.values())})"
            raise ValueError(msg)
        self.categories = names
        label_of = {cid: names.index(name) + 1 for cid, name in known.items() if name in names}

        self.images: list[dict[str, Any]] = []
        index_of: dict[int, int] = {}
        for entry in content["images"]:
            image_id = _integer(entry.get("id"), f"image id in {where}")
            if "file_name" not in entry:
                msg = f"image {image_id} of {where} has no file_name"
                raise ValueError(msg)
            path = self.image_root / str(entry["file_name"])
            if not path.is_file():
                msg = f"image {image_id} of {where}: file {path} does not exist"
                raise FileNotFoundError(msg)
            if image_id in index_of:
                msg = f"image id {image_id} appears twice in {where}"
                raise ValueError(msg)
            width, height = entry.get("width"), entry.get("height")
            if width is None or height is None:
                from PIL import Image

                with Image.open(path) as picture:
                    width, height = picture.size
            index_of[image_id] = len(self.images)
            self.images.append(
                {
                    "id": image_id,
                    "path": path,
                    "width": int(width),
                    "height": int(height),
                    "boxes": [],
                    "labels": [],
                    "crowd_boxes": [],
                    "crowd_labels": [],
                }
            )
        for annotation in content.get("annotations", []):
            self._add(annotation, index_of, known, label_of, where)

    def _add(
        self,
        annotation: Mapping[str, Any],
        index_of: Mapping[int, int],
        known: Mapping[int, str],
        label_of: Mapping[int, int],
        where: str,
    ) -> None:
        ident = annotation.get("id", "?")
        image_id = _integer(
            annotation.get("image_id"), f"image_id of annotation {ident} of {where}"
        )
        if image_id not in index_of:
            msg = f"annotation {ident} of {where} refers to image {image_id}, which is not listed"
            raise ValueError(msg)
        category = _integer(
            annotation.get("category_id"), f"category_id of annotation {ident} of {where}"
        )
        if category not in known:
            msg = (
                f"annotation {ident} of {where} has category_id {category}, which is not in "
                f"categories {sorted(known)}"
            )
            raise ValueError(msg)
        image = self.images[index_of[image_id]]
        bbox = annotation.get("bbox")
        if (
            not isinstance(bbox, list | tuple)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        ):
            msg = (
                f"annotation {ident} of {where}: bbox must be 4 numbers [x, y, width, height], "
                f"got {bbox!r}"
            )
            raise ValueError(msg)
        x, y, w, h = (float(v) for v in bbox)
        corners = np.array([x, y, x + w, y + h], dtype=np.float32)
        # A box must have an area in float32, which the detectors compute in.
        if not np.isfinite(corners).all() or corners[2] <= corners[0] or corners[3] <= corners[1]:
            msg = f"annotation {ident} of {where} has a box of no area: bbox {[x, y, w, h]}"
            raise ValueError(msg)
        inside = (
            x >= -_EDGE
            and y >= -_EDGE
            and x + w <= image["width"] + _EDGE
            and y + h <= image["height"] + _EDGE
        )
        if not inside:
            msg = (
                f"annotation {ident} of {where}: bbox {[x, y, w, h]} lies outside image "
                f"{image_id} ({image['width']} x {image['height']})"
            )
            raise ValueError(msg)
        if category not in label_of:
            return  # a category the caller did not ask for
        kind = "crowd_" if annotation.get("iscrowd", 0) else ""
        image[f"{kind}boxes"].append([x, y, x + w, y + h])
        image[f"{kind}labels"].append(label_of[category])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.images[index]
        image = read_rgb(entry["path"])
        if tuple(image.shape[1:]) != (entry["height"], entry["width"]):
            msg = (
                f"image {entry['id']} ({entry['path']}) is {image.shape[2]} x {image.shape[1]}, "
                f"but {self.annotation_file} says {entry['width']} x {entry['height']}"
            )
            raise ValueError(msg)
        boxes = torch.tensor(entry["boxes"], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, entry["width"])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, entry["height"])
        return {
            "image": image,
            "boxes": boxes,
            "labels": torch.tensor(entry["labels"], dtype=torch.int64),
            "meta": {
                "image_id": entry["id"],
                "file_name": entry["path"].name,
                "crowd": len(entry["crowd_boxes"]),
                "crowd_boxes": entry["crowd_boxes"],
                "crowd_labels": entry["crowd_labels"],
            },
        }


def write_coco(
    samples: Iterable[Mapping[str, Any]],
    folder: str | Path,
    categories: Sequence[str] = ("pallet",),
    annotation_name: str = "annotations.json",
) -> Path:
    """Write detection samples as PNG images plus a COCO annotation file in ``folder``.

    Labels 1..K map to ``categories`` (category ids 1..K); crowd regions a sample lists in
    ``meta["crowd_boxes"]`` and ``meta["crowd_labels"]`` are written with ``iscrowd: 1``.
    Returns the annotation file.
    """
    from PIL import Image

    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for number, sample in enumerate(samples, start=1):
        image = sample["image"]
        array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        name = f"images/{number:06d}.png"
        Image.fromarray(array).save(root / name)
        images.append(
            {"id": number, "file_name": name, "width": array.shape[1], "height": array.shape[0]}
        )
        meta = sample.get("meta", {})
        objects = [
            (box, label, 0)
            for box, label in zip(sample["boxes"].tolist(), sample["labels"].tolist(), strict=True)
        ]
        crowd = zip(meta.get("crowd_boxes", []), meta.get("crowd_labels", []), strict=True)
        for box, label, is_crowd in objects + [(box, label, 1) for box, label in crowd]:
            x0, y0, x1, y1 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": int(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": is_crowd,
                }
            )
    content = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(categories)],
    }
    path = root / annotation_name
    path.write_text(json.dumps(content))
    return path


def coco_detections(
    image_ids: Sequence[int], predictions: Sequence[Mapping[str, torch.Tensor]]
) -> list[dict[str, Any]]:
    """Detections in the COCO results format, one entry per box.

    Each entry has ``image_id``, ``category_id``, ``bbox`` (``[x, y, width, height]``) and
    ``score``, as COCO tools read them.

    Example:
        >>> coco_detections([7], [{"boxes": torch.tensor([[1.0, 2.0, 4.0, 6.0]]),
        ...                        "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}])
        [{'image_id': 7, 'category_id': 1, 'bbox': [1.0, 2.0, 3.0, 4.0], 'score': 0.5}]
    """
    results = []
    for image_id, prediction in zip(image_ids, predictions, strict=True):
        boxes = prediction["boxes"].tolist()
        for box, score, label in zip(
            boxes, prediction["scores"].tolist(), prediction["labels"].tolist(), strict=True
        ):
            x0, y0, x1, y1 = box
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": round(float(score), 5),
                }
            )
    return results
