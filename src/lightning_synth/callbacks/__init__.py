"""Callbacks that act on the training loop."""

from lightning_synth.callbacks.bridged_transfer import (
    BridgedTransfer,
    request_train_dataloader_reload,
)
from lightning_synth.callbacks.learning_curve import LearningCurve
from lightning_synth.callbacks.prediction_images import PredictionImages
from lightning_synth.callbacks.source_counter import SourceCounter

__all__ = [
    "BridgedTransfer",
    "LearningCurve",
    "PredictionImages",
    "SourceCounter",
    "request_train_dataloader_reload",
]
