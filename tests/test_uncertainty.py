"""COCO AP from per-image matches agrees with torchmetrics, and resamples are paired."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

from lightning_synth.experiments.uncertainty import (
    average_precision,
    bootstrap,
    interval,
    match_detections,
    resample_weights,
)


def _boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * 80
    size = torch.rand(count, 2, generator=generator) * 30 + 4
    return torch.cat([corner, corner + size], dim=1)


def _detection_set(images: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Noisy detections of random boxes in two categories, with empty images of both kinds."""
    generator = torch.Generator().manual_seed(seed)
    predictions, targets = [], []
    for i in range(images):
        truths = 0 if i % 7 == 3 else int(torch.randint(1, 6, (1,), generator=generator))
        boxes = _boxes(generator, truths)
        labels = torch.randint(1, 3, (truths,), generator=generator)
        # Detections: jittered copies of some truths, plus false alarms; none in every 5th image.
        found_boxes = boxes + torch.randn(boxes.shape, generator=generator) * 3
        # Detectors' boxes are never inverted (COCO would ignore one with a negative area).
        found_boxes = torch.cat(
            [torch.minimum(found_boxes[:, :2], found_boxes[:, 2:]), found_boxes[:, 2:]], dim=1
        )
        found_boxes[:, 2:] = torch.maximum(found_boxes[:, 2:], found_boxes[:, :2] + 1)
        keep = torch.rand(truths, generator=generator) < 0.8
        alarms = 0 if i % 5 == 2 else int(torch.randint(0, 4, (1,), generator=generator))
        found_boxes = torch.cat([found_boxes[keep], _boxes(generator, alarms)])
        found_labels = torch.cat(
            [labels[keep], torch.randint(1, 3, (alarms,), generator=generator)]
        )
        if i % 5 == 2:
            found_boxes, found_labels = found_boxes[:0], found_labels[:0]
        scores = torch.rand(len(found_boxes), generator=generator)
        predictions.append({"boxes": found_boxes, "scores": scores, "labels": found_labels})
        targets.append({"boxes": boxes, "labels": labels})
    return predictions, targets


