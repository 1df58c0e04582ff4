"""The W&B sweep specs: they parse, and every command an agent would start runs the recipe."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import load_script, tiny_hrtem_options, tiny_pallet_options
from lightning_synth.cli import LightningSynthCLI, sweep_compatible
from lightning_synth.experiments.sweeps import agent_command, grid_runs, load_sweep, sample_runs

ROOT = Path(__file__).parents[1]
SPECS = sorted((ROOT / "recipes" / "sweeps").glob("*.yaml"))
RECIPES = {
    "recipes/pallet_det.py": ("pallet_det.yaml", tiny_pallet_options),
    "recipes/hrtem_seg.py": ("hrtem_seg.yaml", tiny_hrtem_options),
}
#: What each recipe logs per validation set (the names a sweep can optimise).
VALIDATION_METRICS = {
    "recipes/pallet_det.py": [
        f"val/{s}/{m}" for s in ("id", "ood") for m in ("map", "map_50", "map_75", "mar_100")
    ],
    "recipes/hrtem_seg.py": [f"val/val/{m}" for m in ("f1", "iou", "precision", "recall")],
}


class ParseOnlyCLI(LightningSynthCLI):
    """The recipe's CLI up to, not including, building the model, data and trainer."""

    def instantiate_classes(self) -> None:
        pass


def _runs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return grid_runs(spec) if spec["method"] == "grid" else sample_runs(spec, 6, seed=1)


def _same(parsed: Any, value: Any) -> bool:
    if isinstance(value, list):
        return [float(v) for v in parsed] == [float(v) for v in value]
    return parsed == value


def test_there_are_grid_and_bayes_specs_for_both_recipes() -> None:
    kinds = {(load_sweep(p)["program"], load_sweep(p)["method"]) for p in SPECS}
    assert kinds == {(r, m) for r in RECIPES for m in ("grid", "bayes")}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_a_spec_optimises_a_logged_metric_by_its_best_value(path: Path) -> None:
    spec = load_sweep(path)
    assert (ROOT / spec["program"]).is_file()
    metric = spec["metric"]["name"]
    assert metric in VALIDATION_METRICS[spec["program"]] and spec["metric"]["goal"] == "maximize"
    config = yaml.safe_load(
        (ROOT / "recipes" / "configs" / RECIPES[spec["program"]][0]).read_text()
    )
    summary_max = config["trainer"]["logger"]["init_args"]["summary_max"]
    assert any(fnmatch.fnmatch(metric, pattern) for pattern in summary_max)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_agent_command_parses_through_the_recipe_cli(path: Path) -> None:
    spec = load_sweep(path)
    recipe = load_script(ROOT / spec["program"])
    config, _ = RECIPES[spec["program"]]
    cli = ParseOnlyCLI(
        recipe.DetectionTask if "pallet" in spec["program"] else recipe.SegmentationTask,
        recipe.PalletDataModule if "pallet" in spec["program"] else recipe.HRTEMDataModule,
        default_config=ROOT / "recipes" / "configs" / config,
        args=[],
        run=False,
    )
    runs = _runs(spec)
    if spec["method"] == "grid":
        sizes = [len(p.get("values", [p.get("value")])) for p in spec["parameters"].values()]
        assert len(runs) == len({tuple(map(str, r.values())) for r in runs}) == math.prod(sizes)
    for run in runs:
        command = agent_command(spec, run, interpreter="python")
        assert command[:3] == ["/usr/bin/env", "python", spec["program"]]
        arguments = command[3:]
        assert len(arguments) == len(run) and all(a.startswith("--") for a in arguments)
        parsed = cli.parser.parse_args(sweep_compatible(arguments))
        for name, value in run.items():
            assert _same(parsed[name], value), (name, parsed[name], value)


def test_seed_sets_the_global_and_the_data_seed() -> None:
    recipe = load_script(ROOT / "recipes" / "pallet_det.py")
    cli = ParseOnlyCLI(
        recipe.DetectionTask,
        recipe.PalletDataModule,
        default_config=ROOT / "recipes" / "configs" / "pallet_det.yaml",
        args=["--seed=7"],
        run=False,
    )
    assert cli.config.seed_everything == 7 and cli.config.data.seed == 7


