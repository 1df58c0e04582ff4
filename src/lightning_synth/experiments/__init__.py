"""Running studies: one recipe run per cell of a grid, resumable, with a record per run."""

from lightning_synth.experiments.cells import Cell, recorded, run_cell, run_cells, summarise

__all__ = ["Cell", "recorded", "run_cell", "run_cells", "summarise"]
