"""Records a learning curve: validation metrics against steps and against training time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from lightning_synth.loggers import run_directory


class LearningCurve(Callback):
    """Records, at every validation, the step, the training time so far and the metrics.

    Training time is the fit's wall time less the time spent validating (the sanity check
    included), so the curve reads as "this mAP after that many seconds of training": data
    loading, forward and backward passes and optimizer steps count, evaluation does not.
    Each point is written to ``filename`` in the run's folder (see
    :func:`~lightning_synth.loggers.run_directory`) as soon as it is measured, so a killed
    run keeps its curve; a run resumed from a checkpoint continues its curve and its clock.

    Attributes:
        history: One dict per validation: ``step``, ``epoch``, ``train_seconds`` and every
            logged metric whose name starts with ``prefix``.

    Args:
        prefix: Logged metrics to record (by the start of their name).
        filename: The curve's file in the run's folder (JSON); None writes nothing.

    Example:
        >>> curve = LearningCurve()
        >>> curve.history
        []
    """

    def __init__(self, prefix: str = "val/", filename: str | None = "learning_curve.json") -> None:
        super().__init__()
        self.prefix = prefix
        self.filename = filename
        self.history: list[dict[str, float]] = []
        self._offset = 0.0  # training seconds of the run before a resume
        self._start = 0.0
        self._validating = 0.0
        self._validation_start = 0.0

    def train_seconds(self) -> float:
        """Seconds spent training so far (this run's fit, less validation, plus earlier runs')."""
        return self._offset + time.perf_counter() - self._start - self._validating

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = time.perf_counter()
        self._validating = 0.0

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._validation_start = time.perf_counter()

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._validating += time.perf_counter() - self._validation_start
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        point: dict[str, float] = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "train_seconds": round(self.train_seconds(), 3),
        }
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(self.prefix):
                point[name] = float(value)
        self.history.append(point)
        if self.filename is not None and trainer.is_global_zero:
            path = run_directory(trainer) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.history, indent=1))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(point) for point in self.history], "seconds": self.train_seconds()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(point) for point in state_dict["history"]]
        self._offset = float(state_dict["seconds"])

    @staticmethod
    def read(path: str | Path) -> list[dict[str, float]]:
        """A curve written by this callback."""
        path = Path(path)
        if not path.is_file():
            msg = f"{path} does not exist: no validation finished in that run"
            raise FileNotFoundError(msg)
        content = json.loads(path.read_text())
        if not isinstance(content, list) or not all(
            isinstance(p, dict) and "step" in p for p in content
        ):
            msg = f"{path} is not a learning curve (a list of points with a 'step')"
            raise ValueError(msg)
        return content
