"""W&B logging that needs no account, and where a run's outputs go.

The recipes log through :class:`WandbLogger`, Lightning's ``WandbLogger`` with two changes:

- ``offline=None`` (the default) decides for itself: online when ``WANDB_MODE`` says so, or
  when an API key is configured (``WANDB_API_KEY``, or an entry for the W&B host in
  ``~/.netrc``, which is what ``wandb login`` writes); offline otherwise, without asking
  anything. ``WANDB_MODE`` always wins (``offline``, ``online``, ``disabled``).
- When the run ends it prints where the run was written (and, offline, how to upload it).

:func:`run_directory` is the folder of a run's outputs (checkpoints, config, results) for
any logger.

Metrics named in ``summary_max`` (globs, e.g. ``val/*``) keep their best value as the run's
summary, which is what a W&B sweep optimises; W&B keeps the last value otherwise.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

OFFLINE_MODES = ("offline", "dryrun")


def run_directory(trainer: Trainer) -> Path:
    """The folder of this run's outputs, where its checkpoints go too.

    ``<save_dir>/<name>/<version>`` of the first logger, as Lightning's ``ModelCheckpoint``
    lays it out: ``lightning_logs/version_0`` for a CSV logger, ``<project>/<run id>`` for
    W&B; the trainer's ``default_root_dir`` without a logger.
    """
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    save_dir = logger.save_dir or trainer.default_root_dir
    version = logger.version
    version = version if isinstance(version, str) else f"version_{version}"
    return Path(save_dir) / str(logger.name) / version


def wandb_account_configured() -> bool:
    """Whether W&B could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not path.is_file():
        return False
    try:
        return netrc.netrc(path).authenticators(host or "api.wandb.ai") is not None
    except (netrc.NetrcParseError, OSError):
        return False


def resolve_offline(offline: bool | None) -> bool:
    """``offline`` itself, or for None: what ``WANDB_MODE`` says, else offline without an account.

    Raises:
        ValueError: If ``WANDB_MODE`` holds a mode W&B does not know.
    """
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    known = (*OFFLINE_MODES, "online", "run", "disabled", "")
    if mode not in known:
        msg = f"WANDB_MODE must be one of {known[:-1]}, got {os.environ['WANDB_MODE']!r}"
        raise ValueError(msg)
    if offline is not None:
        return offline
    if mode in OFFLINE_MODES:
        return True
    if mode in ("online", "run", "disabled"):
        return False
    return not wandb_account_configured()


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, offline unless an account is configured (see the module).

    Args:
        name: Display name of the run.
        save_dir: Folder of the W&B files (``save_dir/wandb/``) and of the run's checkpoints
            (``save_dir/<project>/<run id>/``).
        project: W&B project.
        offline: True or False to force; None decides (see :func:`resolve_offline`).
        log_model: Upload checkpoints as artifacts (online only).
        summary_max: Metric globs whose summary is their maximum (e.g. ``["val/*"]``).
        **kwargs: Passed on to Lightning's WandbLogger and ``wandb.init`` (``entity``,
            ``group``, ``tags``, ``mode`` ...).
    """

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | Path = "runs",
        project: str = "lightning-synth",
        offline: bool | None = None,
        log_model: bool | Literal["all"] = False,
        summary_max: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self.offline = resolve_offline(offline)
        if self.offline and log_model:
            msg = (
                f"log_model={log_model!r} needs an online run, but this one is offline "
                "(no W&B account is configured, or WANDB_MODE=offline); log in with "
                "`wandb login` or set log_model=false"
            )
            raise ValueError(msg)
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            name=name,
            save_dir=os.fspath(save_dir),
            project=project,
            offline=self.offline,
            log_model=log_model,
            **kwargs,
        )
        self.summary_max = tuple(summary_max)

    @property
    @override
    def experiment(self) -> Any:
        created = self._experiment is None
        run = super().experiment
        if created and getattr(rank_zero_only, "rank", 0) == 0 and hasattr(run, "define_metric"):
            for pattern in self.summary_max:
                run.define_metric(pattern, summary="max")
        return run

    @override
    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        disabled = os.environ.get("WANDB_MODE", "").strip().lower() == "disabled"
        if self._experiment is None or disabled or getattr(self, "_announced", False):
            return
        self._announced = True
        folder = self.run_folder
        if folder is None:
            return
        if self.offline:
            print(f"W&B run written offline to {folder}; upload it with `wandb sync {folder}`")
        else:
            print(f"W&B run {self._experiment.url} (local files in {folder})")

    @property
    def run_folder(self) -> Path | None:
        """The W&B run's local folder (``.../wandb/offline-run-...``), None before it starts."""
        directory = getattr(self._experiment, "dir", None)
        return Path(directory).parent if directory else None

    @rank_zero_only
    def finish(self) -> None:
        """End the W&B run (so that the next logger in this process starts a new one)."""
        if self._experiment is not None:
            self.finalize("success")
            self._experiment.finish()
