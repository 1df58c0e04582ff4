"""DetectionTask: it fits a tiny set, its schedule and drawing come from torch and torchvision."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_synth.generators.toy import render_disks
from lightning_synth.tasks.detection import (
    DetectionTask,
    draw_detections,
    evaluation_target,
    warmup_cosine,
)


def _toy_boxes(count: int, size: int = 64) -> list[dict[str, torch.Tensor]]:
    """Toy disks as detection samples: one box around each connected blob of the mask."""
    from scipy import ndimage

    samples = []
    for index in range(count):
        image, mask = render_disks(size, torch.Generator().manual_seed(index), max_disks=2)
        labels, found = ndimage.label(mask.numpy())
        boxes = [
            [float(s[1].start), float(s[0].start), float(s[1].stop), float(s[0].stop)]
            for s in ndimage.find_objects(labels)
        ]
        samples.append(
            {
                "image": image.clamp(0, 1).expand(3, -1, -1).contiguous(),
                "boxes": torch.tensor(boxes).reshape(-1, 4),
                "labels": torch.ones(found, dtype=torch.int64),
            }
        )
    return samples


def test_a_training_step_has_finite_loss_terms_and_moves_every_head() -> None:
    # Learning itself is measured by the recipe and its benchmark (from scratch, a Faster
    # R-CNN needs hundreds of steps on a CPU); this catches a broken target or loss path.
    torch.manual_seed(0)
    task = DetectionTask(
        model="fasterrcnn_mobilenet_v3_large_320_fpn",
        min_size=64,
        max_size=64,
        anchor_sizes=[16, 32],
        box_batch_size_per_image=32,
        representation_size=128,
        channels_last=True,  # MobileNet's depthwise convolutions are slow on CPUs otherwise
    )
    samples = _toy_boxes(2)
    batch = {key: [s[key] for s in samples] for key in ("image", "boxes", "labels")}
    before = {name: p.detach().clone() for name, p in task.named_parameters()}
    optimizer = torch.optim.SGD(task.parameters(), lr=0.01)
    task.train()
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss) and float(loss) > 0
    loss.backward()
    optimizer.step()
    moved = {
        name.split(".")[1]
        for name, p in task.named_parameters()
        if not torch.equal(p, before[name])
    }
    assert {"backbone", "rpn", "roi_heads"} <= moved


def test_warmup_then_cosine_follows_its_formula() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    warmup, total = 5, 25
    scheduler = warmup_cosine(optimizer, warmup, total)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()

    def expected(step: int) -> float:
        if step < warmup:
            return 0.1 * (step + 1) / warmup
        progress = (step - warmup) / (total - warmup)
        return 0.1 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    assert seen == pytest.approx([expected(step) for step in range(total)], rel=1e-6)


def test_boxes_are_drawn_in_their_colours_even_below_a_pixel() -> None:
    image = torch.zeros(3, 20, 30)
    truth = torch.tensor([[2.0, 2.0, 12.0, 10.0]])
    found = torch.tensor([[15.0, 5.0, 15.2, 5.3]])  # narrower than a pixel
    picture = draw_detections(image, truth, found)
    assert picture.shape == (20, 30, 3) and picture.dtype.name == "uint8"
    assert tuple(picture[2, 5]) == (0, 230, 64)  # the truth's top edge
    assert tuple(picture[5, 15]) == (255, 40, 40)  # the one-pixel detection


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be 'sgd' or 'adamw'"),
        ({"lr": 0}, "lr must be > 0"),
        ({"warmup_steps": -1}, "warmup_steps >= 0"),
        ({"score_threshold": 1.5}, r"score_threshold must be in \[0, 1\)"),
        ({"model": "yolo"}, "model must be one of"),
        ({"representation_size": 0}, "representation_size must be an integer >= 1"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectionTask(model=kwargs.pop("model", "fasterrcnn_mobilenet_v3_large_320_fpn"), **kwargs)


def test_detections_on_crowd_regions_neither_count_nor_cost() -> None:
    from torchmetrics.detection import MeanAveragePrecision

    found = {
        "boxes": torch.tensor([[0.0, 0.0, 50.0, 20.0], [100.0, 100.0, 140.0, 120.0]]),
        "scores": torch.tensor([0.6, 0.9]),  # the higher score is on the crowd region
        "labels": torch.tensor([1, 1]),
    }
    boxes, labels = torch.tensor([[0.0, 0.0, 50.0, 20.0]]), torch.tensor([1])
    scores = {}
    for crowd in ([], [[100.0, 100.0, 140.0, 120.0]]):
        metric = MeanAveragePrecision(box_format="xyxy", backend="faster_coco_eval")
        meta = {"crowd_boxes": crowd, "crowd_labels": [1] * len(crowd)}
        metric.update([found], [evaluation_target(boxes, labels, meta)])
        scores[len(crowd)] = float(metric.compute()["map_50"])
    assert scores[0] == pytest.approx(0.5) and scores[1] == pytest.approx(1.0)


def test_crowd_regions_need_their_labels() -> None:
    with pytest.raises(ValueError, match="2 crowd_boxes but 1 crowd_labels"):
        evaluation_target(
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            {"crowd_boxes": [[0, 0, 1, 1], [2, 2, 3, 3]], "crowd_labels": [1]},
        )
