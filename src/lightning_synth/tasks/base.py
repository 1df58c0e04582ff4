"""What the recipes' tasks share: the names of the evaluation sets."""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch import LightningModule

from lightning_synth.data.datamodule import UNNAMED_SET


def evaluation_set_names(module: LightningModule, stage: str) -> list[str]:
    """Names of the ``stage`` (``"val"`` or ``"test"``) sets, in their dataloader order.

    A DataModule with named sets (``val_datasets`` or ``test_datasets`` a mapping) gives
    their names; a single unnamed set, or a run without such a DataModule, is named after the
    stage (``val/val/...``).
    """
    trainer = module._trainer
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    datasets = getattr(datamodule, f"{stage}_datasets", None)
    if isinstance(datasets, Mapping) and datasets:
        return [stage if name == UNNAMED_SET else name for name in datasets]
    return [stage]
