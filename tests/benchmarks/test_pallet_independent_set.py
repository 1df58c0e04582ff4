"""The independently rendered pallet set: its conditions, models, annotations and scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import load_script

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "pallet_independent_set.py"
pytest.importorskip("mitsuba", reason="Mitsuba is the test extra 'oracle' (make test installs it)")


@pytest.fixture(scope="module")
def independent():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT)


def _tiny(independent, index: int) -> dict:  # type: ignore[no-untyped-def]
    case = independent.conditions(index)
    case["width"], case["height"] = 96, 72
    return case


def test_conditions_are_a_function_of_the_set_seed_and_index(independent) -> None:  # type: ignore[no-untyped-def]
    cases = [independent.conditions(i) for i in range(independent.SIZE)]
    assert cases == [independent.conditions(i) for i in range(independent.SIZE)]
    assert {case["view"] for case in cases} == set(independent.VIEWS)
    kinds = {
        pallet["kind"] for case in cases for stack in case["stacks"] for pallet in stack["pallets"]
    }
    assert kinds == set(independent.PALLET_KINDS)
    for case in cases:
        assert (case["rack"] is None) == (case["view"] != "rack")
        assert 50.0 <= case["camera"]["fov"] <= 85.0
        for stack in case["stacks"]:  # a stack is of one kind
            assert len({p["kind"] for p in stack["pallets"]}) == 1


@pytest.mark.parametrize(
    ("kind", "size"),
    [
        ("eur", (1.2, 0.8, 0.144)),
        ("industrial", (1.2, 1.0, 0.144)),
        ("half", (0.8, 0.6, 0.144)),
        ("plastic", (1.2, 0.8, 0.15)),
        ("stringer", (1.219, 1.016, 0.121)),
    ],
)
def test_pallet_models_have_their_standard_sizes(independent, kind: str, size: tuple) -> None:  # type: ignore[no-untyped-def]
    assert independent.pallet_size(kind) == pytest.approx(size, abs=1e-9)


def test_an_unknown_pallet_kind_is_named(independent) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="kind must be one of .* got 'chep'"):
        independent.pallet_parts("chep")


def test_projection_agrees_with_mitsubas_camera(independent) -> None:  # type: ignore[no-untyped-def]
    case = _tiny(independent, 0)
    case["camera"].update(yaw=10.0, pitch=-5.0, roll=20.0)
    origin, target, _ = independent.camera_pose(case)
    point = origin + 3.0 * (target - origin) + np.array([0.1, 0.3, -0.2])
    ball = {"ball": {"type": "sphere", "center": point.tolist(), "radius": 0.02}}
    ids, _ = independent.instance_map(ball, independent.sensor(case, 1))
    rows, columns = np.nonzero(ids)
    xy, depth = independent.project(case, point[None])
    assert depth[0] > 0
    # Pixel k covers [k, k + 1): the ball's pixels centre half a pixel below its projection.
    assert columns.mean() + 0.5 == pytest.approx(xy[0, 0], abs=0.5)
    assert rows.mean() + 0.5 == pytest.approx(xy[0, 1], abs=0.5)


def test_annotations_agree_with_the_renderers_instance_output(independent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [independent.render_one(i, tmp_path, samples=2, size=(96, 72)) for i in (0, 1)]
    from PIL import Image

    min_side = independent.MIN_BOX_SIDE_PER_WIDTH * 96
    for record in records:
        index = record["index"]
        instances = np.asarray(Image.open(tmp_path / f"{index:03d}_instances.png"))
        assert Image.open(tmp_path / f"{index:03d}.jpg").size == (96, 72)
        assert record["pallets"], "every view aims at a pallet"
        for pallet in record["pallets"]:
            rows, columns = np.nonzero(instances == pallet["pallet"] + 1)
            assert pallet["visible_pixels"] == len(rows) > 0
            tight = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
            assert pallet["box"] == [int(v) for v in tight]
            x0, y0, x1, y1 = pallet["box"]
            small = min(x1 - x0, y1 - y0) < min_side
            hidden = pallet["visible_fraction"] < independent.MIN_VISIBLE_FRACTION
            assert pallet["crowd"] == (small or hidden)
            assert 0 < pallet["visible_fraction"] <= 1
    # The lone pass, cropped to where a pallet can project, sees all of its footprint.
    case = _tiny(independent, records[0]["index"])
    builder = independent.build_scene(case)
    for number, name in enumerate(builder.pallets[:4]):
        shape = {name: builder.shapes[name]}
        cropped, _ = independent.instance_map(
            shape, independent._lone_camera(case, builder, number, 5)
        )
        whole, _ = independent.instance_map(shape, independent.sensor(case, 1, 5))
        assert (cropped > 0).sum() == (whole > 0).sum()


def test_the_committed_set_follows_its_crowd_rule(independent) -> None:  # type: ignore[no-untyped-def]
    from lightning_synth.data.coco import CocoDetection

    folder = independent.SET_FOLDER
    if not (folder / "coco.json").exists():
        pytest.skip("the set is not rendered (python benchmarks/pallet_independent_set.py render)")
    content = json.loads((folder / "coco.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == independent.SET_VERSION and manifest["seed"] == independent.SEED
    assert len(content["images"]) == len(manifest["images"]) == independent.SIZE
    for image, record in zip(content["images"], manifest["images"], strict=True):
        assert (
            image["file_name"] == f"{record['index']:03d}.jpg" and image["view"] == record["view"]
        )
        assert record == {**independent.conditions(record["index"]), **record}
    min_side = independent.MIN_BOX_SIDE_PER_WIDTH * independent.WIDTH
    for annotation in content["annotations"]:
        _, _, width, height = annotation["bbox"]
        hidden = annotation["visible_fraction"] < independent.MIN_VISIBLE_FRACTION
        assert annotation["iscrowd"] == int(hidden or min(width, height) < min_side)
    dataset = CocoDetection(folder / "coco.json")
    assert len(dataset) == independent.SIZE
    targets = sum(len(dataset.images[i]["boxes"]) for i in range(len(dataset)))
    assert targets == sum(not a["iscrowd"] for a in content["annotations"]) > 100


class _Oracle:
    """A 'detector' that returns each image's true pallets, and boxes on its crowd regions."""

    def __init__(self, folder: Path) -> None:
        from lightning_synth.data.coco import CocoDetection

        dataset = CocoDetection(folder / "coco.json")
        self.truth = {}
        for i in range(len(dataset)):
            sample = dataset[i]
            boxes = torch.cat(
                [sample["boxes"], torch.tensor(sample["meta"]["crowd_boxes"]).reshape(-1, 4)]
            )
            self.truth[sample["image"].shape, float(sample["image"].sum())] = boxes

    def eval(self) -> None:
        pass

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        found = []
        for image in images:
            boxes = self.truth[image.shape, float(image.sum())]
            found.append(
                {
                    "boxes": boxes,
                    "scores": torch.linspace(1.0, 0.5, len(boxes)),
                    "labels": torch.ones(len(boxes), dtype=torch.int64),
                }
            )
        return found


