from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from helpers import (
    IdDataset,
    PlainDataModule,
    ScriptedScore,
    TinySegmenter,
    quiet_trainer,
    source_sets,
)
from lightning_synth.callbacks import BridgedTransfer, SourceCounter
from lightning_synth.data import SynthRealDataModule


def _datamodule(**kwargs: Any) -> SynthRealDataModule:
    kwargs.setdefault("strategy", "bridged")
    return SynthRealDataModule(
        IdDataset(16, seed=1),
        IdDataset(8, first_id=1000, seed=2),
        val={"real": IdDataset(4, first_id=2000, seed=3)},
        batch_size=4,
        seed=0,
        **kwargs,
    )


def _trainer(root: Path, callbacks: list, max_epochs: int, **kwargs: Any) -> Trainer:
    return quiet_trainer(root, max_epochs, callbacks, **kwargs)


def test_switch_at_epoch_rebuilds_the_train_loader_for_real_data(tmp_path: Path) -> None:
    model, counter = TinySegmenter(), SourceCounter()
    bridge = BridgedTransfer(switch_epoch=2)
    trainer = _trainer(tmp_path, [bridge, counter], max_epochs=4)
    trainer.fit(model, datamodule=_datamodule())
    assert source_sets(model.seen) == {0: {"synthetic"}, 1: {"synthetic"}, 2: {"real"}, 3: {"real"}}
    assert counter.history == [{"synthetic": 16, "real": 0}] * 2 + [{"synthetic": 0, "real": 8}] * 2
    # Every real sample is seen in each real epoch, in a new order.
    real_ids = [[i for _, i in model.seen[epoch]] for epoch in (2, 3)]
    assert sorted(real_ids[0]) == sorted(real_ids[1]) == list(range(1000, 1008))
    assert real_ids[0] != real_ids[1]
    assert trainer.datamodule.phase == "real"
    assert bridge.switches == [
        {"epoch": 2, "from": "synthetic", "to": "real", "reason": "switch_epoch 2 reached"}
    ]
    assert trainer.callback_metrics["bridge/phase"] == 1.0
    assert trainer.callback_metrics["train/samples/real"] == 8.0


def test_switch_rebuilds_optimizer_and_scheduler_with_lr_scale(tmp_path: Path) -> None:
    model = TinySegmenter(lr=0.1, step_gamma=0.5)
    trainer = _trainer(tmp_path, [BridgedTransfer(switch_epoch=2, lr_scale=0.1)], max_epochs=4)
    trainer.fit(model, datamodule=_datamodule())
    assert model.optimizer_ids[0] == model.optimizer_ids[1] != model.optimizer_ids[2]
    # StepLR halves per epoch; after the switch the schedule restarts from 0.1 * 0.1.
    assert model.epoch_lrs == pytest.approx({0: 0.1, 1: 0.05, 2: 0.01, 3: 0.005})


def test_switch_logs_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero")
    trainer = _trainer(tmp_path, [BridgedTransfer(switch_epoch=1, lr_scale=0.5)], max_epochs=2)
    trainer.fit(TinySegmenter(lr=0.1), datamodule=_datamodule())
    lines = [r.getMessage() for r in caplog.records if "BridgedTransfer:" in r.getMessage()]
    assert len(lines) == 1
    assert "from epoch 1: synthetic -> real (switch_epoch 1 reached)" in lines[0]
    assert "rebuilt the train dataloader" in lines[0] and "lr 0.05" in lines[0]


def test_switch_on_plateau_of_monitored_metric(tmp_path: Path) -> None:
    # Improves until epoch 2, then stalls: with patience 2 the switch comes after epoch 4.
    model = ScriptedScore([0.5, 0.6, 0.7, 0.69, 0.7, 0.9, 0.9, 0.9])
    bridge = BridgedTransfer(monitor="val/score", mode="max", patience=2, min_delta=0.005)
    _trainer(tmp_path, [bridge], max_epochs=7).fit(model, datamodule=_datamodule())
    assert bridge.switches[0]["epoch"] == 5
    assert "did not improve for 2 evaluations (best 0.7 at epoch 2)" in bridge.switches[0]["reason"]
    assert source_sets(model.seen)[4] == {"synthetic"} and source_sets(model.seen)[5] == {"real"}


