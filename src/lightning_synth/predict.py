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

from lightning_synth.data.images import (
    NORMALIZATIONS,
    Normalization,
    check_pixel_size,
    image_files,
    normalize_intensity,
    read_image,
    resample,
)

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


def segment(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray | torch.Tensor,
    pixel_size: float,
    *,
    model_pixel_size: float = 0.2,
    normalization: Normalization = "percentile",
    tile: int = 256,
    overlap: int = 64,
    batch_size: int = 4,
    normalize_windows: bool = False,
) -> torch.Tensor:
    """The particle mask of one micrograph of any size, taken at ``pixel_size`` [A].

    The image is resampled to the model's pixel size, normalised as in training
    (:func:`~lightning_synth.data.images.normalize_intensity`; with ``normalize_windows``
    each window on its own instead, as each training crop was), and segmented in ``tile`` x
    ``tile`` windows that overlap by ``overlap`` pixels: each window keeps only its inner
    part (``overlap / 2`` from its edges inside the image), so every pixel is predicted
    with at least that much context on every side, and memory stays that of one batch of
    windows whatever the image's size. The windows start at multiples of ``tile -
    overlap`` (a multiple of 32, so the model's pooling grid is the same as in one pass
    over the whole image); the image is reflect-padded at the bottom and right to fit
    them. An image of at most one window is one pass. The particle probability is resampled
    back to the image's own pixels and thresholded at 0.5.

    Args:
        model: The segmentation task (or any module mapping (N, 1, H, W) images to (N, 2,
            H, W) logits).
        image: The micrograph, (H, W).
        pixel_size: Its pixel size [A].
        model_pixel_size: The pixel size the model was trained at [A].
        normalization: How the model's training images were normalised.
        tile: Window side in model pixels (a multiple of 32).
        overlap: Overlap of neighbouring windows (a multiple of 32, below ``tile``).
        batch_size: Windows per forward pass.
        normalize_windows: Normalise each window on its own instead of the whole image at
            once. On abTEM's micrographs (up to 120 A across) it raised F1 by 0.03; on 102 A
            fields of the project's simulator it lowered F1 by 0.01-0.13 (docs/hrtem.md), so
            it is not the default.

    Returns:
        The mask, (H, W) int64 (1 = particle).

    Raises:
        ValueError: On a pixel size that is not a finite number > 0, an image that is not 2D
            or not finite, or windows that are not multiples of 32.
    """
    pixel_size = check_pixel_size("pixel_size", pixel_size)
    model_pixel_size = check_pixel_size("model_pixel_size", model_pixel_size)
    for name, value, low in (("tile", tile, 32), ("overlap", overlap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value % 32:
            msg = f"{name} must be a multiple of 32 >= {low}, got {value!r}"
            raise ValueError(msg)
    if overlap >= tile:
        msg = f"overlap must be smaller than tile, got overlap={overlap}, tile={tile}"
        raise ValueError(msg)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        msg = f"batch_size must be an integer >= 1, got {batch_size!r}"
        raise ValueError(msg)
    original = torch.as_tensor(np.asarray(image), dtype=torch.float32)
    if original.ndim != 2 or min(original.shape) < 1:
        msg = f"image must be 2D (H, W), got shape {tuple(original.shape)}"
        raise ValueError(msg)
    if not torch.isfinite(original).all():
        msg = "image holds NaN or infinite values"
        raise ValueError(msg)
    resampled = resample(original, pixel_size / model_pixel_size)
    if normalize_windows and max(resampled.shape) > tile:

        def normalized_model(windows: torch.Tensor) -> torch.Tensor:
            return model(normalize_intensity(windows, normalization))

        probability = _tiled_probability(
            normalized_model, resampled, tile, overlap, batch_size, _device_of(model)
        )
    else:  # one window holds it all, or on request: the whole image at once
        normalised = normalize_intensity(resampled[None, None], normalization)[0, 0]
        probability = _tiled_probability(
            model, normalised, tile, overlap, batch_size, _device_of(model)
        )
    if probability.shape != original.shape:
        probability = F.interpolate(
            probability[None, None], size=tuple(original.shape), mode="bilinear"
        )[0, 0]
    return (probability > 0.5).long()


def _windows(length: int, tile: int, stride: int) -> tuple[int, list[int]]:
    """The padded length and the window starts along one axis (see :func:`segment`)."""
    if length <= tile:
        return -(-length // 32) * 32, [0]
    count = -(-(length - tile) // stride) + 1
    return tile + (count - 1) * stride, [k * stride for k in range(count)]


@torch.no_grad()
def _tiled_probability(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: int,
    overlap: int,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Particle probability of an (H, W) image, window by window, the model on ``device``."""
    height, width = image.shape
    stride, margin = tile - overlap, overlap // 2
    padded_height, rows = _windows(height, tile, stride)
    padded_width, columns = _windows(width, tile, stride)
    pad = (0, padded_width - width, 0, padded_height - height)
    # Reflection needs the padding to be shorter than the side; replicate otherwise.
    mode = "reflect" if pad[1] < width and pad[3] < height else "replicate"
    padded = F.pad(image[None, None], pad, mode=mode)[0, 0] if any(pad) else image
    tile_height, tile_width = min(tile, padded_height), min(tile, padded_width)
    out = torch.empty((padded_height, padded_width))
    windows = [(top, left) for top in rows for left in columns]
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        batch = torch.stack(
            [padded[top : top + tile_height, left : left + tile_width] for top, left in chunk]
        )[:, None]
        probability = model(batch.to(device)).softmax(1)[:, 1].float().cpu()
        for (top, left), window in zip(chunk, probability, strict=True):
            # The inner part of the window; at the image's edges, out to the edge.
            y0 = 0 if top == 0 else margin
            x0 = 0 if left == 0 else margin
            y1 = tile_height if top + tile_height >= padded_height else tile_height - margin
            x1 = tile_width if left + tile_width >= padded_width else tile_width - margin
            out[top + y0 : top + y1, left + x0 : left + x1] = window[y0:y1, x0:x1]
    return out[:height, :width]


def _device_of(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


def segment_folder(
    task: Any,
    images: str | Path,
    pixel_size: float,
    out: str | Path,
    masks: str | Path | None = None,
    model_pixel_size: float = 0.2,
    normalization: Normalization = "percentile",
    tile: int = 256,
) -> dict[str, Any]:
    """Segment every image of a folder, of any size, taken at ``pixel_size`` [A].

    Each image goes through :func:`segment` (resampled to the model's pixel size,
    normalised, segmented window by window, and the mask brought back to the image's own
    pixels). Writes ``<stem>_mask.png`` (0/255) and ``<stem>_mask.npy`` per image; with
    ``masks`` (same stems) also per-image and overall F1/IoU in ``metrics.json``.

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
    per_image: dict[str, dict[str, float]] = {}
    totals = torch.zeros(3)  # true positives, predicted, actual
    for path in files:
        mask = segment(
            task,
            read_image(path),
            pixel_size,
            model_pixel_size=model_pixel_size,
            normalization=normalization,
            tile=tile,
        )
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
            per_image[path.name] = mask_scores(counts)
    if not per_image:
        return {}
    metrics = {"overall": mask_scores(totals), "images": per_image}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def mask_scores(counts: Sequence[float] | torch.Tensor | np.ndarray) -> dict[str, float]:
    """F1, IoU, precision and recall from pixel counts (true positives, predicted, actual).

    Example:
        >>> mask_scores([3, 4, 6])["f1"]
        0.6
    """
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
    ids, and the detections are scored (mAP@[.5:.95], mAP@.5, mAP@.75, mAR@100; detections
    on the file's ``iscrowd`` regions neither count nor cost).

    Returns:
        The scores (empty without ``annotations``).
    """
    from torchmetrics.detection import MeanAveragePrecision

    from lightning_synth.data.coco import CocoDetection, coco_detections, read_rgb
    from lightning_synth.tasks.detection import evaluation_target

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
    samples = (dataset[i] for _, i in items)
    targets = [evaluation_target(s["boxes"], s["labels"], s["meta"]) for s in samples]
    metric.update(predictions, targets)
    result = metric.compute()
    return {key: float(result[key]) for key in ("map", "map_50", "map_75", "mar_100")}


def segmentation_settings(checkpoint: str | Path) -> dict[str, Any]:
    """The pixel size and normalisation a segmentation checkpoint's training data had.

    Read from the DataModule's hyperparameters that Lightning stores in the checkpoint
    (``simulation.detector_pixel_size`` and ``normalization`` of
    :class:`~lightning_synth.data.HRTEMDataModule`); a checkpoint without them gets the
    study's 0.2 A and min-max normalisation, which every checkpoint before the
    ``normalization`` argument used.
    """
    content = torch.load(Path(checkpoint), map_location="cpu", weights_only=False)
    data = content.get("datamodule_hyper_parameters", {}) if isinstance(content, dict) else {}
    simulation = data.get("simulation")
    pixel_size = getattr(simulation, "detector_pixel_size", None)
    return {
        "model_pixel_size": float(pixel_size) if pixel_size is not None else 0.2,
        "normalization": data.get("normalization", "min_max"),
    }


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
            parser.add_argument(
                "--model-pixel-size",
                type=float,
                help="the model's pixel size [A] (default: the checkpoint's training data's)",
            )
            parser.add_argument(
                "--normalization",
                choices=NORMALIZATIONS,
                help="the model's normalisation (default: the checkpoint's training data's)",
            )
            parser.add_argument("--tile", type=int, default=256, help="window side [pixels]")
        else:
            parser.add_argument("--out", type=Path, required=True, help="detections JSON")
            parser.add_argument("--annotations", type=Path, help="COCO ground truth: score")
            parser.add_argument("--batch-size", type=int, default=4)
        args = parser.parse_args(argv)
        if segmentation:  # checked before the model loads
            for name in ("pixel_size", "model_pixel_size"):
                if name == "model_pixel_size" and args.model_pixel_size is None:
                    continue
                try:
                    check_pixel_size(f"--{name.replace('_', '-')}", getattr(args, name))
                except ValueError as error:
                    parser.error(str(error))
            if args.tile < 32 or args.tile % 32:
                parser.error(f"--tile must be a multiple of 32 >= 32, got {args.tile}")
        elif args.batch_size < 1:
            parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
        task = load_task(task_class, args.checkpoint)
        if segmentation:
            settings = segmentation_settings(args.checkpoint)
            metrics = segment_folder(
                task,
                args.images,
                args.pixel_size,
                args.out,
                args.masks,
                model_pixel_size=args.model_pixel_size or settings["model_pixel_size"],
                normalization=args.normalization or settings["normalization"],
                tile=args.tile,
            )
            print(f"wrote masks to {args.out}")
            scores = metrics.get("overall", {})
        else:
            scores = detect_folder(task, args.images, args.out, args.annotations, args.batch_size)
        if scores:
            print("overall: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))

    return command
