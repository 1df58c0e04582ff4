"""The one LightningCLI of the project, and the default run that recipes share."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class LightningSynthCLI(LightningCLI):
    """LightningCLI with the project's defaults.

    - ``default_config``: the recipe's YAML is the default of every subcommand, so
      ``python recipes/x.py fit --model.lr=0.01`` (the form W&B sweep agents pass) works
      without repeating ``--config``;
    - the resolved config is saved with every run (overwritten in a reused log directory);
    - ``seed_everything`` defaults to 0;
    - a DataModule with phases (``strategy="bridged"``) gets a
      :class:`~lightning_synth.callbacks.BridgedTransfer` switching halfway through the
      epochs when the config has none, so ``--data.strategy=bridged`` works as a plain
      option (configure the callback for anything else).
    """

    def __init__(
        self,
        model_class: type[LightningModule] | None = None,
        datamodule_class: type[LightningDataModule] | None = None,
        *,
        default_config: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        parser_kwargs = dict(kwargs.pop("parser_kwargs", {}) or {})
        if default_config is not None:
            defaults = {"default_config_files": [str(default_config)]}
            if kwargs.get("run", True):
                for name in SUBCOMMANDS:
                    parser_kwargs.setdefault(name, defaults)
            else:
                parser_kwargs.update(defaults)
        super().__init__(model_class, datamodule_class, parser_kwargs=parser_kwargs, **kwargs)

    def before_fit(self) -> None:
        """Add a BridgedTransfer when the data has phases and the config has none."""
        ensure_bridge(self.trainer, self.datamodule)


def ensure_bridge(trainer: Trainer, datamodule: LightningDataModule | None) -> None:
    """Append a ``BridgedTransfer(switch_epoch=max_epochs // 2)`` for a phased DataModule.

    Does nothing when the trainer already has one, or when the data has a single phase.
    """
    from lightning_synth.callbacks import BridgedTransfer

    phases = getattr(datamodule, "phases", ())
    callbacks: list[Any] = trainer.callbacks  # type: ignore[attr-defined]
    if len(phases) < 2 or any(isinstance(c, BridgedTransfer) for c in callbacks):
        return
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 2
    switches = [max(1, round(epochs * (k + 1) / len(phases))) for k in range(len(phases) - 1)]
    switches = sorted(set(switches))
    if len(switches) < len(phases) - 1:
        msg = f"max_epochs={epochs} is too few for the {len(phases)} phases {list(phases)}"
        raise ValueError(msg)
    callbacks.append(BridgedTransfer(switch_epoch=switches))
    print(f"bridged transfer: phases {list(phases)}, switching at epochs {switches}")


def run_recipe(
    model_class: type[LightningModule],
    datamodule_class: type[LightningDataModule],
    default_config: str | Path,
    report: Callable[[LightningSynthCLI, Sequence[Mapping[str, float]]], None] | None = None,
    argv: Sequence[str] | None = None,
) -> LightningSynthCLI | None:
    """What a recipe script does.

    With a LightningCLI subcommand first (``fit``, ``test`` ...), run it. Otherwise (no
    arguments, or only ``--key=value`` options) do the recipe's default run: fit with the
    default config, test the best checkpoint, and call ``report`` with the test results.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # From the command line LightningCLI reads sys.argv itself (passing it again warns).
    cli_args = None if argv is None else args
    if args and args[0] in (*SUBCOMMANDS, "-h", "--help"):
        return LightningSynthCLI(
            model_class, datamodule_class, default_config=default_config, args=cli_args
        )
    cli = LightningSynthCLI(
        model_class, datamodule_class, default_config=default_config, args=cli_args, run=False
    )
    ensure_bridge(cli.trainer, cli.datamodule)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    checkpoint = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") or None
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint)
    if report is not None:
        report(cli, results)
    return cli
