"""Model builders for the tasks (no weights are downloaded unless asked for)."""

from typing import TYPE_CHECKING

from lightning_synth._lazy import lazy_attributes

if TYPE_CHECKING:
    from lightning_synth.models.detection import DetectorName, build_detector
    from lightning_synth.models.segmentation import Architecture, build_segmenter

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Architecture": "lightning_synth.models.segmentation",
        "DetectorName": "lightning_synth.models.detection",
        "build_detector": "lightning_synth.models.detection",
        "build_segmenter": "lightning_synth.models.segmentation",
    },
    globals(),
)

__all__ = ["Architecture", "DetectorName", "build_detector", "build_segmenter"]
