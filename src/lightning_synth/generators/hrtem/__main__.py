"""``python -m lightning_synth.generators.hrtem``: simulate one structure file."""

from lightning_synth.generators.hrtem.cli import main

main()
