"""HRTEM image simulation: potentials, multislice and optics, in torch (CPU or CUDA)."""

from lightning_synth.generators.hrtem.ctf import (
    Optics,
    aberration_function,
    contrast_transfer,
    image_intensity,
    image_wave,
)
from lightning_synth.generators.hrtem.multislice import multislice, transmission_functions
from lightning_synth.generators.hrtem.optics import (
    antialias_aperture,
    fresnel_propagator,
    interaction_constant,
    relativistic_wavelength,
    spatial_frequencies,
)
from lightning_synth.generators.hrtem.parametrizations import element_symbol, scattering_factor
from lightning_synth.generators.hrtem.potentials import projected_potential_slices, slice_count

__all__ = [
    "Optics",
    "aberration_function",
    "antialias_aperture",
    "contrast_transfer",
    "element_symbol",
    "fresnel_propagator",
    "image_intensity",
    "image_wave",
    "interaction_constant",
    "multislice",
    "projected_potential_slices",
    "relativistic_wavelength",
    "scattering_factor",
    "slice_count",
    "spatial_frequencies",
    "transmission_functions",
]
