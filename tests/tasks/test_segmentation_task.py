"""SegmentationTask: it learns, its metrics are per named set, its inputs are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from helpers import quiet_trainer
from lightning_synth.data import SynthRealDataModule, ToyDisksDataset
from lightning_synth.tasks.segmentation import SegmentationTask

#: A small timm encoder, so that a few hundred steps take seconds on a CPU.
ENCODER = "tu-mobilenetv3_small_050"


def _trainer(root: Path, epochs: int, **kwargs: Any) -> Trainer:
    return quiet_trainer(root, epochs, **kwargs)


def _data(**kwargs: Any) -> SynthRealDataModule:
    return SynthRealDataModule(
        ToyDisksDataset(96, size=32, style="clean", seed=1),
        val={"clean": ToyDisksDataset(16, size=32, style="clean", seed=2)},
        test={
            "clean": ToyDisksDataset(16, size=32, style="clean", seed=3),
            "recorded": ToyDisksDataset(16, size=32, style="recorded", seed=4),
        },
        batch_size=8,
        **kwargs,
    )


def test_it_learns_the_toy_disks(tmp_path: Path) -> None:
    # A broken loss, optimizer, schedule or augmentation keeps F1 far below this.
    seed_everything(0)
    task = SegmentationTask(encoder=ENCODER, lr=3e-3, lr_decay=0.9)
    data = _data(train_transforms=["D4"])
    trainer = _trainer(tmp_path, epochs=8)
    trainer.fit(task, datamodule=data)
    (result,) = trainer.validate(task, datamodule=data, verbose=False)
    assert result["val/clean/f1"] >= 0.9, result
    assert result["val/clean/iou"] >= 0.8, result
    tested = trainer.test(task, datamodule=data, verbose=False)
    names = {key for scores in tested for key in scores}
    assert {"test/clean/f1", "test/recorded/f1", "test/clean/loss", "test/recorded/recall"} <= names


def test_metrics_are_per_set_and_reset_every_epoch(tmp_path: Path) -> None:
    task = SegmentationTask(encoder=ENCODER)
    data = _data()
    trainer = _trainer(tmp_path, epochs=1, limit_train_batches=1)
    trainer.fit(task, datamodule=data)
    first = trainer.validate(task, datamodule=data, verbose=False)[0]
    again = trainer.validate(task, datamodule=data, verbose=False)[0]
    # Computed afresh each run: accumulated state would not give the same value twice
    # after a different set in between, and each set has its own state.
    trainer.test(task, datamodule=data, verbose=False)
    assert first == pytest.approx(again)
    assert [m.update_count for m in task.val_metrics["clean"].values()] == [0] * 4
    assert sorted(task.test_metrics) == ["clean", "recorded"]


def test_an_unnamed_set_is_named_after_its_stage(tmp_path: Path) -> None:
    data = SynthRealDataModule(
        ToyDisksDataset(8, size=32), val=ToyDisksDataset(4, size=32, seed=5), batch_size=4
    )
    task = SegmentationTask(encoder=ENCODER)
    trainer = _trainer(tmp_path, epochs=1, limit_train_batches=1)
    trainer.fit(task, datamodule=data)
    assert "val/val/f1" in trainer.callback_metrics


def test_predictions_are_particle_probabilities() -> None:
    task = SegmentationTask(encoder=ENCODER).eval()
    with torch.no_grad():
        probability = task.predict_step({"image": torch.rand(2, 1, 32, 32)}, 0)
    assert probability.shape == (2, 32, 32)
    assert float(probability.min()) >= 0 and float(probability.max()) <= 1


def test_decoder_widths_set_the_unet_decoder() -> None:
    narrow = SegmentationTask(decoder_channels=[32, 16, 16, 8, 8])
    widths = [block.conv2[0].out_channels for block in narrow.model.decoder.blocks]
    assert widths == [32, 16, 16, 8, 8]
    assert narrow.hparams["decoder_channels"] == [32, 16, 16, 8, 8]
    assert narrow(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "segformer"}, "architecture must be one of"),
        ({"lr": 0}, "lr must be > 0"),
        ({"lr": "0.1"}, "lr must be > 0"),
        ({"lr_decay": 1.5}, r"lr_decay in \(0, 1\]"),
        ({"dice_weight": -1}, "dice_weight must be a number >= 0"),
        ({"in_channels": 0}, "in_channels must be an integer >= 1"),
        ({"decoder_channels": [64, 32, 16]}, "decoder_channels must be 5 integers >= 1"),
        ({"decoder_channels": [64, 32, 16, 8, 0]}, "decoder_channels must be 5 integers"),
        ({"architecture": "fpn", "decoder_channels": [8] * 5}, "applies to unet and unetplus"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentationTask(**kwargs)


def test_a_non_finite_loss_stops_training() -> None:
    task = SegmentationTask(encoder=ENCODER)
    image = torch.full((2, 1, 32, 32), float("nan"))
    with pytest.raises(FloatingPointError, match="the training loss is nan"):
        task.training_step({"image": image, "mask": torch.zeros(2, 32, 32, dtype=torch.long)}, 0)
