"""How much a detection AP owes to the test images drawn: COCO AP under image resampling.

COCO's AP matches detections to ground truth inside each image (greedily, by score, to the
unmatched box of highest IoU), then ranks all detections of a category by score. The
matching never looks across images, so it is done once (:func:`match_detections`), and the
AP of any multiset of the test images (a bootstrap resample: image ``i`` taken ``w[i]``
times) is a weighted cumulative sum over the ranked detections (:func:`average_precision`).
That makes a thousand resamples cost about as much as one evaluation.

With the same resamples for every model (:func:`bootstrap`), the difference of two models'
APs per resample is a paired bootstrap of their difference on this test set: it measures how
much the test images' draw could move it, not how much another training seed would.

Example:
    >>> import torch
    >>> truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}]
    >>> found = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
    ...           "labels": torch.tensor([1])}]
    >>> round(float(average_precision(match_detections(found, truth)).mean()), 6)
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

#: COCO's IoU thresholds for AP@[.5:.95] and its 101 recall points.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Matches:
    """COCO's per-image matching of detections to ground truth, all that AP needs.

    Attributes:
        image: Image index of each detection, ``(D,)``.
        label: Category of each detection, ``(D,)``.
        score: Score of each detection, ``(D,)``.
        matched: Whether each detection is a true positive at each of ``IOU_THRESHOLDS``,
            ``(D, 10)``.
        ignored: Whether each detection fell on a crowd region instead (then it neither
            counts nor costs, as in COCO), ``(D, 10)``.
        ground_truth: Ground-truth boxes per image and category (crowd regions left out),
            ``(images, categories)``.
        categories: The category of each column of ``ground_truth``.
    """

    image: np.ndarray
    label: np.ndarray
    score: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    ground_truth: np.ndarray
    categories: tuple[int, ...]

    @property
    def images(self) -> int:
        """Number of images."""
        return int(self.ground_truth.shape[0])


def _match_image(ious: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching in one image and category: ``(D, 10)`` hits and ignores.

    ``ious`` is ``(D, G)`` against the boxes to find, ``crowd`` ``(D, C)`` against the crowd
    regions (COCO's overlap for those: the intersection over the detection's own area), with
    detections sorted by descending score. A detection takes the best free box it overlaps
    enough; failing one, it is ignored if it overlaps a crowd region enough (any number of
    detections may fall on one).
    """
    detections, truths = ious.shape
    matched = np.zeros((detections, len(IOU_THRESHOLDS)), dtype=bool)
    ignored = np.zeros_like(matched)
    best_crowd = crowd.max(axis=1) if crowd.shape[1] else np.zeros(detections)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(truths, dtype=bool)
        floor = min(threshold, 1 - 1e-10)
        for d in range(detections):
            best, match = floor, -1
            for g in range(truths):
                # COCO: skip matched boxes; ties go to the later box.
                if taken[g] or ious[d, g] < best:
                    continue
                best, match = ious[d, g], g
            if match >= 0:
                taken[match] = True
                matched[d, t] = True
            elif best_crowd[d] >= floor:
                ignored[d, t] = True
    return matched, ignored


def _crowd_overlap(boxes: torch.Tensor, regions: torch.Tensor) -> np.ndarray:
    """``(D, C)`` intersection of each box with each region over the box's own area."""
    low = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    high = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    intersection = (high - low).clamp(min=0).prod(dim=2)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return (intersection / area[:, None]).numpy()


