"""lightning_synth: synthetic-plus-real training for PyTorch Lightning."""

from lightning_synth.callbacks import BridgedTransfer, SourceCounter
from lightning_synth.data import (
    MixingSampler,
    SupportsPhases,
    SynthRealDataModule,
    ToyDisksDataset,
    collate_samples,
    nested_subset,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BridgedTransfer",
    "MixingSampler",
    "SourceCounter",
    "SupportsPhases",
    "SynthRealDataModule",
    "ToyDisksDataset",
    "__version__",
    "collate_samples",
    "nested_subset",
]
