"""The small protocol a DataModule implements so that a callback can stage its training data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

#: Members a staged DataModule must have, with what each does (used in error messages).
PHASE_PROTOCOL: dict[str, str] = {
    "phases": "property: the ordered phase names, e.g. ('synthetic', 'real')",
    "phase": "property: the name of the phase the train loader serves now",
    "set_phase": "method set_phase(name): serve phase `name` from the next train_dataloader() on",
}


@runtime_checkable
class SupportsPhases(Protocol):
    """A DataModule whose training data comes in ordered phases.

    ``train_dataloader()`` must serve the current phase only; ``set_phase`` takes effect the
    next time it is called (BridgedTransfer makes Lightning call it again at a switch).
    """

    @property
    def phases(self) -> Sequence[str]:
        """The ordered phase names."""
        ...

    @property
    def phase(self) -> str:
        """The current phase."""
        ...

    def set_phase(self, name: str) -> None:
        """Serve phase ``name`` from the next ``train_dataloader()`` call on."""
        ...


def missing_phase_members(obj: object) -> list[str]:
    """Names of the :data:`PHASE_PROTOCOL` members that ``obj`` lacks."""
    missing = [name for name in ("phases", "phase") if not hasattr(obj, name)]
    if not callable(getattr(obj, "set_phase", None)):
        missing.append("set_phase")
    return missing
