"""LightningModules for the recipes' tasks."""

from lightning_synth.tasks.base import evaluation_set_names
from lightning_synth.tasks.detection import DetectionTask, build_detector
from lightning_synth.tasks.segmentation import SegmentationTask

__all__ = ["DetectionTask", "SegmentationTask", "build_detector", "evaluation_set_names"]
