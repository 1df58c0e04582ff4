"""W&B sweep specs: checked, expanded offline, and turned into the commands an agent runs.

A sweep agent starts ``command`` (default ``${env} ${interpreter} ${program} ${args}``) with
``${args}`` replaced by ``--key=value`` for every parameter of the run, which the recipes'
LightningCLI reads as dotted options (``--data.strategy=mixed``). This module does the same
without a W&B server, so that a spec can be tested before a sweep is created from it:

- :func:`load_sweep` reads a spec and refuses what an agent would trip over (an unknown
  method, a grid over a distribution, a command without ``${args}``, a parameter without
  a value), naming the file and the parameter;
- :func:`grid_runs` lists the parameters of every run of a grid, in W&B's order;
- :func:`sample_runs` draws runs of a random or Bayesian spec (a Bayesian search starts from
  such draws; what it proposes later depends on the results);
- :func:`agent_command` is the command line the agent would start for a run, its
  arguments formatted by W&B's own code.

W&B's sweep engine itself (the ``sweeps`` package) is not used: it needs ``numpy < 2``.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

METHODS = ("grid", "random", "bayes")
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
#: Distributions this module samples (W&B's names).
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "log_uniform_values",
    "q_uniform",
    "q_log_uniform_values",
)


def load_sweep(path: str | Path) -> dict[str, Any]:
    """A sweep spec from YAML, checked (see the module docstring).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the spec would not run as a sweep of a recipe.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"no sweep spec at {path}"
        raise FileNotFoundError(msg)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        msg = f"{path} is not valid YAML: {error}"
        raise ValueError(msg) from error
    if not isinstance(spec, dict):
        msg = f"{path}: a sweep spec is a mapping, got {type(spec).__name__}"
        raise ValueError(msg)
    method = spec.get("method")
    if method not in METHODS:
        msg = f"{path}: method must be one of {METHODS}, got {method!r}"
        raise ValueError(msg)
    metric = spec.get("metric")
    if method == "bayes" and not (isinstance(metric, dict) and metric.get("name")):
        msg = f"{path}: a bayes sweep needs metric.name (and goal)"
        raise ValueError(msg)
    if isinstance(metric, dict) and metric.get("goal", "minimize") not in ("minimize", "maximize"):
        msg = f"{path}: metric.goal must be 'minimize' or 'maximize', got {metric.get('goal')!r}"
        raise ValueError(msg)
    if not spec.get("program"):
        msg = f"{path}: the spec needs the recipe to run as 'program'"
        raise ValueError(msg)
    command = spec.get("command", list(DEFAULT_COMMAND))
    if "${args}" not in command:
        msg = (
            f"{path}: command must pass ${{args}} (--key=value, what LightningCLI reads), "
            f"got {command}"
        )
        raise ValueError(msg)
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        msg = f"{path}: the spec has no parameters"
        raise ValueError(msg)
    for name, parameter in parameters.items():
        _check_parameter(path, method, name, parameter)
    return spec


def _check_parameter(path: Path, method: str, name: str, parameter: Any) -> None:
    if not isinstance(parameter, dict):
        msg = f"{path}: parameter {name!r} must be a mapping, got {parameter!r}"
        raise ValueError(msg)
    kinds = [key for key in ("value", "values") if key in parameter]
    distribution = parameter.get("distribution")
    # W&B's constant and categorical distributions come with a value or values.
    discrete = distribution in (None, "constant", "categorical")
    if (discrete and len(kinds) != 1) or (not discrete and kinds):
        msg = (
            f"{path}: parameter {name!r} needs one of value, values or distribution, "
            f"got {parameter}"
        )
        raise ValueError(msg)
    if "values" in parameter and not (
        isinstance(parameter["values"], list) and parameter["values"]
    ):
        msg = f"{path}: parameter {name!r} has no values: {parameter['values']!r}"
        raise ValueError(msg)
    if not discrete:
        if method == "grid":
            msg = f"{path}: a grid sweeps discrete values; parameter {name!r} has a distribution"
            raise ValueError(msg)
        if distribution not in DISTRIBUTIONS:
            msg = (
                f"{path}: parameter {name!r}: distribution must be one of {DISTRIBUTIONS}, "
                f"got {distribution!r}"
            )
            raise ValueError(msg)
        if not ("min" in parameter and "max" in parameter and parameter["min"] < parameter["max"]):
            msg = f"{path}: parameter {name!r} needs min < max, got {parameter}"
            raise ValueError(msg)


def _choices(parameter: Mapping[str, Any]) -> list[Any]:
    if "value" in parameter:
        return [parameter["value"]]
    return list(parameter["values"])


def grid_runs(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The parameters of every run of a grid spec (the first parameter varies slowest)."""
    if spec.get("method") != "grid":
        msg = f"grid_runs needs a grid spec, got method {spec.get('method')!r}"
        raise ValueError(msg)
    names = list(spec["parameters"])
    choices = [_choices(spec["parameters"][name]) for name in names]
    return [
        dict(zip(names, combination, strict=True)) for combination in itertools.product(*choices)
    ]


def _draw(parameter: Mapping[str, Any], rng: random.Random) -> Any:
    if "value" in parameter or "values" in parameter:
        return rng.choice(_choices(parameter))
    kind = parameter["distribution"]
    low, high = float(parameter["min"]), float(parameter["max"])
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
    if kind in ("uniform", "q_uniform"):
        value = rng.uniform(low, high)
    else:  # log-uniform between the values min and max
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    if kind.startswith("q_"):
        step = parameter.get("q", 1.0)
        value = round(value / step) * step
    return value


def sample_runs(spec: Mapping[str, Any], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` runs drawn as a random search draws them (and a Bayesian one starts)."""
    if count < 1:
        msg = f"count must be >= 1, got {count}"
        raise ValueError(msg)
    rng = random.Random(seed)
    parameters = spec["parameters"]
    return [{name: _draw(p, rng) for name, p in parameters.items()} for _ in range(count)]


def agent_command(
    spec: Mapping[str, Any], run: Mapping[str, Any], interpreter: str | None = None
) -> list[str]:
    """The command line a W&B agent starts for ``run`` (parameter name -> value).

    ``${env}`` becomes ``/usr/bin/env``, ``${interpreter}`` ``interpreter`` (this Python by
    default), ``${program}`` the spec's program and ``${args}`` W&B's ``--key=value`` list
    (formatted by ``wandb.sdk.launch.sweeps.utils.create_sweep_command_args``).
    """
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    flags = create_sweep_command_args({"args": {k: {"value": v} for k, v in run.items()}})
    macros: dict[str, Sequence[str]] = {
        "${env}": ["/usr/bin/env"],
        "${interpreter}": [interpreter or sys.executable],
        "${program}": [str(spec["program"])],
        "${args}": flags["args"],
        "${args_no_hyphens}": flags["args_no_hyphens"],
    }
    command: list[str] = []
    for token in spec.get("command", DEFAULT_COMMAND):
        command += list(macros.get(str(token), [str(token)]))
    return command
