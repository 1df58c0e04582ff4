"""Bridged transfer: pretrain on synthetic data, then fine-tune on real data, in one ``fit``."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import DeepSpeedStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from lightning_synth.data.phases import PHASE_PROTOCOL, SupportsPhases, missing_phase_members

#: Optimizer param-group entries that ``lr_scale`` multiplies (OneCycleLR keeps the last three).
_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


def request_train_dataloader_reload(trainer: Trainer) -> None:
    """Make Lightning call ``train_dataloader()`` again before the next training epoch.

    Lightning has no public API for this (Lightning-AI/pytorch-lightning#21448): the fit loop
    keeps its loader while ``fit_loop._combined_loader`` is set, so clearing it from
    ``on_train_epoch_end`` makes the next epoch build the loader anew, with ``set_epoch``
    called on its sampler. This function is the only place that touches that attribute.

    Raises:
        RuntimeError: If the attribute is gone and the trainer does not reload every epoch.
    """
    fit_loop = trainer.fit_loop
    if hasattr(fit_loop, "_combined_loader"):
        fit_loop._combined_loader = None
    elif getattr(trainer, "reload_dataloaders_every_n_epochs", 0) != 1:
        msg = (
            "this Lightning version has no fit_loop._combined_loader, so BridgedTransfer cannot "
            "rebuild the train dataloader itself; create the Trainer with "
            "reload_dataloaders_every_n_epochs=1"
        )
        raise RuntimeError(msg)


class BridgedTransfer(Callback):
    r"""Steps a DataModule through its phases inside one ``trainer.fit``.

    The classic use is *bridged transfer*: pretrain on synthetic data, then fine-tune on real
    data. The DataModule decides what each phase serves (see
    :class:`~lightning_synth.data.SynthRealDataModule`, ``strategy="bridged"``); any
    DataModule works that has ``phases``, ``phase`` and ``set_phase(name)``
    (:class:`~lightning_synth.data.SupportsPhases`). A longer curriculum such as
    ``random -> realistic -> real`` is stepped through the same way.

    **When to switch.** After epoch ``switch_epoch - 1`` (so epochs ``0 .. switch_epoch-1``
    are the first phase), and/or when ``monitor`` has not improved by more than ``min_delta``
    for ``patience`` evaluations; with both, whichever comes first. ``monitor`` is read after
    every validation run, or at every epoch end when the trainer has no validation. Give a
    list of epochs, one per switch, for more than two phases. Every rank switches at the same
    epoch: the monitored value is taken from rank 0.

    **At a switch** (at the end of the epoch, so the next epoch is wholly in the new phase):

    1. with ``restore_best``, the weights of the best ``monitor`` value of the ending phase
       are loaded back;
    2. the DataModule gets ``set_phase(next)`` and Lightning builds the train loader anew;
    3. the optimizers and LR schedulers are built again by the module's
       ``configure_optimizers`` (fresh state, schedules restart), and every learning rate
       they start from is multiplied by ``lr_scale``;
    4. the submodules named in ``freeze`` are frozen for the first ``freeze_epochs`` epochs
       of the new phase.

    **Freezing policy.** A frozen submodule is held in eval mode (its norm layers use and
    keep their running statistics, dropout is off) and its gradients are dropped just before
    each optimizer step, so optimizers skip its parameters entirely: no update, no weight
    decay, no optimizer state. Its parameters stay ``requires_grad=True``, so DDP keeps
    synchronising them and nothing needs rebuilding when they thaw (the gradients are still
    computed, which costs a backward pass through them).

    **Resuming.** The mutable state is in :meth:`state_dict` (primitives only). A run stopped
    after a switch resumes in the phase it was in, with the rebuilt optimizer's state; one
    stopped before still switches at the configured epoch or plateau. The best weights that
    ``restore_best`` holds are kept in memory (one CPU copy of the model) and not written to
    checkpoints, which would otherwise each carry a second copy of the model: a run resumed
    in the middle of a phase restores the best weights seen after the resume (it warns).

    A ``ReduceLROnPlateau`` scheduler built at a switch is stepped once, at the end of that
    epoch, with the ending phase's metric (Lightning steps plateau schedulers after
    ``on_train_epoch_end``); other schedulers start the new phase at their first step.

    **Other callbacks.** ``EarlyStopping`` and ``ModelCheckpoint`` keep their best scores
    across the switch. Monitor a real-data metric with them, give ``EarlyStopping`` a
    patience larger than this callback's, or the phase change may look like a plateau.

    The phase index is logged as ``bridge/phase`` every epoch, and each switch is reported in
    one log line.

    Args:
        switch_epoch: Epoch at which the second phase starts (>= 1), or one epoch per switch,
            strictly increasing. ``None`` switches on a plateau of ``monitor`` only.
        monitor: Logged metric whose plateau triggers a switch (e.g. ``"val/loss"``).
        mode: ``"min"`` or ``"max"``: whether lower or higher ``monitor`` is better.
        patience: Evaluations without improvement before a switch (>= 1).
        min_delta: Smallest change of ``monitor`` that counts as an improvement (>= 0).
        lr_scale: Factor on the rebuilt optimizers' learning rates (> 0), e.g. 0.1.
        freeze: Names of submodules to freeze after a switch (e.g. ``["backbone"]``), as
            ``LightningModule.get_submodule`` reads them.
        freeze_epochs: Epochs to keep ``freeze`` frozen after each switch.
        restore_best: Load the best weights of the ending phase back before the switch
            (needs ``monitor``; see *Resuming*).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> bridge = BridgedTransfer(switch_epoch=5, lr_scale=0.1, freeze=["backbone"],
        ...                          freeze_epochs=1)
        >>> trainer = Trainer(max_epochs=10, callbacks=[bridge], logger=False)
    """

    def __init__(
        self,
        switch_epoch: int | Sequence[int] | None = None,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        lr_scale: float = 1.0,
        freeze: Sequence[str] = (),
        freeze_epochs: int = 0,
        restore_best: bool = False,
    ) -> None:
        super().__init__()
        self.switch_epochs = _check_switch_epochs(switch_epoch)
        if not self.switch_epochs and monitor is None:
            msg = "BridgedTransfer needs switch_epoch or monitor (or both), got neither"
            raise ValueError(msg)
        if mode not in ("min", "max"):
            msg = f"mode must be 'min' or 'max', got {mode!r}"
            raise ValueError(msg)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            msg = f"patience must be an integer >= 1, got {patience!r}"
            raise ValueError(msg)
        if not math.isfinite(min_delta) or min_delta < 0:
            msg = f"min_delta must be a finite number >= 0, got {min_delta!r}"
            raise ValueError(msg)
        if not math.isfinite(lr_scale) or lr_scale <= 0:
            msg = f"lr_scale must be a finite number > 0, got {lr_scale!r}"
            raise ValueError(msg)
        if isinstance(freeze, str):
            freeze = [freeze]
        if not isinstance(freeze_epochs, int) or freeze_epochs < 0:
            msg = f"freeze_epochs must be an integer >= 0, got {freeze_epochs!r}"
            raise ValueError(msg)
        if bool(freeze) != (freeze_epochs > 0):
            msg = (
                "freeze and freeze_epochs go together: name the submodules to freeze and for "
                f"how many epochs, got freeze={list(freeze)} and freeze_epochs={freeze_epochs}"
            )
            raise ValueError(msg)
        if restore_best and monitor is None:
            msg = "restore_best=True needs monitor: the best weights are chosen by it"
            raise ValueError(msg)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = float(min_delta)
        self.lr_scale = float(lr_scale)
        self.freeze = list(freeze)
        self.freeze_epochs = freeze_epochs
        self.restore_best = restore_best

        # Mutable state: everything below is saved by state_dict().
        self.phase_index = 0
        self.phase_start_epoch = 0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.switches: list[dict[str, Any]] = []
        self._best_weights: dict[str, torch.Tensor] | None = None

        self._phases: tuple[str, ...] = ()
        self._frozen_modules: list[nn.Module] = []
        self._frozen_now = False

    # ------------------------------------------------------------------ checks
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = _datamodule(trainer)
        if datamodule is None:
            msg = (
                "BridgedTransfer switches the training data through a DataModule, but none was "
                "given: call trainer.fit(model, datamodule=...) with one that has "
                + "; ".join(f"{k} ({v})" for k, v in PHASE_PROTOCOL.items())
            )
            raise TypeError(msg)
        missing = missing_phase_members(datamodule)
        if missing:
            msg = (
                f"{type(datamodule).__name__} lacks what BridgedTransfer needs: "
                + "; ".join(f"{name} ({PHASE_PROTOCOL[name]})" for name in missing)
                + ". Add them, or use lightning_synth.data.SynthRealDataModule(strategy='bridged')"
            )
            raise TypeError(msg)
        self._phases = tuple(cast(SupportsPhases, datamodule).phases)
        if len(self._phases) < 2:
            msg = (
                f"BridgedTransfer needs a DataModule with at least two phases, got "
                f"{list(self._phases)}; use strategy='bridged'"
            )
            raise ValueError(msg)
        if len(self.switch_epochs) > len(self._phases) - 1:
            msg = (
                f"switch_epoch lists {len(self.switch_epochs)} switches {self.switch_epochs}, but "
                f"the phases {list(self._phases)} allow only {len(self._phases) - 1}"
            )
            raise ValueError(msg)
        if isinstance(trainer.strategy, DeepSpeedStrategy):
            msg = (
                "BridgedTransfer rebuilds optimizers, which the DeepSpeed strategy does not support"
            )
            raise RuntimeError(msg)
        names = [name for name, _ in pl_module.named_children()]
        for name in self.freeze:
            try:
                pl_module.get_submodule(name)
            except AttributeError:
                msg = (
                    f"freeze names {name!r}, which {type(pl_module).__name__} lacks; "
                    f"its children are {names}"
                )
                raise ValueError(msg) from None
        # A trainer that ran fit before still holds that loader; this also fails early when
        # Lightning's internals changed and the reload fallback is not set.
        request_train_dataloader_reload(trainer)

    # ------------------------------------------------------------------ state
    @property
    def phase(self) -> str:
        """The current phase name (known from ``setup`` on)."""
        return self._phases[self.phase_index] if self._phases else ""

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "phase_index": self.phase_index,
            "phase_start_epoch": self.phase_start_epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "switches": [dict(record) for record in self.switches],
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.phase_index = int(state_dict["phase_index"])
        self.phase_start_epoch = int(state_dict["phase_start_epoch"])
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]
        self.wait = int(state_dict["wait"])
        self.switches = [dict(record) for record in state_dict["switches"]]
        self._best_weights = None
        if self.restore_best and self.best_score is not None:
            # The weights are not in checkpoints (see the class docs): restart the tracking,
            # so that the switch restores the best weights seen from here on.
            rank_zero_warn(
                f"BridgedTransfer: resumed with restore_best; the best weights before the "
                f"checkpoint ({self.monitor}={self.best_score:.6g} at epoch {self.best_epoch}) "
                "are not stored in it, so the best weights from here on will be restored"
            )
            self.best_score, self.best_epoch, self.wait = None, None, 0

    # ------------------------------------------------------------------ hooks
    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Runs after a checkpoint's callback state is restored and before the first train
        # loader is built, so a resumed run starts in the phase it stopped in.
        if self.phase_index >= len(self._phases):
            msg = (
                f"the checkpoint is in phase {self.phase_index}, but the DataModule has only "
                f"the phases {list(self._phases)}"
            )
            raise ValueError(msg)
        _datamodule(trainer).set_phase(self.phase)
        self._frozen_modules = [pl_module.get_submodule(name) for name in self.freeze]

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Loop progress and optimizer states are restored by now. A checkpoint written after
        # the last epoch of a phase but before this callback's on_train_epoch_end (e.g. by
        # ModelCheckpoint at validation end) resumes with the switch still due: do it now.
        while (reason := self._due_switch(trainer.current_epoch)) is not None:
            self._switch(trainer, pl_module, reason, trainer.current_epoch)

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        frozen = self._is_frozen(trainer.current_epoch)
        if self._frozen_now and not frozen:
            for module in self._frozen_modules:
                module.train()
            rank_zero_info(
                f"BridgedTransfer: epoch {trainer.current_epoch}: unfroze {', '.join(self.freeze)}"
            )
        self._frozen_now = frozen
        pl_module.log(
            "bridge/phase", float(self.phase_index), on_step=False, on_epoch=True, sync_dist=True
        )

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Lightning switches the whole module back to train mode after validation and at the
        # start of fit; hold frozen submodules in eval mode for every batch.
        if self._frozen_now:
            for module in self._frozen_modules:
                module.eval()

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        # Gradients are already reduced across ranks here; dropping them makes the optimizer
        # skip these parameters (no step, no weight decay, no state), and gradient clipping,
        # which runs after this hook, ignore them.
        if self._frozen_now:
            for module in self._frozen_modules:
                for parameter in module.parameters():
                    parameter.grad = None

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.monitor is None:
            return
        self._update_monitor(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.monitor is not None and not trainer.enable_validation:
            self._update_monitor(trainer, pl_module)
        reason = self._due_switch(trainer.current_epoch + 1)
        if reason is not None:
            self._switch(trainer, pl_module, reason, trainer.current_epoch + 1)

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.phase_index < len(self._phases) - 1:
            rank_zero_warn(
                f"BridgedTransfer: training ended in phase {self.phase!r} "
                f"({self.phase_index + 1} of {len(self._phases)}); the phases "
                f"{list(self._phases[self.phase_index + 1 :])} never ran. Raise max_epochs or "
                "lower switch_epoch/patience."
            )

    # ------------------------------------------------------------------ internals
    def _is_frozen(self, epoch: int) -> bool:
        return (
            bool(self.freeze)
            and self.phase_index > 0
            and epoch < self.phase_start_epoch + self.freeze_epochs
        )

    def _due_switch(self, next_epoch: int) -> str | None:
        """Why the phase should change before ``next_epoch`` runs, or None."""
        if self.phase_index >= len(self._phases) - 1:
            return None
        if self.phase_index < len(self.switch_epochs):
            deadline = self.switch_epochs[self.phase_index]
            if next_epoch >= deadline:
                return f"switch_epoch {deadline} reached"
        if self.monitor is not None and self.wait >= self.patience:
            return (
                f"{self.monitor} did not improve for {self.wait} evaluations "
                f"(best {self.best_score:.6g} at epoch {self.best_epoch})"
            )
        return None

    def _update_monitor(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)  # type: ignore[arg-type]
        if value is None:
            available = sorted(trainer.callback_metrics)
            msg = (
                f"BridgedTransfer monitors {self.monitor!r}, which was not logged; "
                f"logged metrics are {available}"
            )
            raise RuntimeError(msg)
        # Every rank must take the same decision: use rank 0's value.
        score = float(trainer.strategy.broadcast(float(value), src=0))
        if not math.isfinite(score):
            rank_zero_warn(
                f"BridgedTransfer: {self.monitor} is {score}; it counts as no improvement"
            )
            improved = False
        elif self.best_score is None:
            improved = True
        elif self.mode == "min":
            improved = score < self.best_score - self.min_delta
        else:
            improved = score > self.best_score + self.min_delta
        if improved:
            self.best_score, self.best_epoch, self.wait = score, trainer.current_epoch, 0
            if self.restore_best and self.phase_index < len(self._phases) - 1:
                self._best_weights = {
                    key: tensor.detach().to("cpu", copy=True)
                    for key, tensor in pl_module.state_dict().items()
                }
        else:
            self.wait += 1

    def _switch(
        self, trainer: Trainer, pl_module: LightningModule, reason: str, next_epoch: int
    ) -> None:
        old, new = self._phases[self.phase_index], self._phases[self.phase_index + 1]
        actions = []
        if self.restore_best and self._best_weights is not None:
            pl_module.load_state_dict(self._best_weights)
            actions.append(
                f"restored the best {old!r} weights (epoch {self.best_epoch}, "
                f"{self.monitor}={self.best_score:.6g})"
            )
        elif self.restore_best:
            rank_zero_warn(
                f"BridgedTransfer: restore_best is set, but {self.monitor} was never evaluated "
                f"in phase {old!r}; fine-tuning starts from the last weights"
            )
        _datamodule(trainer).set_phase(new)
        request_train_dataloader_reload(trainer)
        actions.append("rebuilt the train dataloader")
        trainer.strategy.setup_optimizers(trainer)
        if self.lr_scale != 1.0:
            _scale_learning_rates(trainer, self.lr_scale)
        lrs = sorted(
            {f"{group['lr']:.3g}" for opt in trainer.optimizers for group in opt.param_groups}
        )
        actions.append(f"rebuilt the optimizer (lr {', '.join(lrs)})")
        if self.freeze:
            actions.append(f"froze {', '.join(self.freeze)} for {self.freeze_epochs} epoch(s)")

        self.switches.append({"epoch": next_epoch, "from": old, "to": new, "reason": reason})
        self.phase_index += 1
        self.phase_start_epoch = next_epoch
        self.best_score, self.best_epoch, self.wait = None, None, 0
        self._best_weights = None
        rank_zero_info(
            f"BridgedTransfer: from epoch {next_epoch}: {old} -> {new} ({reason}); "
            + "; ".join(actions)
        )


def _datamodule(trainer: Trainer) -> Any:
    """The trainer's DataModule, or None when loaders were passed to ``fit`` directly."""
    return getattr(trainer, "datamodule", None)