def _covering_runs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs in which every value of every parameter appears at least once."""
    choices = {
        name: p.get("values", [p.get("value")])
        for name, p in spec["parameters"].items()
        if "distribution" not in p
    }
    longest = max(len(values) for values in choices.values())
    drawn = sample_runs(spec, longest, seed=2)
    return [
        {**drawn[i], **{name: values[i % len(values)] for name, values in choices.items()}}
        for i in range(longest)
    ]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_agent_commands_train_a_step(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Each value of each parameter in at least one run of one training step, end to end."""
    spec = load_sweep(path)
    recipe = load_script(ROOT / spec["program"])
    _, tiny = RECIPES[spec["program"]]
    for index, run in enumerate(_covering_runs(spec)):
        arguments = agent_command(spec, run)[3:]
        root = tmp_path / str(index)
        recipe.main([*arguments, *tiny(root), "--trainer.fast_dev_run=1"])
        assert "wrote" in capsys.readouterr().out


@pytest.mark.timeout(400)
def test_under_ddp_every_rank_trains_with_the_sweep_values_in_one_wandb_run(
    tmp_path: Path,
) -> None:
    import json
    import os
    import socket
    import subprocess
    import sys

    spec = load_sweep(ROOT / "recipes" / "sweeps" / "pallet_det_bayes.yaml")
    run = sample_runs(spec, 1, seed=3)[0] | {"data.strategy": "mixed", "seed": 5}
    command = agent_command(spec, run, interpreter=sys.executable)[1:]  # no /usr/bin/env
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tiny = [o for o in tiny_pallet_options(tmp_path) if o != "--no-wandb"]
    environment = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).parent),
        "RECORD_DIR": str(tmp_path),
        "WANDB_MODE": "offline",
    }
    result = subprocess.run(
        [
            *command,
            *tiny,
            "--trainer.max_steps=1",  # not fast_dev_run: it turns the loggers off
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--trainer.callbacks+=helpers.RecordRankConfig",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    assert ranks[0]["world_size"] == 2 and ranks[0]["lr"] == run["model.lr"]
    assert ranks[0]["strategy"] == "mixed" and ranks[0]["data_seed"] == 5
    assert ranks[0]["torch_seed"] == 5
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one W&B run per agent run, not one per rank"
    from helpers import read_wandb_run

    logged = read_wandb_run(next(runs[0].glob("run-*.wandb")))["config"]
    assert json.loads(logged["model.lr"]) == run["model.lr"]
    assert json.loads(logged["data.strategy"]) == "mixed" and json.loads(logged["seed"]) == 5


GOOD = {
    "program": "recipes/pallet_det.py",
    "method": "random",
    "metric": {"name": "val/ood/map", "goal": "maximize"},
    "command": ["${env}", "${interpreter}", "${program}", "${args}"],
    "parameters": {"model.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "hyperband"}, "method must be one of"),
        ({"method": "grid"}, "a grid sweeps discrete values; parameter 'model.lr'"),
        ({"command": ["python", "${program}", "${args_no_hyphens}"]}, r"must pass \$\{args\}"),
        ({"parameters": {}}, "has no parameters"),
        ({"parameters": {"seed": {"min": 0}}}, "parameter 'seed' needs one of value"),
        ({"parameters": {"seed": {"values": []}}}, "parameter 'seed' has no values"),
        ({"parameters": {"x": {"distribution": "beta", "min": 0, "max": 1}}}, "distribution"),
        ({"parameters": {"x": {"distribution": "uniform", "min": 1, "max": 1}}}, "min < max"),
        ({"metric": {"name": "val/ood/map", "goal": "up"}}, "metric.goal must be"),
        ({"program": None}, "needs the recipe to run as 'program'"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_file_and_the_parameter(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}))
    with pytest.raises(ValueError, match=message) as error:
        load_sweep(path)
    assert str(path) in str(error.value)


def test_sampled_values_respect_their_distributions(tmp_path: Path) -> None:
    spec = {
        **GOOD,
        "parameters": {
            "model.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
            "data.synthetic_ratio": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
            "trainer.max_epochs": {"distribution": "int_uniform", "min": 2, "max": 4},
            "data.realism": {"distribution": "categorical", "values": ["random", "realistic"]},
            "seed": {"value": 3},
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    runs = sample_runs(load_sweep(path), 200, seed=0)
    assert runs == sample_runs(spec, 200, seed=0)  # seeded
    lrs = [r["model.lr"] for r in runs]
    assert min(lrs) >= 1e-4 and max(lrs) <= 1e-2
    assert sum(lr < 1e-3 for lr in lrs) > 60  # log-uniform: half the draws below the middle
    assert {r["data.synthetic_ratio"] for r in runs} <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert {r["trainer.max_epochs"] for r in runs} == {2, 3, 4}
    assert {r["data.realism"] for r in runs} == {"random", "realistic"}
    assert {r["seed"] for r in runs} == {3}
    with pytest.raises(ValueError, match="grid_runs needs a grid spec"):
        grid_runs(spec)
