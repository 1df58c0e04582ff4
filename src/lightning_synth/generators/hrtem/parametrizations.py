"""Electron scattering factors from Kirkland's parametrization (Kirkland 2010, Appendix C)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import torch

_DATA = "kirkland.json"


@cache
def _table() -> dict[str, dict]:
    package = resources.files("lightning_synth.generators.hrtem")
    text = package.joinpath("data").joinpath(_DATA).read_text()
    return json.loads(text)["elements"]


@cache
def _numbers() -> dict[int, str]:
    return {entry["Z"]: symbol for symbol, entry in _table().items()}


def element_symbol(number: int) -> str:
    """Chemical symbol of atomic number ``number`` (1 to 103).

    Example:
        >>> element_symbol(79)
        'Au'
    """
    try:
        return _numbers()[int(number)]
    except KeyError:
        msg = f"atomic number must be in 1..103 (Kirkland's table), got {number!r}"
        raise ValueError(msg) from None


def kirkland_parameters(number: int) -> dict[str, list[float]]:
    """The 12 fitted parameters (``a``, ``b``, ``c``, ``d``; three each) of an element."""
    entry = _table()[element_symbol(number)]
    return {key: list(entry[key]) for key in "abcd"}


def scattering_factor(number: int, q2: torch.Tensor) -> torch.Tensor:
    """Electron scattering factor f_e [Angstrom] at squared spatial frequencies ``q2`` [1/A^2].

    ``f_e(q) = sum_i a_i / (q^2 + b_i) + sum_i c_i exp(-d_i q^2)`` (Kirkland 2010, eq. C.15).

    Example:
        >>> round(float(scattering_factor(6, torch.zeros(1, dtype=torch.float64))), 3)  # carbon
        2.511
    """
    p = kirkland_parameters(number)
    total = torch.zeros_like(q2)
    for a, b, c, d in zip(p["a"], p["b"], p["c"], p["d"], strict=True):
        total = total + a / (q2 + b) + c * torch.exp(-d * q2)
    return total