def _check_switch_epochs(switch_epoch: int | Sequence[int] | None) -> list[int]:
    if switch_epoch is None:
        return []
    if isinstance(switch_epoch, str) or not isinstance(switch_epoch, int | Sequence):
        msg = f"switch_epoch must be an integer >= 1 (or a list of them), got {switch_epoch!r}"
        raise ValueError(msg)
    epochs = [switch_epoch] if isinstance(switch_epoch, int) else list(switch_epoch)
    for value in epochs:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"switch_epoch must be an integer >= 1 (or a list of them), got {switch_epoch!r}"
            raise ValueError(msg)
    if any(later <= earlier for earlier, later in itertools.pairwise(epochs)):
        msg = f"switch_epoch must be strictly increasing, got {switch_epoch!r}"
        raise ValueError(msg)
    if not epochs:
        msg = "switch_epoch must name at least one epoch, got an empty list"
        raise ValueError(msg)
    return epochs


def _scale_learning_rates(trainer: Trainer, scale: float) -> None:
    """Multiply every learning rate the optimizers and their schedulers start from.

    The schedule that follows is the one ``configure_optimizers`` built, scaled by ``scale``
    at every step (tests/test_bridged_transfer.py checks LambdaLR, SequentialLR of LinearLR
    and CosineAnnealingLR, OneCycleLR and ExponentialLR; ReduceLROnPlateau keeps its
    absolute ``min_lr``). torch has no
    public way to rescale a built scheduler; three of its attributes are written here:
    ``base_lrs`` (public, what closed-form schedules start from), the children of
    ``SequentialLR``/``ChainedScheduler`` (``_schedulers``, so each child is rescaled too) and
    ``_last_lr`` (what ``get_last_lr()`` reports until the next step).
    """
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            for key in _LR_KEYS:
                if key in group and isinstance(group[key], int | float | torch.Tensor):
                    group[key] = group[key] * scale
    for config in trainer.lr_scheduler_configs:
        for scheduler in _nested_schedulers(config.scheduler):
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [lr * scale for lr in scheduler.base_lrs]
            if isinstance(getattr(scheduler, "eta_min", None), int | float):
                scheduler.eta_min = scheduler.eta_min * scale  # CosineAnnealingLR's floor
            if hasattr(scheduler, "_last_lr"):
                scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def _nested_schedulers(scheduler: Any) -> list[Any]:
    """``scheduler`` and, for SequentialLR and ChainedScheduler, every scheduler inside it."""
    found = [scheduler]
    for child in getattr(scheduler, "_schedulers", ()):
        found += _nested_schedulers(child)
    return found