def test_epoch_and_plateau_together_switch_at_whichever_comes_first(tmp_path: Path) -> None:
    model = ScriptedScore([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # keeps improving
    bridge = BridgedTransfer(switch_epoch=3, monitor="val/score", mode="max", patience=1)
    _trainer(tmp_path, [bridge], max_epochs=4).fit(model, datamodule=_datamodule())
    assert bridge.switches[0]["epoch"] == 3


def test_curriculum_steps_through_every_phase(tmp_path: Path) -> None:
    dm = SynthRealDataModule(
        {"random": IdDataset(8), "realistic": IdDataset(8, first_id=100)},
        IdDataset(8, first_id=1000),
        strategy="bridged",
        phases=["random", "realistic", "real"],
        batch_size=4,
    )
    model = TinySegmenter()
    bridge = BridgedTransfer(switch_epoch=[1, 3])
    _trainer(tmp_path, [bridge], max_epochs=4, limit_val_batches=0).fit(model, datamodule=dm)
    pools = {e: {i // 100 for _, i in pairs} for e, pairs in sorted(model.seen.items())}
    assert pools == {0: {0}, 1: {1}, 2: {1}, 3: {10}}
    assert [s["to"] for s in bridge.switches] == ["realistic", "real"]


def test_freeze_holds_backbone_for_k_real_epochs(tmp_path: Path) -> None:
    class Snapshots(TinySegmenter):
        def on_train_epoch_end(self) -> None:
            self.snapshots = getattr(self, "snapshots", {})
            self.snapshots[self.current_epoch] = {
                k: v.detach().clone() for k, v in self.backbone.state_dict().items()
            }
            self.backbone_training = getattr(self, "backbone_training", {})
            self.backbone_training[self.current_epoch] = self.backbone[1].training

    model = Snapshots(lr=0.05)
    bridge = BridgedTransfer(switch_epoch=1, freeze=["backbone"], freeze_epochs=2)
    _trainer(tmp_path, [bridge], max_epochs=4).fit(model, datamodule=_datamodule())
    snaps = model.snapshots
    # Epochs 1 and 2 are frozen: weights and BatchNorm running statistics do not move.
    for key in snaps[0]:
        assert torch.equal(snaps[0][key], snaps[2][key]), key
    assert not torch.equal(snaps[2]["0.weight"], snaps[3]["0.weight"])
    assert not torch.equal(snaps[2]["1.running_mean"], snaps[3]["1.running_mean"])
    assert model.backbone_training == {0: True, 1: False, 2: False, 3: True}
    # The head trains throughout.
    assert model.optimizer_ids[1] == model.optimizer_ids[3]


def test_restore_best_loads_the_best_synthetic_weights_before_fine_tuning(tmp_path: Path) -> None:
    class Recorder(ScriptedScore):
        def on_validation_epoch_end(self) -> None:
            self.after_val = getattr(self, "after_val", {})
            self.after_val[self.current_epoch] = self.head.weight.detach().clone()

        def on_train_epoch_start(self) -> None:
            self.at_start = getattr(self, "at_start", {})
            self.at_start[self.current_epoch] = self.head.weight.detach().clone()

    model = Recorder([0.1, 0.9, 0.2, 0.3], lr=0.1)
    bridge = BridgedTransfer(switch_epoch=3, monitor="val/score", mode="max", restore_best=True)
    _trainer(tmp_path, [bridge], max_epochs=4).fit(model, datamodule=_datamodule())
    assert torch.equal(model.at_start[3], model.after_val[1])
    assert not torch.equal(model.after_val[2], model.after_val[1])
    assert bridge._best_weights is None  # dropped once used
    assert "best_weights" not in bridge.state_dict()


def _checkpointing(root: Path) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1, filename="{epoch}")


def test_resume_after_switch_continues_real_phase_with_optimizer_state(tmp_path: Path) -> None:
    first = TinySegmenter(lr=0.1)
    callbacks = [BridgedTransfer(switch_epoch=1, lr_scale=0.1), _checkpointing(tmp_path)]
    trainer = _trainer(tmp_path, callbacks, max_epochs=3, enable_checkpointing=True)
    trainer.fit(first, datamodule=_datamodule())
    expected_state = trainer.optimizers[0].state_dict()

    resumed = TinySegmenter(lr=0.1)
    bridge = BridgedTransfer(switch_epoch=1, lr_scale=0.1)
    trainer = _trainer(
        tmp_path, [bridge, _checkpointing(tmp_path / "b")], max_epochs=4, enable_checkpointing=True
    )
    trainer.fit(resumed, datamodule=_datamodule(), ckpt_path=tmp_path / "ckpt" / "epoch=2.ckpt")
    assert source_sets(resumed.seen) == {3: {"real"}}
    assert resumed.epoch_lrs[3] == pytest.approx(0.1 * 0.1 * 0.5**2)
    assert bridge.switches == first.trainer.callbacks[0].switches
    state = trainer.optimizers[0].state_dict()["state"]
    # Adam's step counter continues from the checkpoint: 2 real epochs x 2 batches, then 2 more.
    assert float(state[0]["step"]) == float(expected_state["state"][0]["step"]) + 2 == 6


def test_resume_before_switch_still_switches_at_the_configured_epoch(tmp_path: Path) -> None:
    callbacks = [BridgedTransfer(switch_epoch=3), _checkpointing(tmp_path)]
    _trainer(tmp_path, callbacks, max_epochs=2, enable_checkpointing=True).fit(
        TinySegmenter(), datamodule=_datamodule()
    )
    resumed, bridge = TinySegmenter(), BridgedTransfer(switch_epoch=3)
    _trainer(tmp_path, [bridge], max_epochs=5).fit(
        resumed, datamodule=_datamodule(), ckpt_path=tmp_path / "ckpt" / "epoch=1.ckpt"
    )
    assert source_sets(resumed.seen) == {2: {"synthetic"}, 3: {"real"}, 4: {"real"}}
    assert [s["epoch"] for s in bridge.switches] == [3]


def test_resume_from_checkpoint_written_at_validation_end_of_the_last_synthetic_epoch(
    tmp_path: Path,
) -> None:
    # Saved at validation end, before this callback's on_train_epoch_end switches. (By default
    # ModelCheckpoint saves at train epoch end, after the switch, which resumes trivially.)
    ckpt = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{epoch}", save_on_train_epoch_end=False
    )
    _trainer(
        tmp_path, [BridgedTransfer(switch_epoch=2), ckpt], max_epochs=2, enable_checkpointing=True
    ).fit(TinySegmenter(), datamodule=_datamodule())
    saved = torch.load(tmp_path / "ckpt" / "epoch=1.ckpt", weights_only=True)
    assert saved["callbacks"]["BridgedTransfer"]["phase_index"] == 0
    resumed, bridge = TinySegmenter(lr=0.1), BridgedTransfer(switch_epoch=2, lr_scale=0.5)
    _trainer(tmp_path, [bridge], max_epochs=3).fit(
        resumed, datamodule=_datamodule(), ckpt_path=tmp_path / "ckpt" / "epoch=1.ckpt"
    )
    assert source_sets(resumed.seen) == {2: {"real"}}
    assert resumed.epoch_lrs[2] == pytest.approx(0.05)
    assert bridge.switches[0]["epoch"] == 2


def test_state_dict_round_trips_and_is_never_empty() -> None:
    bridge = BridgedTransfer(switch_epoch=2)
    state = bridge.state_dict()
    assert state and state["phase_index"] == 0
    state.update(phase_index=1, phase_start_epoch=2, wait=1, best_score=0.5, best_epoch=1)
    other = BridgedTransfer(switch_epoch=2)
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_datamodule_without_the_protocol_gets_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"PlainDataModule lacks .*phases .*phase .*set_phase"):
        _trainer(tmp_path, [BridgedTransfer(switch_epoch=1)], 2).fit(
            TinySegmenter(), datamodule=PlainDataModule()
        )
    with pytest.raises(
        TypeError, match=r"none was given: call trainer.fit\(model, datamodule=...\)"
    ):
        _trainer(tmp_path, [BridgedTransfer(switch_epoch=1)], 2).fit(
            TinySegmenter(), train_dataloaders=PlainDataModule().train_dataloader()
        )


def test_users_own_datamodule_with_the_protocol_works(tmp_path: Path) -> None:
    class TwoStage(PlainDataModule):
        phases = ("sim", "lab")

        def __init__(self) -> None:
            super().__init__()
            self.phase = "sim"
            self.lab = IdDataset(4, first_id=100)

        def set_phase(self, name: str) -> None:
            self.phase = name

        def train_dataloader(self) -> torch.utils.data.DataLoader:
            data = self.data if self.phase == "sim" else self.lab
            tagged = [{**data[i], "source": self.phase} for i in range(len(data))]
            return torch.utils.data.DataLoader(tagged, batch_size=4)

    model = TinySegmenter()
    _trainer(tmp_path, [BridgedTransfer(switch_epoch=1)], 2).fit(model, datamodule=TwoStage())
    assert source_sets(model.seen) == {0: {"sim"}, 1: {"lab"}}


def test_non_bridged_datamodule_and_unknown_submodule_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two phases, got \\['mixed'\\]"):
        _trainer(tmp_path, [BridgedTransfer(switch_epoch=1)], 2).fit(
            TinySegmenter(), datamodule=_datamodule(strategy="mixed")
        )
    with pytest.raises(
        ValueError, match="freeze names 'encoder'.*children are \\['backbone', 'head'\\]"
    ):
        _trainer(
            tmp_path, [BridgedTransfer(switch_epoch=1, freeze="encoder", freeze_epochs=1)], 2
        ).fit(TinySegmenter(), datamodule=_datamodule())
    with pytest.raises(ValueError, match=r"lists 2 switches \[1, 2\], but the phases"):
        _trainer(tmp_path, [BridgedTransfer(switch_epoch=[1, 2])], 2).fit(
            TinySegmenter(), datamodule=_datamodule()
        )


def test_warns_when_training_ends_before_the_last_phase(tmp_path: Path) -> None:
    with pytest.warns(
        UserWarning, match=r"training ended in phase 'synthetic'.*\['real'\] never ran"
    ):
        _trainer(tmp_path, [BridgedTransfer(switch_epoch=5)], 2).fit(
            TinySegmenter(), datamodule=_datamodule()
        )


def test_monitor_that_is_never_logged_fails_with_the_logged_names(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeError, match=r"monitors 'val/acc', which was not logged; .*'val/loss'"
    ):
        _trainer(tmp_path, [BridgedTransfer(monitor="val/acc")], 2).fit(
            TinySegmenter(), datamodule=_datamodule()
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"switch_epoch": -1}, "switch_epoch must be an integer >= 1 .* got -1"),
        ({"switch_epoch": 0}, "switch_epoch must be an integer >= 1 .* got 0"),
        ({"switch_epoch": 2.5}, r"switch_epoch must be an integer >= 1 .* got 2.5"),
        ({"switch_epoch": "2"}, r"switch_epoch must be an integer >= 1 .* got '2'"),
        ({"switch_epoch": [2, 3.5]}, r"switch_epoch must be an integer >= 1 .* got \[2, 3.5\]"),
        ({"switch_epoch": [3, 2]}, r"strictly increasing, got \[3, 2\]"),
        ({"switch_epoch": []}, "at least one epoch"),
        ({}, "needs switch_epoch or monitor"),
        ({"monitor": "val/loss", "patience": 0}, "patience must be an integer >= 1, got 0"),
        ({"monitor": "val/loss", "mode": "best"}, "mode must be 'min' or 'max', got 'best'"),
        ({"monitor": "val/loss", "min_delta": -1.0}, "min_delta must be a finite number >= 0"),
        ({"switch_epoch": 1, "lr_scale": 0.0}, "lr_scale must be a finite number > 0, got 0.0"),
        ({"switch_epoch": 1, "freeze_epochs": -2}, "freeze_epochs must be an integer >= 0, got -2"),
        ({"switch_epoch": 1, "freeze": ["backbone"]}, "freeze and freeze_epochs go together"),
        ({"switch_epoch": 1, "restore_best": True}, "restore_best=True needs monitor"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BridgedTransfer(**kwargs)


def test_lightning_still_has_the_fit_loop_attribute_we_clear() -> None:
    # If this fails, Lightning changed how the fit loop keeps its train loader: update
    # request_train_dataloader_reload (the fallback is reload_dataloaders_every_n_epochs=1).
    trainer = Trainer(logger=False, enable_checkpointing=False)
    assert hasattr(trainer.fit_loop, "_combined_loader")
    assert "_combined_loader" in trainer.fit_loop.setup_data.__code__.co_names


class ScheduledSegmenter(TinySegmenter):
    """TinySegmenter with a chosen scheduler, recording the LR of every step."""

    def __init__(self, schedule: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedule
        self.step_lrs: list[float] = []

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.step_lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self) -> dict[str, Any]:
        from torch.optim import lr_scheduler as schedulers

        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.schedule == "lambda":
            scheduler: Any = schedulers.LambdaLR(optimizer, lambda step: 1 / (1 + step))
        elif self.schedule == "warmup_cosine":
            scheduler = schedulers.SequentialLR(
                optimizer,
                [
                    schedulers.LinearLR(optimizer, start_factor=0.25, total_iters=2),
                    schedulers.CosineAnnealingLR(optimizer, T_max=6, eta_min=self.lr / 20),
                ],
                milestones=[2],
            )
        elif self.schedule == "one_cycle":
            scheduler = schedulers.OneCycleLR(optimizer, max_lr=self.lr, total_steps=8)
        else:
            scheduler = schedulers.ExponentialLR(optimizer, gamma=0.7)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


@pytest.mark.parametrize("schedule", ["lambda", "warmup_cosine", "one_cycle", "exponential"])
def test_lr_scale_scales_the_whole_rebuilt_schedule(tmp_path: Path, schedule: str) -> None:
    # 16 synthetic samples = 4 steps, then 8 real = 2 steps per epoch: 2 real epochs, 4 steps.
    def run(scale: float, switch: bool) -> list[float]:
        model = ScheduledSegmenter(schedule, lr=0.1)
        data = _datamodule() if switch else _datamodule(strategy="real_only")
        callbacks = [BridgedTransfer(switch_epoch=1, lr_scale=scale)] if switch else []
        _trainer(tmp_path, callbacks, max_epochs=3 if switch else 2).fit(model, datamodule=data)
        return model.step_lrs[4:] if switch else model.step_lrs

    fresh = run(1.0, switch=False)  # the schedule as configure_optimizers builds it
    assert len(fresh) == 4 and len(set(fresh)) > 1
    assert run(1.0, switch=True) == pytest.approx(fresh)
    assert run(0.1, switch=True) == pytest.approx([0.1 * lr for lr in fresh])


def test_checkpoints_hold_no_weights_of_restore_best(tmp_path: Path) -> None:
    model = ScriptedScore([0.1, 0.9, 0.2, 0.3], lr=0.1)
    bridge = BridgedTransfer(switch_epoch=3, monitor="val/score", mode="max", restore_best=True)
    callbacks = [bridge, _checkpointing(tmp_path)]
    _trainer(tmp_path, callbacks, max_epochs=2, enable_checkpointing=True).fit(
        model, datamodule=_datamodule()
    )
    checkpoint = torch.load(tmp_path / "ckpt" / "epoch=1.ckpt", weights_only=True)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "BridgedTransfer" in k]
    assert not any(isinstance(v, torch.Tensor | dict) for v in state.values())
    assert state["best_score"] == pytest.approx(0.9)
    # Resumed, the tracking restarts (with a warning) and the switch still restores the best
    # weights seen after the resume.
    resumed = ScriptedScore([0.1, 0.9, 0.5, 0.3], lr=0.1)
    again = BridgedTransfer(switch_epoch=3, monitor="val/score", mode="max", restore_best=True)
    with pytest.warns(UserWarning, match="are not stored in it"):
        _trainer(tmp_path, [again], max_epochs=4).fit(
            resumed, datamodule=_datamodule(), ckpt_path=tmp_path / "ckpt" / "epoch=1.ckpt"
        )
    assert again.switches[0]["epoch"] == 3


