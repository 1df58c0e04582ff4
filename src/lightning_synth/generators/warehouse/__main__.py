"""``python -m lightning_synth.generators.warehouse preview``: a PNG grid of samples."""

from lightning_synth.generators.warehouse.preview import main

main()
