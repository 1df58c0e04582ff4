"""Inference on a folder of the user's images, for both tasks, and its command line.

``segment_folder`` segments micrographs of any size taken at any pixel size;
``detect_folder`` detects objects and writes COCO-format detections. With ground truth
(masks, or a COCO file) both also score the predictions. ``folder_command`` is the
``predict-folder`` subcommand of a recipe (see :func:`lightning_synth.cli.run_recipe`).
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import LightningModule

from lightning_synth.data.images import check_pixel_size, image_files, read_image, resample

TaskT = TypeVar("TaskT", bound=LightningModule)


def load_task(task_class: type[TaskT], checkpoint: str | Path) -> TaskT:
    """``task_class`` from a Lightning checkpoint, on the CPU, in eval mode.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a Lightning checkpoint, or one of another task.
    """
    path = Path(checkpoint)
    if not path.is_file():
        msg = f"checkpoint {path} does not exist"
        raise FileNotFoundError(msg)
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # pickle, zip and OS errors alike
        msg = f"{path} is not a PyTorch checkpoint: {error}"
        raise ValueError(msg) from error
    if not isinstance(content, dict) or "state_dict" not in content:
        msg = f"{path} is not a Lightning checkpoint (it has no state_dict)"
        raise ValueError(msg)
    known = set(inspect.signature(task_class.__init__).parameters) - {"self"}
    saved = {key for key in content.get("hyper_parameters", {}) if not key.startswith("_")}
    foreign = sorted(saved - known)  # LightningCLI adds "_instantiator" and the like
    if foreign:
        msg = (
            f"checkpoint {path} was written by another task than {task_class.__name__} "
            f"(its hyperparameters {foreign} are not {task_class.__name__}'s)"
        )
        raise ValueError(msg)
    task = task_class.load_from_checkpoint(path, map_location="cpu")
    task.eval()
    return task


def segment_folder(
    task: Any,
    images: str | Path,
    pixel_size: float,
    out: str | Path,
    masks: str | Path | None = None,
    model_pixel_size: float = 0.2,
) -> dict[str, Any]:
    """Segment every image of a folder, of any size, taken at ``pixel_size`` [A].

    Each image is resampled to the model's pixel size, min-max normalised, padded to a
    multiple of 32, segmented, and its mask resampled back to the image's own pixels. Writes
    ``<stem>_mask.png`` (0/255) and ``<stem>_mask.npy`` per image; with ``masks`` (same stems)
    also per-image and overall F1/IoU in ``metrics.json``.

    Returns:
        The metrics (empty without ``masks``).
    """
    from PIL import Image

    pixel_size = check_pixel_size("pixel_size", pixel_size)
    model_pixel_size = check_pixel_size("model_pixel_size", model_pixel_size)
    folder, out = Path(images), Path(out)
    files = image_files(folder)
    if not files:
        msg = f"no images in {folder}"
        raise ValueError(msg)
    truths = {p.stem: p for p in image_files(Path(masks), "masks")} if masks is not None else {}
    out.mkdir(parents=True, exist_ok=True)
    task.eval()
    factor = pixel_size / model_pixel_size
    per_image: dict[str, dict[str, float]] = {}
    totals = torch.zeros(3)  # true positives, predicted, actual
    for path in files:
        original = torch.from_numpy(read_image(path))
        image = resample(original, factor)
        image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
        height, width = image.shape
        pad = (0, (-width) % 32, 0, (-height) % 32)
        padded = F.pad(
            image[None, None], pad, mode="reflect" if min(height, width) > 32 else "replicate"
        )
        with torch.no_grad():
            prediction = task(padded.to(task.device)).argmax(1)[0, :height, :width].cpu()
        mask = resample(prediction, 1 / factor, mask=True)
        mask = F.interpolate(mask[None, None].float(), size=tuple(original.shape), mode="nearest")[
            0, 0
        ].long()
        np.save(out / f"{path.stem}_mask.npy", mask.numpy())
        Image.fromarray((mask.numpy() * 255).astype(np.uint8)).save(out / f"{path.stem}_mask.png")
        if path.stem in truths:
            truth = torch.from_numpy(read_image(truths[path.stem]) > 0)
            if truth.shape != mask.shape:
                msg = (
                    f"mask {truths[path.stem]} is {tuple(truth.shape)}, "
                    f"its image {path} {tuple(mask.shape)}"
                )
                raise ValueError(msg)
            hit = float((mask.bool() & truth).sum())
            counts = torch.tensor([hit, float(mask.sum()), float(truth.sum())])
            totals += counts
            per_image[path.name] = _scores(counts)
    if not per_image:
        return {}
    metrics = {"overall": _scores(totals), "images": per_image}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _scores(counts: torch.Tensor) -> dict[str, float]:
    hit, predicted, actual = (float(v) for v in counts)
    union = predicted + actual - hit
    return {
        "f1": 2 * hit / (predicted + actual) if predicted + actual else 1.0,
        "iou": hit / union if union else 1.0,
        "precision": hit / predicted if predicted else 1.0,
        "recall": hit / actual if actual else 1.0,
    }


#: Image files ``detect_folder`` reads without annotations.
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def detect_folder(
    task: Any,
    images: str | Path,
    out: str | Path,
    annotations: str | Path | None = None,
    batch_size: int = 4,
) -> dict[str, float]:
    """Detect objects in a folder of images; write COCO-format detections to ``out``.

    With ``annotations`` (a COCO file of those images) the images are the file's, in its
    ids, and the detections are scored (mAP@[.5:.95], mAP@.5, mAP@.75, mAR@100).

    Returns:
        The scores (empty without ``annotations``).
    """
    from torchmetrics.detection import MeanAveragePrecision

    from lightning_synth.data.coco import CocoDetection, coco_detections, read_rgb

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        msg = f"batch_size must be an integer >= 1, got {batch_size!r}"
        raise ValueError(msg)
    out = Path(out)
    load: Callable[[int], torch.Tensor]
    if annotations is not None:
        dataset = CocoDetection(annotations, images)
        items = [(dataset.images[i]["id"], i) for i in range(len(dataset))]

        def load(i: int) -> torch.Tensor:
            return dataset[i]["image"]

    else:
        files = image_files(Path(images), suffixes=PHOTO_SUFFIXES)
        if not files:
            msg = f"{images} holds no images ({', '.join(PHOTO_SUFFIXES)})"
            raise FileNotFoundError(msg)
        items = [(number, number - 1) for number in range(1, len(files) + 1)]

        def load(i: int) -> torch.Tensor:
            return read_rgb(files[i])

    task.eval()
    detections, predictions = [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        with torch.no_grad():
            found = task([load(i) for _, i in chunk])
        predictions += found
        detections += coco_detections([image_id for image_id, _ in chunk], found)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(detections))
    print(f"wrote {len(detections)} detections of {len(items)} images to {out}")
    if annotations is None:
        return {}
    metric = MeanAveragePrecision(backend="faster_coco_eval")
    targets = [{"boxes": dataset[i]["boxes"], "labels": dataset[i]["labels"]} for _, i in items]
    metric.update(predictions, targets)
    result = metric.compute()
    return {key: float(result[key]) for key in ("map", "map_50", "map_75", "mar_100")}


def folder_command(
    task_class: type[LightningModule], kind: Literal["segmentation", "detection"], prog: str
) -> Callable[[Sequence[str]], None]:
    """The ``predict-folder`` subcommand of a recipe whose task is ``task_class``.

    Args:
        task_class: The task its checkpoints hold.
        kind: ``"segmentation"`` (:func:`segment_folder`) or ``"detection"``
            (:func:`detect_folder`).
        prog: The recipe's script name, for the help text.
    """
    if kind not in ("segmentation", "detection"):
        msg = f"kind must be 'segmentation' or 'detection', got {kind!r}"
        raise ValueError(msg)
    segmentation = kind == "segmentation"

    def command(argv: Sequence[str]) -> None:
        parser = argparse.ArgumentParser(prog=f"{prog} predict-folder")
        parser.add_argument("--images", type=Path, required=True, help="folder of images")
        parser.add_argument("--checkpoint", type=Path, required=True)
        if segmentation:
            parser.add_argument(
                "--pixel-size", type=float, required=True, help="their pixel size [A]"
            )
            parser.add_argument("--out", type=Path, required=True, help="folder of masks")
            parser.add_argument("--masks", type=Path, help="ground-truth masks, same stems")
            parser.add_argument("--model-pixel-size", type=float, default=0.2)
        else:
            parser.add_argument("--out", type=Path, required=True, help="detections JSON")
            parser.add_argument("--annotations", type=Path, help="COCO ground truth: score")
            parser.add_argument("--batch-size", type=int, default=4)
        args = parser.parse_args(argv)
        if segmentation:  # checked before the model loads
            for name in ("pixel_size", "model_pixel_size"):
                try:
                    check_pixel_size(f"--{name.replace('_', '-')}", getattr(args, name))
                except ValueError as error:
                    parser.error(str(error))
        elif args.batch_size < 1:
            parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
        task = load_task(task_class, args.checkpoint)
        if segmentation:
            metrics = segment_folder(
                task, args.images, args.pixel_size, args.out, args.masks, args.model_pixel_size
            )
            print(f"wrote masks to {args.out}")
            scores = metrics.get("overall", {})
        else:
            scores = detect_folder(task, args.images, args.out, args.annotations, args.batch_size)
        if scores:
            print("overall: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))

    return command
