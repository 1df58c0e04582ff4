"""What the recipes' tasks share: model, loss and metric set-up, and metrics per named set.

In TorchGeo's style, a task builds itself in three hooks, called by ``__init__`` in this
order: :meth:`BaseTask.configure_models`, :meth:`BaseTask.configure_losses` and
:meth:`BaseTask.configure_metrics` (a template ``MetricCollection``). In ``setup`` the
template is cloned once per named evaluation set of the DataModule, with the prefix
``<stage>/<set>/``, so that every set has its own metric state and its own names
(``val/id/map``, ``test/heldout/f1``). Metrics are updated in the evaluation steps and
computed, logged and reset at the end of each evaluation epoch (torchmetrics syncs them
across ranks itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MetricCollection
from typing_extensions import override

from lightning_synth.data.datamodule import UNNAMED_SET

STAGES = ("val", "test")


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


class BaseTask(LightningModule):
    """A LightningModule built by its configure_models, _losses and _metrics hooks.

    A subclass checks its arguments, then calls ``super().__init__()``, which saves every
    argument of the subclass as a hyperparameter (``self.hparams``, what the hooks build
    from) and calls the three hooks; it implements :meth:`training_step` and
    :meth:`evaluation_step`.

    Attributes:
        metrics: The template metrics (from :meth:`configure_metrics`).
        val_metrics: One clone per validation set, by set name (built in ``setup``).
        test_metrics: One clone per test set, by set name.
    """

    #: Keys of the computed metrics that are logged (None: every scalar one).
    logged_metrics: tuple[str, ...] | None = None

    def __init__(self) -> None:
        super().__init__()
        # Lightning collects the arguments of every __init__ up the call stack: the
        # subclass's own.
        self.save_hyperparameters()
        self.configure_models()
        self.configure_losses()
        self.metrics = self.configure_metrics()
        self.val_metrics = nn.ModuleDict()
        self.test_metrics = nn.ModuleDict()
        self._set_names: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ hooks to implement
    def configure_models(self) -> None:
        """Build the model(s) from ``self.hparams``."""
        raise NotImplementedError

    def configure_losses(self) -> None:
        """Build the loss(es) from ``self.hparams`` (none by default: the model's own)."""

    def configure_metrics(self) -> MetricCollection:
        """The template of every evaluation set's metrics."""
        raise NotImplementedError

    def evaluation_step(self, batch: Any, metrics: MetricCollection, stage: str, name: str) -> None:
        """Update ``metrics`` of set ``name`` with ``batch`` (and log per-batch values)."""
        raise NotImplementedError

    def finish_metrics(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Adjust the computed scalar metrics of a set before they are logged."""
        return values

    # ------------------------------------------------------------------ per-set metrics
    @override
    def setup(self, stage: str) -> None:
        wanted = {"fit": ["val"], "validate": ["val"], "test": ["test"]}.get(stage, [])
        for split in wanted:
            names = evaluation_set_names(self, split)
            clones = {
                _module_key(name): self.metrics.clone(prefix=f"{split}/{name}/") for name in names
            }
            setattr(self, f"{split}_metrics", nn.ModuleDict(clones))
            self._set_names[split] = names

    def _set(self, stage: str, dataloader_idx: int) -> tuple[str, MetricCollection]:
        if stage not in self._set_names:  # steps called outside a Trainer's setup
            self.setup("fit" if stage == "val" else "test")
        names = self._set_names[stage]
        if dataloader_idx >= len(names):
            msg = f"{stage} dataloader {dataloader_idx} has no metrics; the sets are {names}"
            raise IndexError(msg)
        name = names[dataloader_idx]
        metrics: nn.ModuleDict = getattr(self, f"{stage}_metrics")
        return name, metrics[_module_key(name)]  # type: ignore[return-value]

    @override
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        name, metrics = self._set("val", dataloader_idx)
        self.evaluation_step(batch, metrics, "val", name)

    @override
    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        name, metrics = self._set("test", dataloader_idx)
        self.evaluation_step(batch, metrics, "test", name)

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    @override
    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        for module in getattr(self, f"{stage}_metrics").values():
            collection: MetricCollection = module
            if not any(metric.update_count for metric in collection.values()):
                continue  # a set without batches this epoch
            values = collection.compute()
            prefix = collection.prefix or ""
            keep = self.logged_metrics
            logged = {
                key: value.float()
                for key, value in values.items()
                if isinstance(value, torch.Tensor)
                and value.numel() == 1
                and (keep is None or key[len(prefix) :] in keep)
            }
            self.log_dict(self.finish_metrics(logged), add_dataloader_idx=False)
            collection.reset()


def _module_key(name: str) -> str:
    """A ModuleDict key for a set name (which may not hold dots)."""
    return name.replace(".", "_")
