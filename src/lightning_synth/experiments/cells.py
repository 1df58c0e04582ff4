"""One cell of a study: a recipe run with given options and seed, recorded once it finished.

A finished run leaves a small JSON record (its metrics, options, wall time and machine) in a
records folder that is meant to be committed; a cell whose record exists is not run again,
so a study resumes where it stopped, on the same machine or another one. The run's own
outputs (cache, checkpoints, logs) go to a scratch folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cell:
    """A recipe run: the recipe script, a name, recipe options and a seed.

    ``cache`` names a rendered-data cache in the scratch folder that this cell shares with
    other cells (None: a cache of its own). Share one only between cells whose rendered sets
    are the same or have different names: a cache refuses a set whose settings differ from
    the ones it was rendered with.
    """

    recipe: Path
    name: str
    options: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    cache: str | None = None

    @property
    def key(self) -> str:
        """File-name stem of the cell's record and scratch folder."""
        return f"{self.name}-seed{self.seed}"


def run_results(directory: Path) -> Path | None:
    """The ``results.json`` of the run in ``directory`` (in ``<name>/<version>/``), if any."""
    found = sorted(directory.glob("*/*/results.json"))
    if len(found) > 1:
        msg = f"{directory} holds the results of several runs: {[str(p) for p in found]}"
        raise RuntimeError(msg)
    return found[0] if found else None


def recorded(cell: Cell, records: Path) -> dict[str, float] | None:
    """The metrics of ``cell`` from its record in ``records``, None if it has not finished.

    A record made with other options than the cell's (its seed, then its options; extra
    options may follow) is an error: it measured something else, e.g. before a condition
    or the recipe's default changed. Rename or remove it.
    """
    record = records / f"{cell.key}.json"
    if not record.exists():
        return None
    payload = json.loads(record.read_text())
    expected = [f"--seed_everything={cell.seed}", f"--data.seed={cell.seed}", *cell.options]
    found = payload.get("recipe_options", [])[: len(expected)]
    if found != expected:
        msg = (
            f"{record} was run with the options {found}, but the cell {cell.key!r} has "
            f"{expected}; rename or remove the record"
        )
        raise ValueError(msg)
    return payload["metrics"]


def run_cell(
    cell: Cell,
    scratch: Path,
    records: Path,
    extra: Sequence[str] = (),
    quiet: bool = False,
    log: Path | None = None,
) -> dict[str, float]:
    """The metrics of ``cell``: from its record, or by running the recipe and recording it.

    The recipe gets ``--seed_everything``, ``--data.seed``, the cell's options, ``extra`` and
    its scratch folder (``--trainer.default_root_dir``, the logger's ``save_dir``, and
    ``--data.cache_dir``: the folder's ``cache``, or ``scratch / cell.cache``); it must
    write ``results.json`` in its run folder there (``<save_dir>/<name>/<version>/``, see
    :func:`lightning_synth.cli.run_directory`: ``lightning_logs/version_0`` for CSV logs).
    What an earlier, unfinished run of the cell left is removed first, except its cache.
    With ``log``, the run's output goes to that file instead of this process's.
    """
    finished = recorded(cell, records)
    if finished is not None:
        return finished
    record = records / f"{cell.key}.json"
    directory = scratch / cell.key
    results = run_results(directory)
    options = [f"--seed_everything={cell.seed}", f"--data.seed={cell.seed}", *cell.options, *extra]
    arguments = [
        *options,
        f"--data.cache_dir={scratch / cell.cache if cell.cache else directory / 'cache'}",
        f"--trainer.default_root_dir={directory}",
        f"--trainer.logger.init_args.save_dir={directory}",
        "--trainer.enable_progress_bar=false",
    ]
    seconds = None
    if results is None:
        # A run killed before it finished leaves logs (its rendered cache resumes); start
        # them afresh so that the new run is the only one in the folder.
        for leftover in directory.glob("*"):
            if leftover.name != "cache":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        start = time.perf_counter()
        command = [sys.executable, str(cell.recipe), *arguments]
        if log is not None:
            # The run's output (both streams) in its own file, e.g. when cells run at once.
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as stream:
                subprocess.run(command, check=True, stdout=stream, stderr=subprocess.STDOUT)
        else:
            print(f"--- running {cell.key} -> {directory}", flush=True)
            output = subprocess.DEVNULL if quiet else None
            subprocess.run(command, check=True, stdout=output)
        seconds = round(time.perf_counter() - start)
        if log is None:
            print(f"--- {cell.key}: {seconds} s", flush=True)
        results = run_results(directory)
        if results is None:
            msg = f"{cell.recipe} finished but wrote no results.json under {directory}"
            raise FileNotFoundError(msg)
    metrics = json.loads(results.read_text())
    records.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "condition": cell.name,
        "seed": cell.seed,
        "recipe": cell.recipe.name,
        "recipe_options": options,  # the run's own folders left out
        "metrics": metrics,
        "wall_seconds": seconds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    record.write_text(json.dumps(payload, indent=2) + "\n")
    return metrics


def run_cells(
    cells: Sequence[Cell],
    scratch: Path,
    records: Path,
    extra: Sequence[str] = (),
    report: bool = False,
) -> list[dict[str, float]]:
    """The metrics of each of ``cells`` (see :func:`run_cell`), in order.

    With ``report``, nothing runs: only the cells already recorded are returned.
    """
    if report:
        return [m for m in (recorded(cell, records) for cell in cells) if m is not None]
    return [run_cell(cell, scratch, records, extra) for cell in cells]


def summarise(values: Sequence[float]) -> str:
    """``mean +- sample standard deviation`` with three decimals (just the mean for one).

    Example:
        >>> summarise([0.5, 0.7]), summarise([0.25])
        ('0.600 +- 0.141', '0.250')
    """
    spread = f" +- {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{spread}"
