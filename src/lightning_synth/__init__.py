"""lightning_synth: synthetic-plus-real training for PyTorch Lightning.

``import lightning_synth`` loads the core only (the DataModules, samplers and callbacks);
the generators (``HRTEMSimulator``, ``PalletSceneGenerator``) and their dependencies load
when first used.
"""

from typing import TYPE_CHECKING

from lightning_synth._lazy import lazy_attributes
from lightning_synth.callbacks import BridgedTransfer, SourceCounter
from lightning_synth.data import (
    Augmentation,
    GeneratedDataModule,
    GeneratedDataset,
    MixingSampler,
    SupportsPhases,
    SynthRealDataModule,
    ToyDisksDataset,
    collate_samples,
    nested_subset,
)
from lightning_synth.generators.base import SampleGenerator

if TYPE_CHECKING:
    from lightning_synth.generators.hrtem import HRTEMSimulator
    from lightning_synth.generators.warehouse import PalletSceneGenerator

__version__ = "0.1.0.dev0"

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "HRTEMSimulator": "lightning_synth.generators.hrtem",
        "PalletSceneGenerator": "lightning_synth.generators.warehouse",
    },
    globals(),
)

__all__ = [
    "Augmentation",
    "BridgedTransfer",
    "GeneratedDataModule",
    "GeneratedDataset",
    "HRTEMSimulator",
    "MixingSampler",
    "PalletSceneGenerator",
    "SampleGenerator",
    "SourceCounter",
    "SupportsPhases",
    "SynthRealDataModule",
    "ToyDisksDataset",
    "__version__",
    "collate_samples",
    "nested_subset",
]
