"""The HRTEM segmentation recipe end to end on CPU at tiny sizes: fit, test, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import load_script, tiny_hrtem_options

RECIPE = Path(__file__).parents[2] / "recipes" / "hrtem_seg.py"


@pytest.fixture(scope="module")
def recipe():  # type: ignore[no-untyped-def]
    return load_script(RECIPE)


def _tiny(root: Path) -> list[str]:
    return tiny_hrtem_options(root)


def test_default_run_fits_tests_and_reports(
    recipe, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    recipe.main(_tiny(tmp_path))
    run = tmp_path / "lightning_logs" / "version_0"
    results = json.loads((run / "results.json").read_text())
    assert {
        "test/heldout/f1",
        "test/heldout/iou",
        "test/heldout/precision",
        "test/heldout/recall",
    } <= set(results)
    assert all(0.0 <= results[f"test/heldout/{k}"] <= 1.0 for k in ("f1", "iou"))
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yaml").is_file()
    figure = np.asarray(Image.open(run / "predictions.png"))
    assert figure.shape == (2 * 64, 3 * 64, 3)
    assert "held-out simulated domain: f1" in capsys.readouterr().out


BRIDGED = RECIPE.parent / "configs" / "hrtem_seg_bridged.yaml"


@pytest.mark.filterwarnings("ignore:BridgedTransfer. training ended in phase")
def test_subcommands_with_the_bridged_config_and_predict_folder(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # One epoch: the bridged config parses, builds the callback and the two fidelity pools.
    recipe.main(["fit", "--config", str(BRIDGED), *_tiny(tmp_path)])
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    # The user's own images: other sizes and pixel sizes, with masks for scores.
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a", 70), ("b", 45)):
        np.save(images / f"{name}.npy", rng.random((size, size)).astype(np.float32))
        truth = np.zeros((size, size), np.uint8)
        truth[10:30, 10:30] = 255
        Image.fromarray(truth).save(masks / f"{name}.png")
    out = tmp_path / "predicted"
    recipe.main(
        [
            "predict-folder",
            "--images",
            str(images),
            "--pixel-size",
            "0.25",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--masks",
            str(masks),
        ]
    )
    assert np.load(out / "a_mask.npy").shape == (70, 70)
    assert np.load(out / "b_mask.npy").shape == (45, 45)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["images"]) == {"a.npy", "b.npy"}
    assert 0.0 <= metrics["overall"]["f1"] <= 1.0
    # predict-folder took the model's pixel size and normalisation from the checkpoint.
    from lightning_synth.predict import segmentation_settings

    expected = {"model_pixel_size": 0.2, "normalization": "percentile"}
    assert segmentation_settings(checkpoint) == expected


def test_paper_config_runs_a_few_steps_on_cpu(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The full-size GPU preset, shrunk to tiny images and moved to the CPU.
    paper = RECIPE.parent / "configs" / "hrtem_seg_paper.yaml"
    cpu = [
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",
        "--data.simulation.sampling=0.1",
    ]
    recipe.main(
        [
            "fit",
            "--config",
            str(paper),
            *_tiny(tmp_path),
            *cpu,
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
        ]
    )
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def _real_micrographs(root: Path, shapes: tuple[tuple[int, int], ...]) -> tuple[Path, Path]:
    images, masks = root / "real" / "images", root / "real" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for index, shape in enumerate(shapes):
        rng = np.random.default_rng(index)
        Image.fromarray(rng.random(shape).astype(np.float32)).save(images / f"r{index}.tif")
        mask = np.zeros(shape, np.uint8)
        mask[shape[0] // 3 : shape[0] // 2, shape[1] // 4 : shape[1] // 2] = 255
        Image.fromarray(mask).save(masks / f"r{index}.png")
    return images, masks


@pytest.mark.parametrize("strategy", ["mixed", "bridged"])
def test_the_readme_commands_with_your_real_data_of_any_size(
    recipe, tmp_path: Path, strategy: str, capsys: pytest.CaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    # Real images larger and smaller than the simulated ones, at another pixel size: they are
    # resampled and cut into tiles of the simulated images' size, so both kinds batch together.
    images, masks = _real_micrographs(tmp_path, ((150, 110), (40, 60)))
    options = [o for o in _tiny(tmp_path) if not o.startswith("--trainer.max_epochs")]
    recipe.main(
        [
            *options,
            "--trainer.max_epochs=2",
            f"--data.strategy={strategy}",
            f"--data.real_images={images}",
            f"--data.real_masks={masks}",
            "--data.real_pixel_size=0.25",
        ]
    )
    out = capsys.readouterr().out
    assert "held-out simulated domain: f1" in out
    if strategy == "bridged":
        assert "bridged transfer: phases ['synthetic', 'real'], switching at epochs [1]" in out


def test_real_data_options_are_checked_before_anything_renders(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="real_images not found"):
        recipe.main(
            [
                *_tiny(tmp_path),
                "--data.strategy=mixed",
                f"--data.real_images={tmp_path / 'nope'}",
                "--data.real_pixel_size=0.25",
            ]
        )
    with pytest.raises(ValueError, match="real_pixel_size is required"):
        recipe.main([*_tiny(tmp_path), "--data.strategy=mixed", f"--data.real_images={tmp_path}"])
    assert not (tmp_path / "cache").exists()
