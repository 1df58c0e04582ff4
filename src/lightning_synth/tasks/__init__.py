"""LightningModules for the recipes' tasks."""

from lightning_synth.tasks.segmentation import SegmentationTask

__all__ = ["SegmentationTask"]
