"""LightningModules for the recipes' tasks; each loads its model library when first used."""

from typing import TYPE_CHECKING

from lightning_synth._lazy import lazy_attributes
from lightning_synth.tasks.base import BaseTask, evaluation_set_names

if TYPE_CHECKING:
    from lightning_synth.tasks.detection import DetectionTask
    from lightning_synth.tasks.segmentation import SegmentationTask

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "DetectionTask": "lightning_synth.tasks.detection",
        "SegmentationTask": "lightning_synth.tasks.segmentation",
    },
    globals(),
)

__all__ = ["BaseTask", "DetectionTask", "SegmentationTask", "evaluation_set_names"]
