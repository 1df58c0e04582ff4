r"""A study grid run locally: every run of a grid sweep spec, resumable, N at a time.

    python -m lightning_synth.experiments.grid recipes/sweeps/pallet_det_grid.yaml \
        --out runs/grid/pallets --records docs/grid_pallets [--jobs 2] \
        [--only data.strategy=real_only,mixed --only seed=0] \
        [--x data.real_fraction] [--hue data.strategy] [--metrics test/ood/map ...] \
        [-- recipe options for every run, e.g. --trainer.max_epochs=2]

The grid is the spec's (no W&B server is involved): each combination of its parameters is a
cell, run as the agent would run it (the same ``--key=value`` options, ``seed`` as the
cell's seed), ``--jobs`` at a time, each with its output in ``<out>/<cell>.log``. A finished
cell leaves a record in ``--records`` (see :mod:`lightning_synth.experiments.cells`) and is
not run again, so the command resumes where it stopped, and a failed cell does not stop the
others (the command exits with 1 and names them). With ``--report`` nothing runs.

It writes, in ``--records``: ``results.csv`` (one row per cell and seed: the parameters,
the metrics, the wall time), ``results.md`` (a table of each metric, mean +- standard
deviation over seeds), ``<metric>-vs-<x>.png`` (a line per ``--hue`` value, a panel per
value of the remaining parameters) and, where there are ID and OOD test sets,
``id-vs-ood.png``.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from lightning_synth.experiments.cells import Cell, recorded, run_cell
from lightning_synth.experiments.sweeps import agent_command, grid_runs, load_sweep


@dataclass(frozen=True)
class GridCell:
    """A cell of the grid: its parameters (without the seed) and its recipe run."""

    parameters: tuple[tuple[str, Any], ...]
    cell: Cell


def _slug(value: Any) -> str:
    text = "_".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def cell_name(parameters: Mapping[str, Any]) -> str:
    """A file-safe name from parameter values (the last part of each dotted name).

    Example:
        >>> cell_name({"data.strategy": "mixed", "data.real_fraction": 0.1})
        'strategy=mixed,real_fraction=0.1'
    """
    return ",".join(f"{key.rsplit('.', 1)[-1]}={_slug(v)}" for key, v in parameters.items())


def parse_only(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["name=a,b", ...]`` -> ``{"name": [a, b]}``, the values read as a YAML list.

    ``0.1`` is a float, ``null`` None, and a value may itself be a list
    (``data.simulation.dose=null,[100, 1200]``).

    Raises:
        ValueError: If an item has no ``=`` or its values are not a YAML list.
    """
    chosen: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            msg = f"--only takes NAME=VALUE[,VALUE...], got {item!r}"
            raise ValueError(msg)
        name, values = item.split("=", 1)
        try:
            chosen[name] = yaml.safe_load(f"[{values}]")
        except yaml.YAMLError as error:
            msg = f"--only {name}: cannot read {values!r} as values ({error})"
            raise ValueError(msg) from error
    return chosen


def grid_cells(
    spec: Mapping[str, Any],
    only: Mapping[str, Sequence[Any]] | None = None,
    recipe_root: Path | None = None,
) -> list[GridCell]:
    """The grid's cells, restricted to the values in ``only`` (parameter -> allowed values).

    Raises:
        ValueError: If ``only`` names a parameter the grid does not have, or keeps no cell.
    """
    runs = grid_runs(spec)
    only = dict(only or {})
    unknown = sorted(set(only) - set(spec["parameters"]))
    if unknown:
        msg = f"--only names {unknown}, which the grid does not sweep ({list(spec['parameters'])})"
        raise ValueError(msg)
    runs = [r for r in runs if all(r[name] in values for name, values in only.items())]
    if not runs:
        msg = f"--only {only} keeps no cell of the grid"
        raise ValueError(msg)
    recipe = Path(spec["program"])
    if recipe_root is not None and not recipe.is_absolute():
        recipe = recipe_root / recipe
    cells = []
    for run in runs:
        parameters = {k: v for k, v in run.items() if k != "seed"}
        options = agent_command(spec, parameters)[3:]
        cell = Cell(recipe, cell_name(parameters), tuple(options), int(run.get("seed", 0)))
        cells.append(GridCell(tuple(parameters.items()), cell))
    return cells


