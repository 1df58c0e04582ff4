"""Datasets, samplers, collation, caches, augmentation and DataModules.

The core (SynthRealDataModule, MixingSampler, pools, collation), the generated-data base
(GeneratedDataset, GeneratedDataModule) and the readers of real data import only torch and
Lightning; the HRTEM and pallet DataModules load their generators when first used.
"""

from typing import TYPE_CHECKING

from lightning_synth._lazy import lazy_attributes
from lightning_synth.data.augmentation import Augmentation, build_transform
from lightning_synth.data.cache import SampleCache
from lightning_synth.data.coco import CocoDetection, coco_detections, write_coco
from lightning_synth.data.collate import LIST_KEYS, collate_samples
from lightning_synth.data.datamodule import SynthRealDataModule
from lightning_synth.data.generated import GeneratedDataModule, GeneratedDataset
from lightning_synth.data.images import SegmentationFolder
from lightning_synth.data.phases import SupportsPhases
from lightning_synth.data.samplers import MixingSampler, cumulative_share
from lightning_synth.data.sources import (
    Pool,
    PooledDataset,
    count_sources,
    nested_subset,
    stable_seed,
    subset_size,
)
from lightning_synth.data.toy import ToyDisksDataset

if TYPE_CHECKING:
    from lightning_synth.data.hrtem import HRTEMDataModule
    from lightning_synth.data.pallets import PalletDataModule, rendered_pallets

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "HRTEMDataModule": "lightning_synth.data.hrtem",
        "PalletDataModule": "lightning_synth.data.pallets",
        "rendered_pallets": "lightning_synth.data.pallets",
    },
    globals(),
)

__all__ = [
    "LIST_KEYS",
    "Augmentation",
    "CocoDetection",
    "GeneratedDataModule",
    "GeneratedDataset",
    "HRTEMDataModule",
    "MixingSampler",
    "PalletDataModule",
    "Pool",
    "PooledDataset",
    "SampleCache",
    "SegmentationFolder",
    "SupportsPhases",
    "SynthRealDataModule",
    "ToyDisksDataset",
    "build_transform",
    "coco_detections",
    "collate_samples",
    "count_sources",
    "cumulative_share",
    "nested_subset",
    "rendered_pallets",
    "stable_seed",
    "subset_size",
    "write_coco",
]
