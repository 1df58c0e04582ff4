"""LearningCurve: validation metrics against steps and training time, kept across a resume."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from helpers import IdDataset, TinySegmenter, quiet_trainer
from lightning_synth.callbacks import LearningCurve
from lightning_synth.data import SynthRealDataModule


class SlowValidation(Callback):
    """Makes every validation take a known, long time."""

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        time.sleep(0.3)


def _datamodule() -> SynthRealDataModule:
    return SynthRealDataModule(
        IdDataset(16, seed=1),
        IdDataset(8, first_id=1000, seed=2),
        val={"real": IdDataset(4, first_id=2000, seed=3)},
        strategy="mixed",
        batch_size=4,
        seed=0,
    )


def test_points_at_every_validation_without_its_time(tmp_path: Path) -> None:
    curve = LearningCurve(filename=None)
    trainer = quiet_trainer(
        tmp_path, 3, [curve, SlowValidation()], val_check_interval=2, num_sanity_val_steps=1
    )
    start = time.perf_counter()
    trainer.fit(TinySegmenter(), datamodule=_datamodule())
    elapsed = time.perf_counter() - start
    steps = [point["step"] for point in curve.history]
    assert steps == sorted(steps) and len(steps) == 3 * (trainer.num_training_batches // 2)
    assert all("val/loss" in point and "train/loss" not in point for point in curve.history)
    seconds = [point["train_seconds"] for point in curve.history]
    assert seconds == sorted(seconds) and seconds[0] > 0
    # Every validation slept 0.3 s (the sanity check too), inside the window the curve
    # measures (its hook runs first); none of it is training time.
    assert seconds[-1] < elapsed - 0.3 * (len(steps) + 1) + 0.05


def test_the_curve_is_written_and_continues_after_a_resume(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    def trainer(epochs: int) -> Any:
        checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
        return quiet_trainer(
            tmp_path,
            epochs,
            [LearningCurve(), checkpoints],
            logger=CSVLogger(tmp_path, version=0),
            enable_checkpointing=True,
        )

    first = trainer(2)
    first.fit(TinySegmenter(), datamodule=_datamodule())
    path = tmp_path / "lightning_logs" / "version_0" / "learning_curve.json"
    assert [p["epoch"] for p in LearningCurve.read(path)] == [0, 1]
    before = LearningCurve.read(path)[-1]["train_seconds"]
    second = trainer(3)
    second.fit(
        TinySegmenter(), datamodule=_datamodule(), ckpt_path=tmp_path / "checkpoints" / "last.ckpt"
    )
    resumed = LearningCurve.read(path)
    assert [p["epoch"] for p in resumed] == [0, 1, 2]
    assert resumed[-1]["train_seconds"] > before


def test_reading_something_else_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no validation finished"):
        LearningCurve.read(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(ValueError, match="is not a learning curve"):
        LearningCurve.read(tmp_path / "other.json")