def test_scores_ignore_detections_on_crowd_regions(independent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [independent.render_one(i, tmp_path, 2, (96, 72)) for i in range(3)]
    (tmp_path / "coco.json").write_text(json.dumps(independent.coco(records)))
    result = independent.evaluate(_Oracle(tmp_path), tmp_path)
    assert result["images"] == 3 and result["targets"] > 0
    assert result["detections"] == result["targets"] + result["crowd"]
    assert result["map_50"] == pytest.approx(1.0) and result["map"] == pytest.approx(1.0)
    assert all(math.isclose(v["map_50"], 1.0) for v in result["views"].values())
    assert sum(k["pallets"] for k in result["kinds"].values()) == result["targets"]
    assert all(k["recall_50"] == 1.0 for k in result["kinds"].values())


def test_recall_per_kind_counts_confident_overlaps_only(independent) -> None:  # type: ignore[no-untyped-def]
    annotations = [
        {"image_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0, "kind": "eur"},
        {"image_id": 1, "bbox": [20, 0, 10, 10], "iscrowd": 0, "kind": "eur"},
        {"image_id": 1, "bbox": [40, 0, 10, 10], "iscrowd": 0, "kind": "plastic"},
        {"image_id": 2, "bbox": [0, 0, 10, 10], "iscrowd": 1, "kind": "eur"},
    ]
    found = {
        1: {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [21, 0, 31, 10], [40, 0, 50, 10]]),
            "scores": torch.tensor([0.9, 0.8, 0.3]),  # the plastic pallet's is not confident
        },
        2: {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0)},
    }
    assert independent.kind_recall(annotations, found) == {
        "eur": {"pallets": 2, "recall_50": 1.0},
        "plastic": {"pallets": 1, "recall_50": 0.0},
    }
