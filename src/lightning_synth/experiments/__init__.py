"""Running studies: one recipe run per cell of a grid, resumable, with a record per run."""

from lightning_synth.experiments.cells import Cell, run_cell, summarise

__all__ = ["Cell", "run_cell", "summarise"]