def test_deepspeed_is_refused_by_type() -> None:
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DeepSpeedStrategy

    class Mine(DeepSpeedStrategy):  # a user's subclass is refused too
        pass

    trainer = SimpleNamespace(datamodule=_datamodule(), strategy=Mine.__new__(Mine))
    with pytest.raises(RuntimeError, match="DeepSpeed strategy does not support"):
        BridgedTransfer(switch_epoch=1).setup(trainer, TinySegmenter(), "fit")  # type: ignore[arg-type]


def test_the_automatic_bridge_spaces_its_switches_and_refuses_too_few_epochs() -> None:
    from types import SimpleNamespace

    from lightning_synth.cli import ensure_bridge

    def bridge(epochs: int, phases: tuple[str, ...]) -> list[int]:
        trainer = SimpleNamespace(max_epochs=epochs, callbacks=[], fast_dev_run=False)
        ensure_bridge(trainer, SimpleNamespace(phases=phases))  # type: ignore[arg-type]
        return trainer.callbacks[0].switch_epochs

    assert bridge(12, ("synthetic", "real")) == [6]
    assert bridge(2, ("synthetic", "real")) == [1]
    assert bridge(3, ("random", "realistic", "real")) == [1, 2]
    assert bridge(10, ("random", "realistic", "real")) == [3, 7]
    with pytest.raises(ValueError, match="needs max_epochs >= 2; got max_epochs=1"):
        bridge(1, ("synthetic", "real"))
