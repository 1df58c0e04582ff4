"""The one LightningCLI of the project, and the default run that recipes share."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule, Trainer, seed_everything
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from lightning_synth.loggers import run_directory

SUBCOMMANDS = ("fit", "validate", "test", "predict")
WANDB_LOGGERS = ("lightning_synth.loggers.WandbLogger", "lightning.pytorch.loggers.WandbLogger")
CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"
# jsonargparse 4.49 renamed ``skip_none`` (keep None values when saving) to ``skip_unset``.
_SKIP_UNSET = (
    "skip_unset"
    if tuple(int(p) for p in version("jsonargparse").split(".")[:2]) >= (4, 49)
    else "skip_none"
)


class SaveAndLogConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run's folder and logs it.

    Every logger gets the whole config as hyperparameters, with dotted keys (``data.strategy``,
    ``model.lr``: the names of the CLI options and of a sweep's parameters, apart from the
    module's own hyperparameters that Lightning logs as ``lr`` ...). Only global rank 0
    writes.
    """

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = run_directory(trainer)
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config,
                folder / self.config_filename,
                **{_SKIP_UNSET: False},
                overwrite=self.overwrite,
                multifile=self.multifile,
            )
            # jsonargparse's bookkeeping (``__default_config__`` ...) is not configuration.
            config = {k: v for k, v in self.config.clone().as_dict().items() if k[:2] != "__"}
            flat = dotted(config)
            for logger in trainer.loggers:
                logger.log_hyperparams(flat)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


