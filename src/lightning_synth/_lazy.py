"""Attributes of a package that import their module on first use (PEP 562).

Keeps ``import lightning_synth`` light: generators and their heavy dependencies (ase, numba,
h5py, smp, wandb ...) load only when one of their names is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

#: Optional dependencies and the extra of ``pyproject.toml`` that installs each.
EXTRAS: dict[str, str] = {
    "ase": "hrtem",
    "scipy": "hrtem",
    "h5py": "hrtem",
    "segmentation_models_pytorch": "hrtem",
    "timm": "hrtem",
    "kornia": "hrtem",
    "numba": "pallets",
    "faster_coco_eval": "pallets",
    "wandb": "experiments",
    "matplotlib": "experiments",
    "yaml": "experiments",
}


def missing_extra(error: ModuleNotFoundError, what: str) -> ModuleNotFoundError:
    """``error`` again, saying which extra installs the missing package (if one does)."""
    package = (error.name or "").split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        return error
    msg = f"{what} needs {package}: pip install 'lightning_synth[{extra}]'"
    return ModuleNotFoundError(msg, name=error.name)


def lazy_attributes(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import ``names[attr]`` on demand.

    Args:
        package: The package's ``__name__`` (for error messages).
        names: Attribute name -> module that defines it.
        namespace: The package's ``globals()``; a loaded attribute is stored there, so each
            is imported once.
    """

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        try:
            value = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as error:
            raise missing_extra(error, f"{package}.{name}") from error
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *names})

    return getattr_, dir_
