"""Synthetic data generators: physics and geometry only, no Lightning."""

from lightning_synth.generators.toy import render_disks

__all__ = ["render_disks"]
