"""Electron scattering factors of two published parametrizations.

- ``"kirkland"``: Kirkland 2010, Appendix C: three Lorentzians and three Gaussians,
  ``f_e(q) = sum_i a_i / (q^2 + b_i) + sum_i c_i exp(-d_i q^2)`` (eq. C.15).
- ``"lobato"``: Lobato and Van Dyck 2014 (Acta Cryst. A70, 636-649): five terms that keep the
  correct behaviour at small and large q,
  ``f_e(q) = sum_i a_i (2 + b_i q^2) / (1 + b_i q^2)^2``.

Both fit Hartree-Fock scattering factors of neutral atoms, for Z = 1 to 103, with q the
spatial frequency in 1/Angstrom and f_e in Angstrom. They differ by a few percent at some
frequencies, which is one of the things that differ between simulation codes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

import torch

Parametrization = Literal["kirkland", "lobato"]
PARAMETRIZATIONS: tuple[str, ...] = ("kirkland", "lobato")


@cache
def _table(name: str = "kirkland") -> dict[str, dict]:
    if name not in PARAMETRIZATIONS:
        msg = f"parametrization must be one of {PARAMETRIZATIONS}, got {name!r}"
        raise ValueError(msg)
    package = resources.files("lightning_synth.generators.hrtem")
    text = package.joinpath("data").joinpath(f"{name}.json").read_text()
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
    entry = _table("kirkland")[element_symbol(number)]
    return {key: list(entry[key]) for key in "abcd"}


def lobato_parameters(number: int) -> dict[str, list[float]]:
    """The 10 fitted parameters (``a``, ``b``; five each) of an element."""
    entry = _table("lobato")[element_symbol(number)]
    return {key: list(entry[key]) for key in "ab"}


def scattering_factor(
    number: int, q2: torch.Tensor, parametrization: Parametrization = "kirkland"
) -> torch.Tensor:
    """Electron scattering factor f_e [Angstrom] at squared spatial frequencies ``q2`` [1/A^2].

    Example:
        >>> q2 = torch.zeros(1, dtype=torch.float64)  # forward scattering of carbon
        >>> kirkland, lobato = scattering_factor(6, q2), scattering_factor(6, q2, "lobato")
        >>> round(float(kirkland), 3), round(float(lobato), 3)
        (2.511, 2.51)
    """
    if parametrization == "lobato":
        p = lobato_parameters(number)
        total = torch.zeros_like(q2)
        for a, b in zip(p["a"], p["b"], strict=True):
            total = total + a * (2 + b * q2) / (1 + b * q2) ** 2
        return total
    if parametrization != "kirkland":
        msg = f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}"
        raise ValueError(msg)
    k = kirkland_parameters(number)
    total = torch.zeros_like(q2)
    for a, b, c, d in zip(k["a"], k["b"], k["c"], k["d"], strict=True):
        total = total + a / (q2 + b) + c * torch.exp(-d * q2)
    return total
