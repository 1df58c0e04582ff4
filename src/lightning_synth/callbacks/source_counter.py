"""Counts the training samples of every epoch by provenance and logs the counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from lightning_synth.data.sources import SOURCE_KINDS, count_sources


class SourceCounter(Callback):
    """Counts training samples per epoch by their ``source`` and logs the totals.

    Logs ``train/samples/synthetic`` and ``train/samples/real`` at every epoch end, summed
    over ranks (both keys on every rank, so DDP reductions line up). Batches must be dicts
    with a ``source`` list, as :class:`~lightning_synth.data.SynthRealDataModule` makes them;
    other batches are not counted.

    Attributes:
        history: One dict per finished epoch with this rank's counts, e.g.
            ``{"synthetic": 96, "real": 32}``.

    Args:
        log_prefix: Prefix of the logged names.
    """

    def __init__(self, log_prefix: str = "train/samples") -> None:
        super().__init__()
        self.log_prefix = log_prefix
        self.history: list[dict[str, int]] = []
        self._current: dict[str, int] = {}

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._current = dict.fromkeys(SOURCE_KINDS, 0)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(batch, Mapping):
            for source, count in count_sources(batch).items():
                self._current[source] = self._current.get(source, 0) + count

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.history.append(dict(self._current))
        for source in SOURCE_KINDS:
            pl_module.log(
                f"{self.log_prefix}/{source}",
                float(self._current.get(source, 0)),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,
            )

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(epoch) for epoch in self.history]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(epoch) for epoch in state_dict["history"]]
