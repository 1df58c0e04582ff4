"""The pallet detection recipe end to end on CPU at tiny sizes: every strategy, test, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import load_script, tiny_pallet_options
from lightning_synth.tasks.detection import DetectionTask, draw_detections

RECIPE = Path(__file__).parents[2] / "recipes" / "pallet_det.py"


@pytest.fixture(scope="module")
def recipe():  # type: ignore[no-untyped-def]
    return load_script(RECIPE)


def _tiny(root: Path) -> list[str]:
    return tiny_pallet_options(root)


@pytest.mark.parametrize("strategy", ["real_only", "synthetic_only", "mixed", "bridged"])
def test_every_strategy_fits_and_reports_ap_on_id_and_ood(
    recipe, tmp_path: Path, capsys: pytest.CaptureFixture, strategy: str
) -> None:  # type: ignore[no-untyped-def]
    epochs = 2 if strategy == "bridged" else 1  # bridged switches after the first epoch
    recipe.main(
        [
            *_tiny(tmp_path),
            f"--trainer.max_epochs={epochs}",
            f"--data.strategy={strategy}",
            "--data.realism=random",
        ]
    )
    run = tmp_path / "lightning_logs" / "version_0"
    results = json.loads((run / "results.json").read_text())
    for name in ("id", "ood"):
        for metric in ("map", "map_50", "map_75", "mar_100"):
            assert 0.0 <= results[f"test/{name}/{metric}"] <= 1.0
    assert (run / "predictions.png").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    output = capsys.readouterr().out
    assert "test set id: map" in output and "test set ood: map" in output
    if strategy == "bridged":
        assert "bridged transfer: phases ['synthetic', 'real'], switching at epochs [1]" in output
        log = (run / "metrics.csv").read_text()
        assert "bridge/phase" in log


def test_export_test_and_predict_through_coco(
    recipe, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    recipe.main(
        [
            "export-standins",
            "--out",
            str(tmp_path / "coco"),
            "--width",
            "64",
            "--height",
            "48",
            "--samples",
            "3",
        ]
    )
    annotations = tmp_path / "coco" / "id" / "annotations.json"
    assert len(json.loads(annotations.read_text())["images"]) == 3
    recipe.main(["fit", *_tiny(tmp_path), "--trainer.max_epochs=1"])
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    # test on the user's COCO set (here: the exported stand-in), by name.
    recipe.main(
        [
            "test",
            *_tiny(tmp_path),
            f"--ckpt_path={checkpoint}",
            f"--data.eval_annotations={{site: {annotations}}}",
        ]
    )
    assert "test/site/map" in capsys.readouterr().out
    out = tmp_path / "detections.json"
    recipe.main(
        [
            "predict-folder",
            "--images",
            str(annotations.parent),
            "--annotations",
            str(annotations),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
        ]
    )
    detections = json.loads(out.read_text())
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in detections)
    assert "map " in capsys.readouterr().out
    # A plain folder of images (no ground truth).
    recipe.main(
        [
            "predict-folder",
            "--images",
            str(annotations.parent / "images"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
        ]
    )
    assert out.is_file()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        recipe.main(
            [
                "predict-folder",
                "--images",
                str(tmp_path / "coco"),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
            ]
        )


class _NanDetector(nn.Module):
    def forward(self, images: list, targets: list) -> dict[str, torch.Tensor]:
        return {"loss_classifier": torch.tensor(float("nan")), "loss_box_reg": torch.tensor(0.5)}


def test_detections_thinner_than_a_pixel_are_drawn() -> None:
    image = torch.zeros(3, 8, 10)
    truth = torch.tensor([[1.0, 1.0, 4.0, 3.0]])
    predicted = torch.tensor([[6.0, 2.0, 6.4, 5.0], [2.0, 6.0, 5.0, 6.0], [8.0, 1.0, 8.0, 1.0]])
    picture = draw_detections(image, truth, predicted)
    assert picture.shape == (8, 10, 3)
    assert picture.dtype.name == "uint8"
    red = (picture[..., 0] == 255) & (picture[..., 1] == 40)
    assert red[2:5, 6].all()  # the 0.4 px wide box: a one-pixel column
    assert red[6, 2:5].all()  # the zero-height box: a one-pixel row
    assert red[1, 8]  # the empty box: one pixel
    assert (picture[1, 1:4, 1] == 230).all()  # the truth box, green, right edge exclusive


def test_non_finite_loss_stops_with_the_terms() -> None:
    task = DetectionTask(model="fasterrcnn_mobilenet_v3_large_320_fpn", min_size=48, max_size=64)
    task.model = _NanDetector()
    batch = {
        "image": [torch.rand(3, 48, 64)],
        "boxes": [torch.zeros(0, 4)],
        "labels": [torch.zeros(0, dtype=torch.long)],
    }
    with pytest.raises(
        FloatingPointError,
        match=r"training loss is nan at step 0 \(loss_classifier nan, loss_box_reg 0.5\)",
    ):
        task.training_step(batch, 0)


def test_detector_options_anchors_heads_and_errors() -> None:
    from lightning_synth.models.detection import build_detector

    model = build_detector(
        "fasterrcnn_resnet18_fpn",
        2,
        anchor_sizes=[16, 32, 64, 128, 256],
        aspect_ratios=[0.125, 1.0],
    )
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.rpn.head.cls_logits.out_channels == 2
    mobile = build_detector(
        "fasterrcnn_mobilenet_v3_large_fpn", 2, anchor_sizes=[16, 32], aspect_ratios=[0.25]
    )
    assert mobile.rpn.anchor_generator.num_anchors_per_location() == [2, 2, 2]
    task = DetectionTask(model="fasterrcnn_mobilenet_v3_large_320_fpn", representation_size=64)
    assert task.model.roi_heads.box_head.fc7.out_features == 64
    assert task.model.roi_heads.box_predictor.bbox_pred.out_features == 2 * 4
    with pytest.raises(ValueError, match=r"one size per pyramid level \(5\)"):
        build_detector("fasterrcnn_resnet50_fpn", 2, anchor_sizes=[16, 32])
    # Raised before anything is built (downloads fail every test: tests/conftest.py).
    with pytest.raises(ValueError, match="no pretrained fasterrcnn_resnet18_fpn"):
        build_detector("fasterrcnn_resnet18_fpn", 2, pretrained=True)
    with pytest.raises(ValueError, match="model must be one of"):
        build_detector("yolo", 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes counts the background"):
        build_detector("fasterrcnn_resnet18_fpn", 1)


def test_stride8_mobilenet_pyramid_levels_and_options() -> None:
    from lightning_synth.models.detection import build_detector

    model = build_detector("fasterrcnn_mobilenet_v3_large_stride8_fpn", 2, fpn_channels=32)
    levels = model.backbone(torch.zeros(1, 3, 64, 96))
    assert {name: tuple(level.shape[1:]) for name, level in levels.items()} == {
        "0": (32, 8, 12),  # stride 8
        "1": (32, 4, 6),
        "2": (32, 2, 3),
        "pool": (32, 1, 2),
    }
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,))
    assert all(p.requires_grad for p in model.backbone.parameters())
    partly = build_detector(
        "fasterrcnn_mobilenet_v3_large_stride8_fpn", 2, trainable_backbone_layers=2
    )
    body = partly.backbone.body
    assert not any(p.requires_grad for p in body["12"].parameters())
    assert all(p.requires_grad for p in body["13"].parameters())
    with pytest.raises(ValueError, match="fpn_channels is only an option of"):
        build_detector("fasterrcnn_resnet18_fpn", 2, fpn_channels=64)
    with pytest.raises(ValueError, match="fpn_channels must be >= 1, got 0"):
        build_detector("fasterrcnn_mobilenet_v3_large_stride8_fpn", 2, fpn_channels=0)
    with pytest.raises(ValueError, match=r"trainable_backbone_layers must be in \[0, 6\], got 7"):
        build_detector("fasterrcnn_mobilenet_v3_large_stride8_fpn", 2, trainable_backbone_layers=7)
    # Raised before anything is built (downloads fail every test: tests/conftest.py).
    with pytest.raises(ValueError, match="no pretrained fasterrcnn_mobilenet_v3_large_stride8"):
        build_detector("fasterrcnn_mobilenet_v3_large_stride8_fpn", 2, pretrained=True)


def test_a_run_logs_to_wandb_offline_and_no_wandb_falls_back_to_csv(
    recipe, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from helpers import read_wandb_run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    tiny = [option for option in _tiny(tmp_path / "wandb") if option != "--no-wandb"]
    recipe.main([*tiny, "--data.strategy=bridged", "--data.real_fraction=0.5"])
    output = capsys.readouterr().out
    files = list((tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, "one W&B run, written offline"
    assert f"W&B run written offline to {files[0].parent}" in output
    run = read_wandb_run(files[0])
    # The whole resolved config, the phase, the counts per source, the metrics per set,
    # the prediction pictures and the final metrics.
    config = {key: json.loads(value) for key, value in run["config"].items()}
    assert config["data.strategy"] == "bridged" and config["data.real_fraction"] == 0.5
    assert config["trainer.max_epochs"] == 2 and config["model.lr"] == config["lr"]
    history = run["history"]
    assert {"bridge/phase", "train/samples/synthetic", "train/samples/real"} <= history
    assert {"val/id/map", "val/ood/map", "val/id/map_50", "val/ood/map_50"} <= history
    assert "val/id/predictions/_type" in history and "val/ood/predictions/_type" in history
    assert {"test/id/map", "test/ood/map"} <= run["summary"]
    assert "max: true" in str(run["metrics"]["val/*"])  # sweeps optimise the best value
    # The run's own folder holds its outputs, named after the W&B run.
    run_id = files[0].stem.removeprefix("run-")
    folder = tmp_path / "wandb" / "lightning-synth" / run_id
    assert {"results.json", "config.yaml", "predictions.png"} <= {p.name for p in folder.iterdir()}
    assert (folder / "checkpoints" / "best.ckpt").is_file()

    csv = tmp_path / "csv"
    recipe.main([*_tiny(csv), "--trainer.max_epochs=1"])
    version = csv / "lightning_logs" / "version_0"
    assert (version / "metrics.csv").is_file() and (version / "results.json").is_file()
    assert sorted(p.name for p in (version / "predictions").iterdir()) == [
        "epoch0-id.png",
        "epoch0-ood.png",
    ]
    assert not (csv / "wandb").exists()


def test_timm_detector_pyramid_levels_options_and_errors() -> None:
    from lightning_synth.models.detection import build_detector

    model = build_detector(
        "fasterrcnn_timm_fpn",
        2,
        backbone="resnet10t",
        fpn_channels=32,
        anchor_sizes=[8, 16, 32, 64],
    )
    levels = model.backbone(torch.zeros(1, 3, 64, 96))
    assert {name: tuple(level.shape[1:]) for name, level in levels.items()} == {
        "0": (32, 8, 12),  # stride 8
        "1": (32, 4, 6),
        "2": (32, 2, 3),
        "pool": (32, 1, 2),
    }
    assert model.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,))
    assert all(p.requires_grad for p in model.parameters())
    task = DetectionTask(
        model="fasterrcnn_timm_fpn", backbone="resnet10t", min_size=64, max_size=96
    )
    task.eval()
    (found,) = task([torch.rand(3, 64, 96)])
    assert found["boxes"].shape[1] == 4
    with pytest.raises(ValueError, match="backbone 'vit_nope' is not a timm model"):
        build_detector("fasterrcnn_timm_fpn", 2, backbone="vit_nope")
    with pytest.raises(ValueError, match="backbone is only an option of fasterrcnn_timm_fpn"):
        build_detector("fasterrcnn_resnet18_fpn", 2, backbone="resnet10t")
    with pytest.raises(ValueError, match="no pretrained fasterrcnn_timm_fpn"):
        build_detector("fasterrcnn_timm_fpn", 2, pretrained=True)
    with pytest.raises(ValueError, match="trainable_backbone_layers is not an option"):
        build_detector("fasterrcnn_timm_fpn", 2, trainable_backbone_layers=2)