def run_grid(
    cells: Sequence[GridCell],
    scratch: Path,
    records: Path,
    extra: Sequence[str] = (),
    jobs: int = 1,
    report: bool = False,
) -> list[str]:
    """Run every cell without a record, ``jobs`` at a time; the keys of those that failed."""
    if jobs < 1:
        msg = f"jobs must be >= 1, got {jobs}"
        raise ValueError(msg)
    todo = [c.cell for c in cells if recorded(c.cell, records) is None]
    if report or not todo:
        return []
    failed: list[str] = []
    progress = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="grid", unit="run")

    def one(cell: Cell) -> None:
        run_cell(cell, scratch, records, extra, log=scratch / f"{cell.key}.log")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, cell): cell for cell in todo}
        for future in as_completed(futures):
            cell = futures[future]
            try:
                future.result()
            except Exception as error:  # a failed run must not stop the others
                failed.append(cell.key)
                progress.write(f"{cell.key} failed ({error}); see {scratch / f'{cell.key}.log'}")
            progress.set_postfix_str(cell.key, refresh=False)
            progress.update()
    progress.close()
    return failed


def result_rows(cells: Sequence[GridCell], records: Path) -> list[dict[str, Any]]:
    """One row per recorded cell and seed: its parameters, ``seed``, metrics, wall time."""
    import json

    rows = []
    for grid_cell in cells:
        path = records / f"{grid_cell.cell.key}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        row = {name: _value(v) for name, v in grid_cell.parameters}
        row["seed"] = grid_cell.cell.seed
        row.update(record["metrics"])
        row["wall_seconds"] = record.get("wall_seconds")
        rows.append(row)
    return rows


def _value(value: Any) -> Any:
    return "-".join(map(str, value)) if isinstance(value, list | tuple) else value


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """``rows`` as CSV, columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _groups(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


def _spread(values: Sequence[float]) -> str:
    """Mean (+- sd) to three significant digits of the mean, at least three decimals.

    Example:
        >>> _spread([0.846]), _spread([0.0039, 0.0041]), _spread([12.5, 13.5])
        ('0.846', '0.00400 +- 0.00014', '13.000 +- 0.707')
    """
    mean = statistics.mean(values)
    digits = 3 if mean == 0 else max(3, 2 - math.floor(math.log10(abs(mean))))
    text = f"{mean:.{digits}f}"
    return f"{text} +- {statistics.stdev(values):.{digits}f}" if len(values) > 1 else text


def markdown_table(
    rows: Sequence[Mapping[str, Any]], parameters: Sequence[str], metrics: Sequence[str]
) -> str:
    """A row per combination of ``parameters``: each metric's mean +- sd over seeds."""
    header = [p.rsplit(".", 1)[-1] for p in parameters] + list(metrics) + ["seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key, group in _groups(rows, parameters).items():
        cells = [str(v) for v in key]
        cells += [_spread([float(r[m]) for r in group if m in r]) for m in metrics]
        lines.append("| " + " | ".join([*cells, str(len(group))]) + " |")
    return "\n".join(lines) + "\n"


def axis_positions(values: Sequence[Any]) -> tuple[list[Any], bool]:
    """The distinct ``values`` in axis order, and whether they are numbers.

    Numbers are sorted; names (fidelity tiers, synthetic levels) keep the order they first
    come in, which for grid rows is the spec's.

    Example:
        >>> axis_positions([1.0, 0.1, 0.0, 0.1])
        ([0.0, 0.1, 1.0], True)
        >>> axis_positions(["basic", "thermal", "full", "basic"])
        (['basic', 'thermal', 'full'], False)
    """
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in distinct)
    return (sorted(distinct) if numeric else distinct), numeric


