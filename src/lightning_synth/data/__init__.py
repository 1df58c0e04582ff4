"""Datasets, samplers, collation and DataModules."""

from lightning_synth.data.coco import CocoDetection, coco_detections, write_coco
from lightning_synth.data.collate import LIST_KEYS, collate_samples
from lightning_synth.data.datamodule import SynthRealDataModule
from lightning_synth.data.pallets import PalletDataModule, RenderedPallets
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

__all__ = [
    "LIST_KEYS",
    "CocoDetection",
    "MixingSampler",
    "PalletDataModule",
    "Pool",
    "PooledDataset",
    "RenderedPallets",
    "SupportsPhases",
    "SynthRealDataModule",
    "ToyDisksDataset",
    "coco_detections",
    "collate_samples",
    "count_sources",
    "cumulative_share",
    "nested_subset",
    "stable_seed",
    "subset_size",
    "write_coco",
]