def dotted(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys; ``class_path``/``init_args`` are kept.

    Example:
        >>> dotted({"model": {"lr": 0.01}, "seed_everything": 0})
        {'model.lr': 0.01, 'seed_everything': 0}
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(dotted(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def sweep_compatible(args: Sequence[str]) -> list[str]:
    """``args`` with ``--key=None`` as ``--key=null``.

    A W&B agent formats a sweep's ``null`` value as Python prints it (``None``), which YAML,
    and so LightningCLI, reads as a string.

    Example:
        >>> sweep_compatible(["--data.simulation.dose=None", "--model.lr=0.01"])
        ['--data.simulation.dose=null', '--model.lr=0.01']
    """
    return [
        arg[: -len("None")] + "null" if arg.startswith("--") and arg.endswith("=None") else arg
        for arg in args
    ]


def without_wandb(logger: Any) -> Any:
    """A logger config with each W&B logger replaced by a CSV logger in the same folder."""
    if isinstance(logger, list):
        return [without_wandb(item) for item in logger]
    if _field(logger, "class_path") not in WANDB_LOGGERS:
        return logger
    save_dir = _field(_field(logger, "init_args") or {}, "save_dir") or "runs"
    return Namespace(class_path=CSV_LOGGER, init_args=Namespace(save_dir=save_dir))


def _field(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict | Namespace) else None


class LightningSynthCLI(LightningCLI):
    """LightningCLI with the project's defaults.

    - ``default_config``: the recipe's YAML is the default of every subcommand, so
      ``python recipes/x.py fit --model.lr=0.01`` (the form W&B sweep agents pass) works
      without repeating ``--config``;
    - the resolved config is saved in every run's folder (:func:`run_directory`) and logged
      to its loggers (:class:`SaveAndLogConfig`);
    - ``--no-wandb`` replaces the config's W&B logger by a CSV logger in the same folder;
    - ``--key=None`` (how a W&B agent passes a sweep's null) means null;
    - ``--seed N`` sets ``seed_everything`` and ``data.seed`` (when the data has one) to N;
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
        kwargs.setdefault("save_config_callback", SaveAndLogConfig)
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

    @override
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, dict | Namespace):
            super().parse_arguments(parser, args)
            return
        given = list(sys.argv[1:] if args is None else args)
        self.config = parser.parse_args(sweep_compatible(given))

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--no-wandb",
            action="store_true",
            help="Log to CSV files (lightning_logs/version_N) instead of W&B.",
        )
        parser.add_argument(
            "--seed",
            type=int | None,
            default=None,
            help="Set seed_everything and data.seed together (one sweep parameter for both).",
        )

    @override
    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("no_wandb") and config.get("trainer"):
            config.trainer.logger = without_wandb(config.trainer.logger)
        seed = config.get("seed")
        if seed is not None:
            # LightningCLI has seeded already (from seed_everything): seed again.
            config.seed_everything = seed_everything(seed, workers=True)
            data = config.get("data")
            if isinstance(data, Namespace) and "seed" in data:
                data.seed = seed

    def before_fit(self) -> None:
        """Add a BridgedTransfer when the data has phases and the config has none."""
        ensure_bridge(self.trainer, self.datamodule)


def ensure_bridge(trainer: Trainer, datamodule: LightningDataModule | None) -> None:
    """Append a BridgedTransfer with evenly spaced switches for a phased DataModule.

    Two phases switch at ``round(max_epochs / 2)``; every phase gets at least one epoch.
    Does nothing when the trainer already has one, or when the data has a single phase.

    Raises:
        ValueError: If ``max_epochs`` is smaller than the number of phases.
    """
    from lightning_synth.callbacks import BridgedTransfer

    phases = getattr(datamodule, "phases", ())
    callbacks: list[Any] = trainer.callbacks  # type: ignore[attr-defined]
    if len(phases) < 2 or any(isinstance(c, BridgedTransfer) for c in callbacks):
        return
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 2
    count = len(phases)
    if getattr(trainer, "fast_dev_run", False):
        # A smoke run of one batch: the first phase only, as Lightning runs one epoch.
        callbacks.append(BridgedTransfer(switch_epoch=list(range(1, count))))
        return
    if epochs < count:
        msg = (
            f"strategy='bridged' trains the {count} phases {list(phases)} one after another, "
            f"each for at least one epoch, so it needs max_epochs >= {count}; got "
            f"max_epochs={epochs}"
        )
        raise ValueError(msg)
    switches: list[int] = []
    for k in range(count - 1):
        # Evenly spaced, at least one epoch per phase, and every switch before the end.
        earliest = switches[-1] + 1 if switches else 1
        latest = epochs - (count - 1 - k)
        switches.append(min(max(round(epochs * (k + 1) / count), earliest), latest))
    callbacks.append(BridgedTransfer(switch_epoch=switches))
    rank_zero_only(print)(
        f"bridged transfer: phases {list(phases)}, switching at epochs {switches}"
    )


def run_recipe(
    model_class: type[LightningModule],
    datamodule_class: type[LightningDataModule],
    default_config: str | Path,
    report: Callable[[LightningSynthCLI, Sequence[Mapping[str, float]]], None] | None = None,
    argv: Sequence[str] | None = None,
    commands: Mapping[str, Callable[[Sequence[str]], None]] | None = None,
) -> LightningSynthCLI | None:
    """What a recipe script does.

    With one of the recipe's own ``commands`` first (e.g. ``predict-folder``), run it with
    the remaining arguments. With a LightningCLI subcommand first (``fit``, ``test`` ...),
    run it. Otherwise (no arguments, or only ``--key=value`` options) do the recipe's
    default run: fit with the default config, test the best checkpoint, call ``report``
    with the test results, and end the W&B run.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    extra = dict(commands or {})
    clash = sorted(set(extra) & set(SUBCOMMANDS))
    if clash:
        msg = f"commands {clash} would hide LightningCLI's subcommands of the same names"
        raise ValueError(msg)
    if args and args[0] in extra:
        extra[args[0]](args[1:])
        return None
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
    finish_wandb(cli.trainer)
    return cli


def finish_wandb(trainer: Trainer) -> None:
    """End the trainer's W&B runs, so that a next run in the process starts its own."""
    from lightning_synth.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.finish()