def plot_metric(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    x: str,
    hue: str | None,
    panels: Sequence[str],
    path: Path,
) -> None:
    """``metric`` against ``x``, a line per ``hue`` value, a panel per ``panels`` combination.

    Points are means over seeds, with the standard deviation as error bars. A numeric ``x``
    is an axis; other values are categories in the order the rows first have them.
    """
    plt = _pyplot()
    panel_groups = _groups(rows, panels)
    figure, axes = plt.subplots(
        1,
        len(panel_groups),
        figsize=(4.2 * len(panel_groups), 3.4),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    # One colour per hue value in every panel, and the same axes, so panels compare.
    colours = {v: f"C{i}" for i, v in enumerate(dict.fromkeys(r[hue] for r in rows))} if hue else {}
    for axis, (panel, group) in zip(axes[0], panel_groups.items(), strict=True):
        lines = _groups(group, [hue]) if hue else {("all",): list(group)}
        positions, numeric = axis_positions([r[x] for r in group])
        for (label,), line in lines.items():
            points = _groups(line, [x])
            xs = [v for v in positions if (v,) in points]
            means = [statistics.mean(float(r[metric]) for r in points[(v,)]) for v in xs]
            errors = [
                statistics.stdev([float(r[metric]) for r in points[(v,)]])
                if len(points[(v,)]) > 1
                else 0.0
                for v in xs
            ]
            where = xs if numeric else [positions.index(v) for v in xs]
            axis.errorbar(
                where,
                means,
                yerr=errors,
                marker="o",
                capsize=3,
                label=str(label),
                color=colours.get(label, "C0"),
            )
        if not numeric:
            axis.set_xticks(range(len(positions)), [str(p) for p in positions], rotation=20)
        axis.set_xlabel(x)
        axis.set_ylabel(metric)
        title = ", ".join(f"{p.rsplit('.', 1)[-1]}={v}" for p, v in zip(panels, panel, strict=True))
        axis.set_title(title or metric, fontsize=9)
        axis.grid(alpha=0.3)
        _legend(axis, hue)
    _save(plt, figure, path)


def plot_versus(
    rows: Sequence[Mapping[str, Any]],
    first: str,
    second: str,
    hue: str | None,
    path: Path,
    annotate: str | None = None,
) -> None:
    """A point per cell (mean over seeds): ``first`` against ``second``, coloured by ``hue``.

    Each point is labelled with its value of ``annotate`` (e.g. the real fraction), if given.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.0))
    groups = _groups(rows, [hue]) if hue else {("all",): list(rows)}
    for (label,), group in groups.items():
        cells = _groups(group, [k for k in group[0] if _is_parameter(k, first, second)])
        xs = [statistics.mean(float(r[first]) for r in c) for c in cells.values()]
        ys = [statistics.mean(float(r[second]) for r in c) for c in cells.values()]
        points = axis.scatter(xs, ys, label=str(label), alpha=0.8)
        if annotate:
            for where, members in zip(zip(xs, ys, strict=True), cells.values(), strict=True):
                axis.annotate(
                    str(members[0][annotate]),
                    where,
                    textcoords="offset points",
                    xytext=(4, 3),
                    fontsize=7,
                    color=points.get_facecolor()[0],
                )
    if annotate:
        axis.set_title(f"labels: {annotate.rsplit('.', 1)[-1]}", fontsize=9)
    axis.set_xlabel(first)
    axis.set_ylabel(second)
    axis.grid(alpha=0.3)
    _legend(axis, hue)
    _save(plt, figure, path)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _legend(axis: Any, hue: str | None) -> None:
    if hue:
        axis.legend(fontsize=8, title=hue.rsplit(".", 1)[-1], title_fontsize=8)


def _save(plt: Any, figure: Any, path: Path) -> None:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _is_parameter(key: str, *metrics: str) -> bool:
    return key not in metrics and key != "seed" and key != "wall_seconds" and "/" not in key


def write_outputs(
    rows: Sequence[Mapping[str, Any]],
    parameters: Sequence[str],
    records: Path,
    metrics: Sequence[str] | None = None,
    x: str | None = None,
    hue: str | None = None,
) -> list[Path]:
    """Write the CSV, the Markdown table and the plots of ``rows``; the paths written."""
    if not rows:
        return []
    metrics = list(metrics or default_metrics(rows))
    x = x or default_x(parameters)
    hue = hue if hue is not None else default_hue(parameters, x)
    written = [records / "results.csv", records / "results.md"]
    write_csv(rows, written[0])
    written[1].write_text(markdown_table(rows, parameters, metrics))
    panels = [p for p in parameters if p not in (x, hue)]
    for metric in metrics:
        path = records / f"{metric.replace('/', '_')}-vs-{x.rsplit('.', 1)[-1]}.png"
        plot_metric(rows, metric, x, hue, panels, path)
        written.append(path)
    for metric in metrics:
        if metric.startswith("test/id/"):
            other = metric.replace("test/id/", "test/ood/", 1)
            if all(other in row for row in rows):
                path = records / f"id-vs-ood-{metric.rsplit('/', 1)[-1]}.png"
                plot_versus(rows, metric, other, hue, path, annotate=x if x != hue else None)
                written.append(path)
    return written


def default_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The test metrics a study reports: ``test/<set>/map`` and ``test/<set>/f1``."""
    names = [k for k in rows[0] if k.startswith("test/") and k.rsplit("/", 1)[-1] in ("map", "f1")]
    return names or [k for k in rows[0] if k.startswith("test/")]


def default_x(parameters: Sequence[str]) -> str:
    """``data.real_fraction`` when swept, else the first parameter."""
    return "data.real_fraction" if "data.real_fraction" in parameters else parameters[0]


def default_hue(parameters: Sequence[str], x: str) -> str | None:
    """``data.strategy`` when swept (and not ``x``), else the next parameter, else none."""
    if "data.strategy" in parameters and x != "data.strategy":
        return "data.strategy"
    rest = [p for p in parameters if p != x]
    return rest[0] if rest else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (see the module docstring); 1 if a cell failed."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, extra = args_list[:cut], args_list[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m lightning_synth.experiments.grid", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("spec", type=Path, help="a grid sweep spec (recipes/sweeps/*_grid.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="scratch folder of the runs")
    parser.add_argument("--records", type=Path, required=True, help="records and results")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--only", action="append", default=[], metavar="NAME=V1,V2")
    parser.add_argument("--metrics", nargs="+", help="metrics of the table and plots")
    parser.add_argument("--x", help="the plots' x axis (default data.real_fraction)")
    parser.add_argument("--hue", help="a line per value of this (default data.strategy)")
    parser.add_argument("--report", action="store_true", help="run nothing; write the results")
    args = parser.parse_args(args_list)
    spec = load_sweep(args.spec)
    if spec["method"] != "grid":
        parser.error(f"{args.spec} is a {spec['method']} sweep; the grid runner needs a grid")
    try:
        cells = grid_cells(spec, parse_only(args.only), recipe_root=Path.cwd())
    except ValueError as error:
        parser.error(str(error))
    if not cells[0].cell.recipe.is_file():
        parser.error(f"no recipe at {cells[0].cell.recipe}: run from the repository root")
    failed = run_grid(cells, args.out, args.records, extra, args.jobs, args.report)
    parameters = [k for k in spec["parameters"] if k != "seed"]
    rows = result_rows(cells, args.records)
    for path in write_outputs(rows, parameters, args.records, args.metrics, args.x, args.hue):
        print(f"wrote {path}")
    print(f"{len(rows)} of {len(cells)} runs recorded in {args.records}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