def match_detections(
    predictions: Sequence[Mapping[str, torch.Tensor]],
    targets: Sequence[Mapping[str, torch.Tensor]],
    max_detections: int = 100,
) -> Matches:
    """Match each image's detections to its ground truth as COCO does (boxes ``xyxy``).

    Args:
        predictions: Per image, ``boxes`` ``(N, 4)``, ``scores`` ``(N,)``, ``labels`` ``(N,)``.
        targets: Per image, ``boxes`` ``(M, 4)`` and ``labels`` ``(M,)``, and optionally
            ``iscrowd`` ``(M,)``: crowd regions, as
            :func:`~lightning_synth.tasks.detection.evaluation_target` gives them.
        max_detections: COCO's ``maxDets``: the highest-scoring this many per image and
            category are kept.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    if len(predictions) != len(targets):
        msg = (
            "predictions and targets must have one entry per image, "
            f"got {len(predictions)} and {len(targets)}"
        )
        raise ValueError(msg)
    categories = sorted(
        {int(c) for t in targets for c in t["labels"]}
        | {int(c) for p in predictions for c in p["labels"]}
    )
    column = {c: k for k, c in enumerate(categories)}
    ground_truth = np.zeros((len(targets), len(categories)), dtype=np.int64)
    image, label, score, matched, ignored = [], [], [], [], []
    for i, (found, truth) in enumerate(zip(predictions, targets, strict=True)):
        crowd = truth.get("iscrowd")
        crowd = torch.zeros(len(truth["labels"]), dtype=torch.bool) if crowd is None else crowd
        crowd = crowd.bool()
        for category in categories:
            of_category = truth["labels"] == category
            truth_boxes = truth["boxes"][of_category & ~crowd].double()
            regions = truth["boxes"][of_category & crowd].double()
            ground_truth[i, column[category]] = len(truth_boxes)
            keep = found["labels"] == category
            scores = found["scores"][keep].double()
            order = np.argsort(-scores.numpy(), kind="mergesort")[:max_detections]
            if len(order) == 0:
                continue
            boxes = found["boxes"][keep].double()[torch.from_numpy(order)]
            hits, misses = _match_image(
                box_iou(boxes, truth_boxes).numpy(), _crowd_overlap(boxes, regions)
            )
            image.append(np.full(len(order), i))
            label.append(np.full(len(order), category))
            score.append(scores.numpy()[order])
            matched.append(hits)
            ignored.append(misses)
    if image:
        return Matches(
            np.concatenate(image),
            np.concatenate(label),
            np.concatenate(score),
            np.concatenate(matched),
            np.concatenate(ignored),
            ground_truth,
            tuple(categories),
        )
    empty = np.zeros(0)
    none = np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)
    return Matches(
        empty.astype(np.int64),
        empty.astype(np.int64),
        empty,
        none,
        none.copy(),
        ground_truth,
        tuple(categories),
    )


def average_precision(matches: Matches, weights: np.ndarray | None = None) -> np.ndarray:
    """COCO AP at each of ``IOU_THRESHOLDS``, averaged over categories with ground truth.

    ``.mean()`` of the result is mAP@[.5:.95], ``[0]`` mAP@.5, ``[5]`` mAP@.75.

    Args:
        matches: From :func:`match_detections`.
        weights: How many times each image counts (a bootstrap resample); None: once each.

    Returns:
        ``(10,)`` APs; NaN where no image with weight has any ground truth.
    """
    if weights is None:
        weights = np.ones(matches.images)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (matches.images,):
        msg = f"weights must have one entry per image ({matches.images}), got shape {weights.shape}"
        raise ValueError(msg)
    per_category = []
    for k, category in enumerate(matches.categories):
        positives = float(weights @ matches.ground_truth[:, k])
        if positives == 0:
            continue
        pick = (matches.label == category) & (weights[matches.image] > 0)
        # COCO ranks a category's detections by score with a stable sort, in image order.
        order = np.lexsort((matches.image[pick], -matches.score[pick]))
        # A detection on a crowd region weighs nothing at that threshold: COCO drops it.
        weight = weights[matches.image[pick]][order][:, None] * ~matches.ignored[pick][order]
        hits = matches.matched[pick][order]
        true_positives = np.cumsum(weight * hits, axis=0)
        false_positives = np.cumsum(weight * ~hits, axis=0)
        recall = true_positives / positives
        precision = true_positives / (true_positives + false_positives + np.spacing(1))
        # The precision envelope: the best precision at this recall or any higher one.
        precision = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
        ap = np.zeros(len(IOU_THRESHOLDS))
        for t in range(len(IOU_THRESHOLDS)):
            index = np.searchsorted(recall[:, t], RECALL_POINTS, side="left")
            inside = index < len(recall)
            ap[t] = precision[index[inside], t].sum() / len(RECALL_POINTS)
        per_category.append(ap)
    if not per_category:
        return np.full(len(IOU_THRESHOLDS), np.nan)
    return np.mean(per_category, axis=0)


def resample_weights(images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """``(resamples, images)`` bootstrap weights: how often each image is drawn, per resample."""
    if images < 1 or resamples < 1:
        msg = f"images and resamples must be >= 1, got {images} and {resamples}"
        raise ValueError(msg)
    draws = np.random.default_rng(seed).integers(0, images, size=(resamples, images))
    return np.stack([np.bincount(row, minlength=images) for row in draws]).astype(np.float64)


def bootstrap(
    matches: Mapping[str, Matches], resamples: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """AP per resample of the test images, the same resamples for every model.

    Args:
        matches: Model name -> its :func:`match_detections` on one test set (the same
            images, in the same order, for every model).
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        Model name -> ``(resamples, 10)`` APs per IoU threshold.
    """
    sizes = {m.images for m in matches.values()}
    if len(sizes) != 1:
        msg = f"every model must be matched on the same test images, got sizes {sorted(sizes)}"
        raise ValueError(msg)
    weights = resample_weights(sizes.pop(), resamples, seed)
    return {
        name: np.stack([average_precision(m, w) for w in weights]) for name, m in matches.items()
    }


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``values`` (NaNs left out)."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)
