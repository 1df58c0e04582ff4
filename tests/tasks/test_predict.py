"""Folder inference: checkpoints and pixel sizes are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import quiet_trainer
from lightning_synth.data import SynthRealDataModule, ToyDisksDataset
from lightning_synth.predict import folder_command, load_task, segment_folder
from lightning_synth.tasks.detection import DetectionTask
from lightning_synth.tasks.segmentation import SegmentationTask

ENCODER = "tu-mobilenetv3_small_050"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segmenter")
    trainer = quiet_trainer(root, 1, limit_train_batches=1)
    data = SynthRealDataModule(ToyDisksDataset(4, size=32), batch_size=2)
    trainer.fit(SegmentationTask(encoder=ENCODER), datamodule=data)
    path = root / "segmenter.ckpt"
    trainer.save_checkpoint(path)
    return path


def _images(folder: Path, sizes: tuple[int, ...] = (40, 70)) -> Path:
    folder.mkdir(exist_ok=True)
    for index, size in enumerate(sizes):
        array = np.random.default_rng(index).random((size, size)).astype(np.float32)
        Image.fromarray(array).save(folder / f"m{index}.tif")
    return folder


def test_a_folder_of_any_size_is_segmented(checkpoint: Path, tmp_path: Path) -> None:
    task = load_task(SegmentationTask, checkpoint)
    images = _images(tmp_path / "images")
    segment_folder(task, images, pixel_size=0.25, out=tmp_path / "out")
    masks = sorted((tmp_path / "out").glob("*_mask.npy"))
    assert [np.load(m).shape for m in masks] == [(40, 40), (70, 70)]


@pytest.mark.parametrize("value", ["-0.2", "0", "nan", "inf"])
def test_bad_pixel_sizes_exit_with_an_error(
    checkpoint: Path, tmp_path: Path, value: str, capsys: pytest.CaptureFixture
) -> None:
    command = folder_command(SegmentationTask, "segmentation", "hrtem_seg.py")
    arguments = ["--images", str(_images(tmp_path / "i")), "--checkpoint", str(checkpoint)]
    with pytest.raises(SystemExit) as exit_info:
        command([*arguments, "--out", str(tmp_path / "o"), f"--pixel-size={value}"])
    assert exit_info.value.code == 2
    assert "--pixel-size must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing was written
    with pytest.raises(ValueError, match="pixel_size must be a finite number > 0"):
        segment_folder(load_task(SegmentationTask, checkpoint), tmp_path / "i", 0.0, tmp_path / "o")


def test_checkpoints_of_another_kind_are_named(checkpoint: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes.ckpt is not a PyTorch checkpoint"):
        load_task(SegmentationTask, text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task(SegmentationTask, tmp_path / "missing.ckpt")
    with pytest.raises(
        ValueError, match=r"written by another task than DetectionTask .*'architecture'"
    ):
        load_task(DetectionTask, checkpoint)


def test_detection_batch_size_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    command = folder_command(DetectionTask, "detection", "pallet_det.py")
    with pytest.raises(SystemExit):
        command(["--images", str(tmp_path), "--checkpoint", "x", "--out", "y", "--batch-size", "0"])
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err