def _torchmetrics(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval")
    metric.update(predictions, targets)
    result = metric.compute()
    return {key: float(result[key]) for key in ("map", "map_50", "map_75")}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_equals_torchmetrics(seed: int) -> None:
    predictions, targets = _detection_set(24, seed)
    expected = _torchmetrics(predictions, targets)
    ap = average_precision(match_detections(predictions, targets))
    assert ap.mean() == pytest.approx(expected["map"], abs=1e-6)
    assert ap[0] == pytest.approx(expected["map_50"], abs=1e-6)
    assert ap[5] == pytest.approx(expected["map_75"], abs=1e-6)


def test_weights_count_an_image_as_often_as_it_is_repeated() -> None:
    predictions, targets = _detection_set(12, 3)
    matches = match_detections(predictions, targets)
    weights = np.array([2, 0, 1, 3, 0, 1, 1, 0, 2, 1, 0, 1], dtype=float)
    repeated = [i for i, w in enumerate(weights) for _ in range(int(w))]
    expected = _torchmetrics([predictions[i] for i in repeated], [targets[i] for i in repeated])
    ap = average_precision(matches, weights)
    # Copies of an image tie in score; COCO ranks tied copies apart, we rank them together,
    # which moves AP only within a tie (rarely at all).
    assert ap.mean() == pytest.approx(expected["map"], abs=2e-3)
    assert ap[0] == pytest.approx(expected["map_50"], abs=2e-3)


def test_bootstrap_is_paired_and_seeded() -> None:
    predictions, targets = _detection_set(20, 4)
    worse = [dict(p, scores=torch.rand(len(p["scores"]))) for p in predictions]
    matches = {
        "model": match_detections(predictions, targets),
        "shuffled": match_detections(worse, targets),
    }
    first = bootstrap(matches, resamples=50, seed=1)
    again = bootstrap(matches, resamples=50, seed=1)
    assert all(np.array_equal(first[k], again[k], equal_nan=True) for k in first)
    assert first["model"].shape == (50, 10)
    # The same model under the same resamples: every paired difference is exactly zero.
    twice = bootstrap({"a": matches["model"], "b": matches["model"]}, resamples=20)
    assert np.array_equal(twice["a"], twice["b"])
    low, high = interval(first["model"].mean(axis=1))
    full = average_precision(matches["model"]).mean()
    assert low <= full <= high and low < high


def test_bad_input_is_refused_with_the_sizes() -> None:
    predictions, targets = _detection_set(4, 0)
    with pytest.raises(ValueError, match="one entry per image, got 4 and 3"):
        match_detections(predictions, targets[:3])
    matches = match_detections(predictions, targets)
    with pytest.raises(ValueError, match=r"one entry per image \(4\)"):
        average_precision(matches, np.ones(5))
    other = match_detections(predictions[:3], targets[:3])
    with pytest.raises(ValueError, match="same test images"):
        bootstrap({"a": matches, "b": other})
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        resample_weights(4, 0)


def test_no_ground_truth_gives_nan_and_no_detections_zero() -> None:
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    found = {"boxes": torch.tensor([[0.0, 0, 5, 5]]), "scores": torch.tensor([0.5])}
    found["labels"] = torch.tensor([1])
    assert np.isnan(average_precision(match_detections([found], [empty]))).all()
    truth = {"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([1])}
    nothing = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": empty["labels"]}
    assert (average_precision(match_detections([nothing], [truth])) == 0).all()


def test_a_detection_on_a_crowd_region_neither_counts_nor_costs() -> None:
    box = torch.tensor
    targets = [
        {
            "boxes": box([[0.0, 0, 40, 10], [60, 60, 90, 80]]),
            "labels": box([1, 1]),
            "iscrowd": box([0, 1]),
        },
        {"boxes": box([[10.0, 10, 50, 20]]), "labels": box([1]), "iscrowd": box([0])},
    ]
    predictions = [
        # On the crowd region (inside it), on the first box, and a false alarm.
        {
            "boxes": box([[62.0, 62, 80, 75], [1, 0, 40, 10], [0, 50, 20, 60]]),
            "scores": box([0.9, 0.8, 0.7]),
            "labels": box([1, 1, 1]),
        },
        {"boxes": box([[10.0, 10, 50, 21]]), "scores": box([0.85]), "labels": box([1])},
    ]
    matches = match_detections(predictions, targets)
    assert matches.ignored[:, 0].tolist() == [True, False, False, False]
    assert matches.ground_truth.tolist() == [[1], [1]]
    ap = average_precision(matches)
    assert (
        ap[0] == pytest.approx(1.0) == pytest.approx(_torchmetrics(predictions, targets)["map_50"])
    )
    # As an ordinary box the region would make the best-scored detection a false alarm.
    plain = [{k: v for k, v in t.items() if k != "iscrowd"} for t in targets]
    plain[0] = {"boxes": plain[0]["boxes"][:1], "labels": plain[0]["labels"][:1]}
    assert average_precision(match_detections(predictions, plain))[0] < 0.7


@pytest.mark.parametrize("seed", [0, 1])
def test_crowd_regions_are_scored_about_as_torchmetrics_scores_them(seed: int) -> None:
    predictions, targets = _detection_set(24, seed)
    generator = torch.Generator().manual_seed(100 + seed)
    for i, target in enumerate(targets):
        # Some truths become crowd regions; some images get a crowd region that detections hit.
        crowd = torch.rand(len(target["labels"]), generator=generator) < 0.3
        if i % 4 == 1 and len(predictions[i]["boxes"]):
            region = predictions[i]["boxes"][:1] + torch.tensor([[-2.0, -2.0, 2.0, 2.0]])
            target["boxes"] = torch.cat([target["boxes"], region])
            target["labels"] = torch.cat([target["labels"], predictions[i]["labels"][:1]])
            crowd = torch.cat([crowd, torch.tensor([True])])
        target["iscrowd"] = crowd.long()
    expected = _torchmetrics(predictions, targets)
    matches = match_detections(predictions, targets)
    assert matches.ignored.any()
    ap = average_precision(matches)
    # Near crowd regions torchmetrics' conversion to COCO scores a little apart from
    # pycocotools run on a COCO file of the same boxes (on one subset where the two
    # disagreed, this module's AP equalled pycocotools'): by less than 1e-3 here.
    assert ap.mean() == pytest.approx(expected["map"], abs=1e-3)
    assert ap[0] == pytest.approx(expected["map_50"], abs=1e-3)
    assert ap[5] == pytest.approx(expected["map_75"], abs=1e-3)
