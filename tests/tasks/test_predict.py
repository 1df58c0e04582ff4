"""Inference on users' images: tiling, pixel sizes, checkpoints, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from helpers import quiet_trainer
from lightning_synth.data import SynthRealDataModule, ToyDisksDataset
from lightning_synth.predict import (
    folder_command,
    load_task,
    segment,
    segment_folder,
    segmentation_settings,
)
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


def test_checkpoints_without_hrtem_data_get_the_studys_settings(checkpoint: Path) -> None:
    # Trained on toy disks: no simulation settings and no normalisation stored.
    assert segmentation_settings(checkpoint) == {
        "model_pixel_size": 0.2,
        "normalization": "min_max",
    }


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


class LocalModel(torch.nn.Module):
    """Logits (0, local mean - 0.5) from two 3 x 3 box filters: each output pixel sees the 2
    pixels around it (zero-padded at the window's edge, as a U-Net's convolutions are)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        box = torch.full((1, 1, 3, 3), 1 / 9)
        smooth = F.conv2d(F.conv2d(image, box, padding=1), box, padding=1)
        return torch.cat([torch.zeros_like(smooth), smooth - 0.5], dim=1)


def test_tiling_gives_the_mask_of_one_pass_over_the_whole_image() -> None:
    image = np.random.default_rng(0).random((150, 170)).astype(np.float32)
    model = LocalModel()
    whole = segment(model, image, 0.2, tile=192)  # one window holds it all
    tiled = segment(model, image, 0.2, tile=64, overlap=32)
    assert 0.2 < float(whole.float().mean()) < 0.8
    assert torch.equal(whole, tiled)


class RecordingModel(LocalModel):
    """:class:`LocalModel` that keeps every window it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.windows.extend(image)
        return super().forward(image)


def test_each_window_can_be_normalised_on_its_own() -> None:
    # A dim image with one bright quarter: normalised whole, the dim windows would hold
    # values near 0 only; on their own, each spans 0-1 as a training crop does.
    image = np.random.default_rng(4).random((256, 256)).astype(np.float32)
    image[:128, :128] += 100.0
    model = RecordingModel()
    segment(model, image, 0.2, tile=128, overlap=64, normalize_windows=True)
    assert len(model.windows) == 9
    for window in model.windows:
        assert float(window.quantile(0.995)) == pytest.approx(1.0, abs=0.02)
        assert float(window.quantile(0.005)) == pytest.approx(0.0, abs=0.02)
    whole = RecordingModel()
    segment(whole, image, 0.2, tile=128, overlap=64)  # the default: the image at once
    assert min(float(w.max()) for w in whole.windows) < 0.05  # the dim windows, squeezed


def test_a_small_image_is_one_pass_of_the_model(checkpoint: Path) -> None:
    task = load_task(SegmentationTask, checkpoint)
    image = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    from lightning_synth.data.images import normalize_intensity

    normalised = normalize_intensity(torch.from_numpy(image)[None, None])
    with torch.no_grad():
        expected = task(normalised).argmax(1)[0]
    assert torch.equal(segment(task, image, 0.2, tile=64, overlap=32), expected)


def test_images_of_any_size_and_pixel_size_come_back_at_their_own_pixels() -> None:
    model = LocalModel()
    for shape, pixel_size in (((1500, 1400), 0.2), ((37, 301), 0.13), ((10, 10), 0.5)):
        image = np.random.default_rng(2).random(shape).astype(np.float32)
        assert tuple(segment(model, image, pixel_size).shape) == shape


@pytest.mark.parametrize("value", [0.0, -0.2, float("nan"), float("inf")])
def test_segment_refuses_bad_pixel_sizes(value: float) -> None:
    with pytest.raises(ValueError, match="pixel_size must be a finite number > 0"):
        segment(LocalModel(), np.ones((40, 40), np.float32), value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tile": 100}, "tile must be a multiple of 32"),
        ({"overlap": 256}, "overlap must be smaller than tile"),
        ({"overlap": 20}, "overlap must be a multiple of 32"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"normalization": "zscore"}, "normalization must be one of"),
    ],
)
def test_segment_refuses_bad_windows(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segment(LocalModel(), np.ones((40, 40), np.float32), 0.2, **arguments)


def test_segment_refuses_images_that_are_not_finite_2d_arrays() -> None:
    with pytest.raises(ValueError, match=r"image must be 2D \(H, W\), got shape \(2, 3, 4\)"):
        segment(LocalModel(), np.ones((2, 3, 4), np.float32), 0.2)
    bad = np.ones((40, 40), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="image holds NaN"):
        segment(LocalModel(), bad, 0.2)


def test_a_hot_pixel_does_not_change_the_mask() -> None:
    image = np.random.default_rng(3).random((96, 96)).astype(np.float32)
    hot = image.copy()
    hot[10, 10] = 1000.0
    model = LocalModel()
    clean, spoiled = segment(model, image, 0.2), segment(model, hot, 0.2)
    assert float((clean != spoiled).float().sum()) <= 9  # at most the hot pixel's neighbours
    by_min_max = segment(model, hot, 0.2, normalization="min_max")
    assert float((clean != by_min_max).float().mean()) > 0.1  # what min-max does instead
